"""Every benchmark script imports, as ``python benchmarks/<dir>/<script>.py`` would import it
(its own folder first on ``sys.path``, so ``from bench import ...`` finds its sibling).

A benchmark that only runs for minutes is otherwise first run long after the helper it imports
was moved; this catches that in the suite. New scripts are covered without editing the test.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*/*.py"))


def test_every_benchmark_folder_has_scripts():
    assert len(SCRIPTS) >= 10, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_benchmark_script_imports(script, monkeypatch):
    monkeypatch.syspath_prepend(str(script.parent))
    siblings = {p.stem for p in script.parent.glob("*.py")}
    for name in siblings:  # another folder's bench.py may be cached under the same name
        monkeypatch.delitem(sys.modules, name, raising=False)
    spec = importlib.util.spec_from_file_location(
        f"_bench_{script.parent.name}_{script.stem}", script
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), f"{script} has no main()"
    for name in siblings:
        sys.modules.pop(name, None)
