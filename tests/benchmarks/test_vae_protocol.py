"""benchmarks/vae/run.py renders the protocol's sweep table (``protocol.json``) into results.md:
per cell the selected setting, the step it reached and how many of its grid points ran."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

from gumbel_softmax.lab import sweep

HERE = Path(__file__).resolve().parents[2] / "benchmarks" / "vae"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("vae_bench", HERE / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["vae_bench"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["vae_bench"]


def test_each_cell_shows_its_selected_setting_step_and_points_run(bench, tmp_path):
    spec = dataclasses.replace(
        sweep.load_spec(HERE / "protocol.toml"), results=tmp_path / "protocol"
    )
    darn = [p for p in spec.points if p.config["estimator"] == "darn"][:6]
    assert darn[0].settings["latent"] == "categorical"

    def final(valid: float) -> dict:
        return {
            "step": 1000,
            "valid": {"neg_elbo": valid, "iw_bound": valid - 10},
            "test": {"neg_elbo": valid + 1, "iw_bound": valid - 9},
        }

    finals = {darn[0].name: final(150.0), darn[1].name: final(140.0)}
    sweep.write_tables(spec, finals, {darn[2].name: "RunError: x"}, {})
    lines = bench.protocol_section(tmp_path)
    (row,) = [line for line in lines if line.startswith("| categorical | darn |")]
    # the lower validation -ELBO (lr 1e-3) is selected; its test values come from phase 2
    # (m = 1000 on the whole test split), not yet run: none shown; the paper's 128.8
    assert row == "| categorical | darn | — | — | 128.8 | lr=0.001 | 1000 | 140.00 | 2/12 |"
    evaluated = {
        darn[1].name: {"final": {**final(140.0), "test": {"neg_elbo": 139.5, "iw_bound": 130.5}}}
    }
    sweep.write_tables(spec, finals, {darn[2].name: "RunError: x"}, {}, evaluated=evaluated)
    lines = bench.protocol_section(tmp_path)
    (row,) = [line for line in lines if line.startswith("| categorical | darn |")]
    assert row == (
        "| categorical | darn | 139.50 | 130.50 | 128.8 | lr=0.001 | 1000 | 140.00 | 2/12 |"
    )
    assert "2 of 336 grid points run." in " ".join(lines)
    (empty,) = [line for line in lines if line.startswith("| categorical | sf-ema |")]
    assert "| — | — | 110.6 | — |" in empty and empty.endswith("| 0/6 |")
    assert bench.protocol_section(tmp_path / "nothing") == []
