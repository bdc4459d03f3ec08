"""The manual: README.md is the front door, docs/ (mkdocs.yml) the site, and both stay true to the code.

- README.md stays short (what it is, the two commands, the architecture, a checkout by hand, where to read on) and
  its links reach files and headings that exist.
- Every setting of settings/__init__.py is in the configuration reference, by its environment variable.
- The manual cites nothing outside the repository (no design document, no issue numbers).
- Code comments say why, never a measured figure: the figures live in docs/performance.md.
- The site builds with `mkdocs build --strict` (as `make docs` does): a broken link or anchor fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 200
# The packages a production process runs, and the dependency list: their comments carry no measured figures.
RUNTIME_SOURCES = ("settings", "services", "activities", "workflows", "runtime", "checkouts", "api", "booking_saga")
FIGURE = re.compile(r"~\s?\d|\b\d+(\.\d+)?\s?%|\bmeasured\b\s*[:(,]|\(measured\b|\d+(\.\d+)?x (faster|slower)")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension (mkdocs, GitHub alike for these headings) gives a heading."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"[-\s]+", "-", text).strip("-")


def _anchors(page: Path) -> set[str]:
    anchors, fenced = set(), False
    for line in page.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            anchors.add(_slug(line.lstrip("#")))
    return anchors


def test_readme_is_the_front_door_only() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move the rest into docs/"
    headings = {line.lstrip("#").strip() for line in lines if line.startswith("## ")}
    for needed in ("Two commands", "Architecture", "A checkout, by hand", "Where to read on"):
        assert needed in headings, needed
    assert "make dev" in README.read_text() and "make test" in README.read_text()


def test_readme_links_reach_files_and_headings() -> None:
    for target in LINK.findall(README.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        page = ROOT / path if path else README
        assert page.exists(), f"README.md links to {target}: no such file"
        if anchor:
            assert anchor in _anchors(page), f"README.md links to {target}: no such heading in {page.name}"


def test_every_setting_is_in_the_configuration_reference() -> None:
    reference = (DOCS / "configuration.md").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in reference]
    assert not missing, f"docs/configuration.md does not describe {missing}"


def test_the_manual_cites_nothing_outside_the_repository() -> None:
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        text = page.read_text()
        assert "DESIGN.md" not in text, page.name
        assert not re.search(r"\bissues? \d+", text, re.IGNORECASE), page.name


def test_code_comments_carry_no_measured_figures() -> None:
    sources = [ROOT / "pyproject.toml"] + [p for d in RUNTIME_SOURCES for p in sorted((ROOT / d).rglob("*.py"))]
    found = [f"{source.relative_to(ROOT)}:{number}: {line.strip()}"
             for source in sources
             for number, line in enumerate(source.read_text().splitlines(), 1)
             if FIGURE.search(line)]
    assert not found, "figures belong in docs/performance.md, the comment says why:\n" + "\n".join(found)


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "bench-chart.png").exists()
