"""The README's quickstart runs as written."""

from __future__ import annotations

import pathlib
import re

import pytest
import torch

from gumbel_softmax.estimators import available

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_quickstart_runs():
    text = README.read_text()
    section = text.split("## Quickstart", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README quickstart", "exec"), {})


def test_readme_gives_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def _loop_example() -> str:
    section = README.read_text().split("## Estimators in a training loop", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.parametrize("name", available())
def test_training_loop_example_runs_for_every_estimator(name):
    code = _loop_example()
    assert 'name = "nvil"' in code
    scope: dict = {}
    exec(compile(code.replace('name = "nvil"', f"name = {name!r}"), "README loop", "exec"), scope)
    for p in scope["params"]:
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
