"""Print what one pytest pass did, from its JUnit XML: `python .ci/pytest_counts.py NAME report.xml`.

One line of counts (collected, passed, failed, errors, skipped), then every skipped test with its reason, so a
suite that quietly stopped running shows in CI's log. Exits 1 when the report is missing or collected nothing.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main() -> int:
    name, path = sys.argv[1], Path(sys.argv[2])
    if not path.is_file():
        print(f"== {name}: no report at {path}: the pass did not run", file=sys.stderr)
        return 1
    cases = ET.parse(path).getroot().iter("testcase")
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    skipped: list[str] = []
    total = 0
    for case in cases:
        total += 1
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        skip = case.find("skipped")
        if skip is not None:
            counts["skipped"] += 1
            skipped.append(f"   skipped {test}: {skip.get('message', '')}")
        elif case.find("failure") is not None:
            counts["failed"] += 1
        elif case.find("error") is not None:
            counts["errors"] += 1
        else:
            counts["passed"] += 1
    print(f"== {name}: collected {total}, " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for line in skipped:
        print(line)
    return 1 if total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
