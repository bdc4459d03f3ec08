"""Imports run downward: each top-level package imports only packages of a lower layer (never one of its own
layer, never one above), so no two of them import each other; the checkout calls (checkouts/) sit below the API
and the CLI, which both use them; the operator CLI's checkout commands import nothing of api/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The layers, bottom first (docs/index.md, "Layers"). A package may import only packages of a lower layer.
LAYERS = (
    ("settings",),
    ("services",),
    ("activities",),
    ("workflows",),
    ("runtime", "checkouts"),
    ("api",),
    ("bench", "chaos"),
    ("booking_saga",),
)
LAYER_OF = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}
# Modules held to more than their package's layer: what they must not import although their layer may.
NEVER_IMPORTS = {
    "booking_saga/checkouts_cli.py": ("api",),
}


def _imported(path: Path) -> set[str]:
    """Every module `path` imports, wherever the import statement is (a function's deferred import included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_every_top_level_package_has_a_layer() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(LAYER_OF)


def test_no_import_runs_upward_or_sideways() -> None:
    found = []
    for package, rank in LAYER_OF.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            found += [f"{path.relative_to(ROOT)}: {name}" for name in sorted(_imported(path))
                      if (top := name.split(".")[0]) in LAYER_OF and top != package and LAYER_OF[top] >= rank]
    for where, above in NEVER_IMPORTS.items():
        path = ROOT / where
        found += [f"{where}: {name}" for name in sorted(_imported(path)) if name.split(".")[0] in above]
    assert found == []


def test_the_checkout_calls_load_nothing_of_the_api() -> None:
    code = ("import sys, checkouts.saga, checkouts.bookings, checkouts.parts, checkouts.answers, checkouts.problems\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('api', 'booking_saga', 'fastapi')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_api_renders_the_same_problem_the_checkout_calls_raise() -> None:
    from api import problems
    from checkouts import problems as below

    assert problems.ProblemError is below.ProblemError
    assert problems.service_unavailable is below.service_unavailable
