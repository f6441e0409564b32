"""The arrow goes one way: the library never imports lab, and importing it stays light."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "gumbel_softmax"


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
    return names


def test_library_never_imports_lab():
    for path in SRC.rglob("*.py"):
        if "lab" in path.relative_to(SRC).parts:
            continue
        bad = {n for n in _imports(path) if "lab" in n.split(".") or n.startswith(".lab")}
        assert not bad, f"{path} imports {bad}"


def test_lab_uses_only_the_public_api():
    # lab may import gumbel_softmax's public modules, never a private one (a leading underscore).
    for path in (SRC / "lab").rglob("*.py"):
        for name in _imports(path):
            if name.startswith("gumbel_softmax") or name.startswith(".."):
                parts = [p for p in name.lstrip(".").split(".") if p]
                inside_lab = name.startswith(".") and not name.startswith("..")
                if not inside_lab:
                    assert not any(p.startswith("_") for p in parts), f"{path} imports {name}"


def test_import_is_light():
    code = (
        "import sys, gumbel_softmax;"
        "heavy = [m for m in ('numba', 'triton', 'matplotlib', 'numpy.random', 'tensorboard', 'scipy')"
        " if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing gumbel_softmax loaded {out.stdout.strip()}"
