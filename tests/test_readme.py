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


def test_gates_subsets_and_igr_example_runs():
    section = README.read_text().split("## Gates, subsets and the Gaussian relaxation", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README gates", "exec"), scope)
    assert scope["y"].shape == (8, 10) and bool(torch.isfinite(scope["kl"]).all())
    # 5 float32 softmaxes over 20 classes each sum to 1 up to 20 roundings (2 k K eps)
    assert float((scope["soft"].detach().sum(-1) - 5).abs().max()) <= 2 * 5 * 20 * torch.finfo().eps
    assert torch.equal(scope["hard"].sum(-1), torch.full((4,), 5.0))
    assert scope["log_alpha"].grad is not None
