"""The griffe extension that turns our docstrings' reST into Markdown (docs/_griffe_rst.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

griffe = pytest.importorskip("griffe", reason="needs the docs extra: pip install -e '.[docs]'")
ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("_griffe_rst", ROOT / "docs" / "_griffe_rst.py")
rst = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rst)


@pytest.fixture(scope="module")
def package():
    return griffe.load("gumbel_softmax", search_paths=[str(ROOT / "src")])


def convert(text, package, scope="gumbel_softmax.functional.gumbel_softmax"):
    return rst.convert(
        text, package.modules_collection.get_member(scope), package.modules_collection
    )


def test_math_directive_with_continuation_becomes_a_display_block(package):
    text = "Intro.\n\n.. math:: a = b \\qquad\n          c = d\n\nAfter."
    assert convert(text, package) == "Intro.\n\n$$\na = b \\qquad\nc = d\n$$\n\nAfter."


def test_inline_math_and_sub(package):
    assert (
        convert(r"x :math:`\alpha_k` GR-MC\ :sub:`M`", package) == r"x $\alpha_k$ GR-MC<sub>M</sub>"
    )


def test_roles_resolve_relative_to_the_scope_or_stay_code(package):
    out = convert(":func:`gumbel` and :class:`torch.Tensor` and :func:`~a.b.nowhere`", package)
    assert 'identifier="gumbel_softmax.functional.gumbel" optional' in out
    assert "`torch.Tensor`" in out and "`nowhere`" in out


def test_simple_tables_with_and_without_header(package):
    text = "====  =====\na     b\n      more\nc     d\n====  =====\n"
    assert convert(text, package).split("\n")[:4] == [
        "|  |  |",
        "|---|---|",
        "| a | b more |",
        "| c | d |",
    ]
    headed = "===  ===\nx    y\n===  ===\n1    2\n===  ===\n"
    assert convert(headed, package).split("\n")[:3] == ["| x | y |", "|---|---|", "| 1 | 2 |"]


def test_google_sections_continuations_and_shared_items(package):
    text = (
        "Args:\n    p, q: two things.\n\nRaises:\n    TypeError: bad ``x``. ValueError: bad\n"
        "    ``y``.\n"
    )
    assert convert(text, package) == (
        "Args:\n    p: two things.\n    q: two things.\n\nRaises:\n"
        "    TypeError: bad ``x``. ValueError: bad\n        ``y``.\n"
    )
    assert convert("Raises:\n    TypeError / ValueError as elsewhere.", package) == (
        "Raises:\n    TypeError / ValueError: as elsewhere."
    )
