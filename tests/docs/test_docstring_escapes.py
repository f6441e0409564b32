r"""No string in the package's source carries a control character where a docstring meant a
backslash: in a plain string ``\tau`` is a tab and "au", ``\alpha`` a bell and "lpha", and the
maths of the reference pages (and of ``help()``) silently loses the symbol. Formulas go in raw
strings; a literal tab in the source is the same mistake, written by a tool."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")])
CONTROL = "\x07\x08\x0b\x0c\t\r"  # \a \b \v \f \t \r: valid escapes, so no linter flags them


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_string_holds_a_control_character(path: Path) -> None:
    tree = ast.parse(path.read_text())
    found = [
        (node.lineno, node.value[:60])
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and any(c in node.value for c in CONTROL)
    ]
    assert not found, f"{path.name}: a control character in a string (use a raw string): {found}"
