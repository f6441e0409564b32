"""Two-phase sweeps: a spec's ``[final]`` table re-runs only the final evaluation of each group's
selected point (phase 2), on its trained weights, to the result of running that point with the
final settings from the start; a ``[final]`` key that would change training is refused."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from gumbel_softmax.lab import cli, experiment, sweep
from gumbel_softmax.lab.checkpoint import load_checkpoint
from gumbel_softmax.lab.config import ConfigError, VAEConfig
from gumbel_softmax.lab.experiments import EXPERIMENTS

# A tiny VAE on the shipped subset (as in test_sweep.py), phase 1's evaluation cheap ...
TINY = {
    "hidden": "8", "n_latent": 3, "n_classes": 4, "max_steps": 4, "batch_size": 50,
    "eval_samples": 2, "eval_samples_during": 2, "eval_images": 20, "test_images": 20,
    "eval_every": 2, "checkpoint_every": 2, "figures": False,
}  # fmt: skip
FINAL = {"eval_samples": 5, "test_images": 40}  # ... and phase 2's less so


def _base() -> str:
    return "[base]\n" + "".join(f"{k} = {json.dumps(v).lower()}\n" for k, v in TINY.items())


@pytest.fixture(scope="module")
def two_phase(tmp_path_factory):
    """Two learning rates of one estimator (one group): phase 1 runs both cheaply, phase 2
    evaluates the selected one again with FINAL."""
    tmp = tmp_path_factory.mktemp("two_phase")
    path = tmp / "s.toml"
    path.write_text(
        'experiment = "vae"\ngroup_by = ["estimator"]\n'
        + _base()
        + "[final]\neval_samples = 5\ntest_images = 40\n"
        + '[[grid]]\nestimator = "gs"\nlr = [1e-3, 3e-4]\n'
    )
    spec = sweep.load_spec(path)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")  # one thread per run, as in the run alone below
        result = sweep.run_sweep(spec, stream=out)
    return spec, result, out.getvalue()


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _phase2_dir(spec, point) -> Path:
    return spec.root / "final" / point.name


def test_phase_2_evaluates_only_the_selected_point_on_its_trained_weights(two_phase):
    spec, result, log = two_phase
    assert (result.done, result.failed, result.final_done, result.final_failed) == (2, 0, 1, 0)
    doc = _read(spec.results.with_suffix(".json"))
    (group,) = doc["groups"]
    finals = {p.name: _read(Path(p.config["run_dir"]) / "final.json") for p in spec.points}
    # phase 1: every point with the cheap evaluation; selection on its valid.neg_elbo
    assert all(f["m"] == 2 and f["test"]["n_images"] == 20 for f in finals.values())
    scores = {n: f["valid"]["neg_elbo"] for n, f in finals.items()}
    best = min(scores, key=scores.__getitem__)
    (selected,) = (p for p in spec.points if p.name == best)
    (other,) = (p for p in spec.points if p.name != best)
    assert group["runs"] == [best] and group["valid.neg_elbo"] == scores[best]
    # phase 2: the selected point alone, with FINAL, no training step
    assert not _phase2_dir(spec, other).exists()
    evaluated = _read(_phase2_dir(spec, selected) / "final.json")
    assert evaluated["m"] == 5 and evaluated["test"]["n_images"] == 40
    assert evaluated["step"] == finals[best]["step"] == 4
    record = _read(_phase2_dir(spec, selected) / "run.json")
    assert record["branched_from"]["run_dir"] == selected.config["run_dir"]
    assert [s["resumed_from_step"] for s in record["sessions"]] == [4]
    # the table: phase 2's test metrics, phase 1's under phase1, the selection metric named
    assert group["test.iw_bound"] == evaluated["test"]["iw_bound"]
    assert group["phase1"]["test.iw_bound"] == finals[best]["test"]["iw_bound"]
    assert (group["phase2_done"], group["done"], group["points"]) == (1, 2, 2)
    assert doc["select"] == "valid.neg_elbo" and doc["final"] == FINAL
    assert doc["last_session"]["phase2_runs"] == 1
    md = spec.results.with_suffix(".md").read_text()
    assert "| valid.neg_elbo (phase 1) | test.neg_elbo (phase 2) |" in md
    assert "| 2/2 | 1/1 |" in md and f"`final/{best}` | done" in md
    assert "phase 2: 1/1 done, 0 running, 0 failed" in log


def test_the_phase_2_result_is_the_point_run_with_the_final_settings(two_phase, tmp_path):
    spec, _, _ = two_phase
    doc = _read(spec.results.with_suffix(".json"))
    (selected,) = (p for p in spec.points if p.name in doc["groups"][0]["runs"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = experiment.main(
            VAEConfig.from_dict({**selected.config, **FINAL, "run_dir": str(tmp_path / "alone")})
        )
    finally:
        torch.set_num_threads(threads)
    evaluated = _read(_phase2_dir(spec, selected) / "final.json")
    assert evaluated["test"] == alone.test and evaluated["valid"] == alone.valid
    a, b = (
        load_checkpoint(d / "checkpoints" / "checkpoint-4.pt")["modules"]
        for d in (_phase2_dir(spec, selected), tmp_path / "alone")
    )
    assert _equal(a, b)  # the weights of phase 1, bit for bit those of the run alone


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


def test_a_sweep_killed_in_phase_2_resumes_there(two_phase, capsys, monkeypatch):
    spec, _, _ = two_phase
    doc = _read(spec.results.with_suffix(".json"))
    (selected,) = (p for p in spec.points if p.name in doc["groups"][0]["runs"])
    phase2 = _phase2_dir(spec, selected)
    before = _read(phase2 / "final.json")
    sessions = {
        p.name: len(_read(Path(p.config["run_dir"]) / "run.json")["sessions"]) for p in spec.points
    }
    (phase2 / "final.json").unlink()  # killed during its evaluation
    assert cli.main(["sweep", str(spec.path), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert f"final/{selected.name}: to run" in err and "2 finished already, 0 to run" in err
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cli.main(["sweep", str(spec.path)]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 points finished (2 already, 0 now)" in out
    assert "1 of 1 selected points evaluated (0 already, 1 now)" in out
    assert _read(phase2 / "final.json") == before
    assert sessions == {  # phase 1's runs were not started again
        p.name: len(_read(Path(p.config["run_dir"]) / "run.json")["sessions"]) for p in spec.points
    }
    assert cli.main(["sweep", str(spec.path), "--dry-run"]) == 0
    assert f"final/{selected.name}: finished" in capsys.readouterr().err


def _events(log: str) -> list[str]:
    """The sweep's progress lines as events: ``"1"`` a phase-1 run ended, ``"2"`` a phase-2 one."""
    return [
        "2" if line.startswith("gumbel-softmax: sweep: phase 2: ") else "1"
        for line in log.splitlines()
        if re.match(r"gumbel-softmax: sweep: (phase 2: )?\d+/\d+ done", line)
    ]


