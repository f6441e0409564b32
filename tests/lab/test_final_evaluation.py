"""The final-evaluation fields each registered experiment declares (``Experiment.final_fields``):
changing only those re-runs a finished run's final evaluation alone, in place or in a branch
(:func:`gumbel_softmax.lab.runner.branch`), to the result of a run trained with them from the
start, bit for bit (same process, same thread count)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gumbel_softmax.lab import runner
from gumbel_softmax.lab.checkpoint import load_checkpoint
from gumbel_softmax.lab.experiments import EXPERIMENTS

# Each experiment's declared tiny configuration, 4 steps, checkpoints at 2 and 4; the second
# evaluation asks for every final-evaluation field one larger (more samples, images, strings;
# other batch and chunk sizes, which must not change the result beyond the recorded fields).
COMMON = {"max_steps": 4, "eval_every": 2, "checkpoint_every": 2, "log_every": 1}
DECLARING = [name for name, exp in EXPERIMENTS.items() if exp.final_fields]


def test_the_experiments_declare_final_fields_of_their_configs():
    assert DECLARING, "no experiment declares final-evaluation fields"
    for name in DECLARING:
        exp = EXPERIMENTS[name]
        assert set(exp.final_fields) <= set(exp.config().to_dict()), name


def _config(name: str, run_dir: Path, **more):
    exp = EXPERIMENTS[name]
    given = {**exp.tiny, **COMMON, "figures": False, "progress": False}
    return exp.config.from_dict({**given, **more, "run_dir": str(run_dir)})


def _expensive(name: str) -> dict:
    """Every final-evaluation field of the tiny configuration, one larger."""
    config = _config(name, Path("unused"))
    return {f: getattr(config, f) + 1 for f in EXPERIMENTS[name].final_fields}


def _weights(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "checkpoint-4.pt")["modules"]


def _same_weights(a: dict, b: dict) -> bool:
    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    fa, fb = dict(flat(a)), dict(flat(b))
    return fa.keys() == fb.keys() and all(
        torch.equal(v, fb[k]) if isinstance(v, torch.Tensor) else v == fb[k] for k, v in fa.items()
    )


@pytest.mark.parametrize("name", DECLARING)
def test_other_final_fields_re_run_the_final_evaluation_alone(name, tmp_path, one_thread):
    exp = EXPERIMENTS[name]
    expensive = _expensive(name)
    cheap_dir, direct_dir, branch_dir = (tmp_path / d for d in ("cheap", "direct", "branch"))
    exp.main(_config(name, cheap_dir))
    final = json.loads((cheap_dir / "final.json").read_text())
    assert {f: final[f] for f in exp.final_fields} == {
        f: getattr(_config(name, cheap_dir), f) for f in exp.final_fields
    }  # the record names the values it was computed under
    rows = (cheap_dir / "metrics.jsonl").read_text()
    # a record from before its fields were recorded was computed under the stored config's
    # values: it is reused as it is, not computed again
    legacy = {k: v for k, v in final.items() if k not in exp.final_fields}
    (cheap_dir / "final.json").write_text(json.dumps(legacy))
    exp.main(_config(name, cheap_dir))
    assert json.loads((cheap_dir / "final.json").read_text()) == legacy
    # trained with the expensive settings from the start
    exp.main(_config(name, direct_dir, **expensive))
    direct = json.loads((direct_dir / "final.json").read_text())
    assert direct["step"] == final["step"] == 4
    assert direct != final  # the settings change what the evaluation computes
    # the cheap run branched: its checkpoint, evaluated again; no training step
    runner.branch(cheap_dir, _config(name, branch_dir, **expensive).to_dict())
    exp.main(_config(name, branch_dir, **expensive))
    assert json.loads((branch_dir / "final.json").read_text()) == direct
    assert _same_weights(_weights(branch_dir), _weights(direct_dir))
    record = json.loads((branch_dir / "run.json").read_text())
    assert record["branched_from"]["run_dir"] == str(cheap_dir)
    assert [s["resumed_from_step"] for s in record["sessions"]] == [4]
    assert (branch_dir / "metrics.jsonl").read_text() == ""  # the rows stay in the source
    # in place: the finished run asked for the expensive settings
    exp.main(_config(name, cheap_dir, **expensive))
    assert json.loads((cheap_dir / "final.json").read_text()) == direct
    assert (cheap_dir / "metrics.jsonl").read_text() == rows
    assert _same_weights(_weights(cheap_dir), _weights(direct_dir))


def test_a_branch_needs_a_checkpoint(tmp_path):
    with pytest.raises(runner.RunError, match="has no checkpoint to branch from"):
        runner.branch(tmp_path / "empty", {"run_dir": str(tmp_path / "b")})


def test_a_branch_copies_the_checkpoint_where_it_cannot_link_it(tmp_path, monkeypatch, one_thread):
    source, target = tmp_path / "source", tmp_path / "branch"
    EXPERIMENTS["sbn"].main(_config("sbn", source))

    def refuse(self, other):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(Path, "hardlink_to", refuse)
    runner.branch(source, _config("sbn", target).to_dict())
    copied = target / "checkpoints" / "checkpoint-4.pt"
    assert copied.read_bytes() == (source / "checkpoints" / "checkpoint-4.pt").read_bytes()
    assert copied.stat().st_ino != (source / "checkpoints" / "checkpoint-4.pt").stat().st_ino
    assert not list(target.rglob("*.part"))  # written through the atomic writer