def test_a_group_s_phase_2_runs_as_soon_as_its_own_points_have_run(tmp_path, monkeypatch):
    """Two groups, one job: the first group's evaluation goes ahead of the second group's
    points; a group whose points finished in an earlier session is evaluated first of all."""
    path = tmp_path / "s.toml"
    path.write_text(
        'experiment = "vae"\ngroup_by = ["estimator"]\n'
        + _base()
        + "[final]\neval_samples = 5\ntest_images = 40\n"
        + '[[grid]]\nestimator = ["gs", "st"]\nlr = [1e-3, 3e-4]\n'
    )
    spec = sweep.load_spec(path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = io.StringIO()
    result = sweep.run_sweep(spec, stream=out)
    log = out.getvalue()
    assert (result.done, result.final_done) == (4, 2)
    assert _events(log) == ["1", "1", "2", "1", "1", "2"]
    assert "phase 2: 1/1 done, 1 running, 0 failed; 1 group(s) still in phase 1" in log
    assert "phase 2: 2/2 done, 0 running, 0 failed\n" in log
    # the next session: gs's evaluation lost, one st point to train again
    doc = _read(spec.results.with_suffix(".json"))
    gs, st = doc["groups"]
    gs_final = _phase2_dir(spec, next(p for p in spec.points if p.name == gs["runs"][0]))
    before = _read(gs_final / "final.json")
    (gs_final / "final.json").unlink()
    (unselected,) = (p for p in spec.points[2:] if p.name not in st["runs"])
    for f in ("final.json", "checkpoints"):
        target = Path(unselected.config["run_dir"]) / f
        target.unlink() if target.is_file() else shutil.rmtree(target)
    out = io.StringIO()
    result = sweep.run_sweep(spec, stream=out)
    log = out.getvalue()
    assert "phase 2: 1 selected point(s) of finished groups to evaluate again" in log
    assert _events(log) == ["2", "1"]  # gs's evaluation first; st's selection still evaluated
    assert (result.done, result.skipped, result.final_done, result.final_skipped) == (1, 3, 1, 1)
    assert _read(gs_final / "final.json") == before


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_final_takes_the_final_evaluation_fields_of_every_experiment(name, tmp_path):
    exp = EXPERIMENTS[name]
    defaults = exp.config().to_dict()
    path = tmp_path / "s.toml"
    if exp.final_fields:
        final = {f: defaults[f] for f in exp.final_fields}
        spec = sweep.parse_spec({"experiment": name, "final": final}, path=path)
        (point,) = spec.points
        assert point.final is not None and point.final["run_dir"] == str(
            spec.root / "final" / point.name
        )
        assert {k: v for k, v in point.final.items() if k not in ("run_dir", "figures")} == {
            k: v for k, v in point.config.items() if k not in ("run_dir", "figures")
        }
    training = next(f for f in defaults if f not in exp.final_fields and f != "run_dir")
    with pytest.raises(ConfigError, match=rf"\[final\] sets \['{training}'\], which would change"):
        sweep.parse_spec({"experiment": name, "final": {training: defaults[training]}}, path=path)


def test_a_final_key_that_changes_training_exits_2_naming_it(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text('experiment = "vae"\n[final]\neval_samples = 1000\nlr = 0.1\n')
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sweep", str(path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert (
        "gumbel-softmax: error: " in err
        and "[final] sets ['lr'], which would change the training" in err
    )
    for body, match in (
        (
            'experiment = "vae"\n[final]\nevals = 3\n',
            r"final has unknown config key\(s\) \['evals'\]",
        ),
        ('experiment = "vae"\nfinal = 3\n', "final must be a table"),
        (
            'experiment = "vae"\n[final]\neval_samples = 0\n',
            r"with \[final\] is not a valid config",
        ),
    ):
        path.write_text(body)
        with pytest.raises(ConfigError, match=match):
            sweep.load_spec(path)
    assert not (tmp_path / "runs").exists()
