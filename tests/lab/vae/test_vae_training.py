"""Training a few steps, the run record, exact resume, and figures (on a tiny stand-in dataset)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gumbel_softmax.lab import experiment, runner
from gumbel_softmax.lab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gumbel_softmax.lab.config import ConfigError
from gumbel_softmax.lab.records import read_metrics
from gumbel_softmax.lab.runner import CheckpointFallbackWarning


def test_training_writes_the_run_record(fake_data, tiny_config, tmp_path):
    result = experiment.main(tiny_config.replace(figures=True))
    run = tmp_path / "run"
    assert result.step == 6 and result.run_dir == run
    config = json.loads((run / "config.json").read_text())
    assert config["estimator"] == "st-gs" and config["seed"] == 0
    info = json.loads((run / "run.json").read_text())
    session = info["sessions"][0]
    assert session["seed"] == 0 and session["git_revision"]
    assert {"torch", "numba", "python", "gumbel-softmax"} <= set(session["versions"])
    assert session["sampler_backend"] in ("reference", "numba") and session["threads"] >= 1
    rows = read_metrics(run / "metrics.jsonl")
    train = [r for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in train] == [2, 4, 6]
    assert [r["step"] for r in evals] == [3, 6]
    # The annealed temperature follows the schedule: tau = max(0.5, exp(-0.1 * 2 * floor(t/2))).
    assert [r["temperature"] for r in train] == pytest.approx(
        [max(0.5, float(torch.exp(torch.tensor(-0.1 * s)))) for s in (0, 2, 4)]
    )
    for r in evals:
        assert r["iw_bound"] <= r["neg_elbo"] + 5  # loose: a 3-sample bound on 10 images
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    # The last two checkpoints are kept (written at steps 2, 4, 6).
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "checkpoint-4.pt",
        "checkpoint-6.pt",
    ]
    assert load_checkpoint(run / "checkpoints" / "checkpoint-6.pt")["step"] == 6
    final = json.loads((run / "final.json").read_text())
    assert final["test"]["n_images"] == 10 and final["m"] == 5
    assert {p.name for p in result.figures} == {
        "curves.png",
        "reconstructions.png",
        "prior_samples.png",
        "latents.png",
    }
    for p in result.figures:
        assert p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "changes",
    [
        {"estimator": "gs", "temperature": "constant"},
        {"latent": "bernoulli", "n_latent": 30, "n_classes": 2, "prior": "learned"},
        {"temperature": "learned", "tau0": 1.0, "optimizer": "sgd", "lr": 1e-2},
        {"estimator": "reinmax", "tau0": 1.5, "tau_min": 1.0},
        {"estimator": "rebar", "temperature": "constant"},
        {"estimator": "sf"},
        {"estimator": "arm", "latent": "bernoulli", "n_latent": 16, "n_classes": 2},
    ],
)
def test_variants_train(fake_data, tiny_config, changes):
    result = experiment.main(tiny_config.replace(**changes, max_steps=4))
    for split in (result.valid, result.test):
        assert all(torch.isfinite(torch.tensor(v)) for v in split.values())
    rows = read_metrics(tiny_config.run_dir + "/metrics.jsonl")
    if changes.get("temperature") == "learned":
        temps = [r["temperature"] for r in rows if r["kind"] == "train"]
        assert temps[0] != temps[-1]  # it is learned
    if changes.get("estimator") in ("sf", "arm"):
        assert all(r["temperature"] is None for r in rows if r["kind"] == "train")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"estimator": "reinmax", "temperature": "learned"}, "can learn its temperature"),
        ({"estimator": "reinmax"}, "temperature must be >= 1"),
        ({"estimator": "arm"}, "binary variables only"),
    ],
)
def test_unsupported_estimator_options_fail_before_any_work(tiny_config, changes, match):
    def no_data(config):
        raise AssertionError("no data must be read")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "load_splits", no_data)
        with pytest.raises(ConfigError, match=match):
            experiment.main(tiny_config.replace(**changes))


def test_training_lowers_the_loss(fake_data, tiny_config):
    experiment.main(tiny_config.replace(max_steps=30, epochs=5, eval_every=30))
    rows = read_metrics(tiny_config.run_dir + "/metrics.jsonl")
    train = [r for r in rows if r["kind"] == "train"]
    assert train[-1]["loss"] < train[0]["loss"] - 50  # 543 -> ~390 nats measured


def _newest_checkpoint(run_dir):
    paths = sorted(
        Path(run_dir, "checkpoints").glob("checkpoint-*.pt"), key=lambda p: int(p.stem[11:])
    )
    return load_checkpoint(paths[-1])


def _state(run_dir):
    ck = _newest_checkpoint(run_dir)
    return (
        ck,
        read_metrics(f"{run_dir}/metrics.jsonl"),
        json.loads(open(f"{run_dir}/final.json").read()),
    )


def test_resume_is_exact(fake_data, tiny_config, tmp_path):
    base = tiny_config.replace(max_steps=10, checkpoint_every=3, epochs=2)
    whole = base.replace(run_dir=str(tmp_path / "whole"))
    parts = base.replace(run_dir=str(tmp_path / "parts"))
    experiment.main(whole)
    experiment.main(parts.replace(max_steps=5))  # "killed" at step 5 (after its checkpoint)
    # A kill can also land after rows were written beyond the checkpoint, mid-line, or during a
    # checkpoint write: all of it must be ignored.
    with open(tmp_path / "parts" / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"kind": "train", "step": 7, "loss": 1.0}) + '\n{"kind": "tr')
    (tmp_path / "parts" / "checkpoints" / ".checkpoint-6.pt.x1y2.part").write_bytes(b"half")
    experiment.main(parts)  # the same command again resumes
    (ck_a, rows_a, final_a), (ck_b, rows_b, final_b) = _state(whole.run_dir), _state(parts.run_dir)
    assert ck_a["step"] == ck_b["step"] == 10
    for k, v in ck_a["modules"]["model"].items():
        assert torch.equal(v, ck_b["modules"]["model"][k]), k
    assert torch.equal(ck_a["generator"], ck_b["generator"])
    assert rows_a == rows_b
    assert final_a == final_b
    assert not list((tmp_path / "parts").rglob("*.part"))
    sessions = json.loads((tmp_path / "parts" / "run.json").read_text())["sessions"]
    assert [s["resumed_from_step"] for s in sessions] == [0, 5]


def _flip_a_bit(path):
    blob = bytearray(path.read_bytes())
    blob[100] ^= 1
    path.write_bytes(bytes(blob))


def test_corrupt_checkpoint_stops_the_run(fake_data, tiny_config):
    experiment.main(tiny_config.replace(max_steps=4))  # checkpoints at 2 and 4
    folder = Path(tiny_config.run_dir, "checkpoints")
    for name in ("checkpoint-2.pt", "checkpoint-4.pt"):
        _flip_a_bit(folder / name)
    with pytest.raises(CheckpointError, match=r"checkpoint-4\.pt is corrupt.*checkpoint-2\.pt"):
        experiment.main(tiny_config)


def test_a_corrupt_newest_checkpoint_falls_back_to_the_older_one(fake_data, tiny_config, tmp_path):
    whole = tiny_config.replace(run_dir=str(tmp_path / "whole"))
    experiment.main(whole)
    experiment.main(tiny_config.replace(max_steps=4))
    folder = Path(tiny_config.run_dir, "checkpoints")
    _flip_a_bit(folder / "checkpoint-4.pt")
    with pytest.warns(
        CheckpointFallbackWarning, match=r"checkpoint-4\.pt is corrupt.*checkpoint-2"
    ):
        experiment.main(tiny_config)
    assert (folder / "checkpoint-4.pt.corrupt").exists()  # kept for a look, never read
    assert sorted(p.name for p in folder.glob("*.pt")) == ["checkpoint-4.pt", "checkpoint-6.pt"]
    (_, rows_a, final_a), (_, rows_b, final_b) = _state(whole.run_dir), _state(tiny_config.run_dir)
    assert rows_a == rows_b and final_a == final_b  # resumed from step 2 to the same result


def test_a_different_config_in_the_same_run_dir_is_refused(fake_data, tiny_config):
    experiment.main(tiny_config.replace(max_steps=2))
    with pytest.raises(ConfigError, match=r"lr: 0\.001 -> 0\.01"):
        experiment.main(tiny_config.replace(lr=1e-2))


def test_batch_larger_than_data_is_refused(fake_data, tiny_config):
    with pytest.raises(ConfigError, match="batch_size=1000"):
        experiment.main(tiny_config.replace(batch_size=1000))


def test_grey_scale_data_is_binarized_per_batch(monkeypatch, tiny_config):
    from conftest import fake_splits
    from gumbel_softmax.lab import data

    splits = fake_splits(binarized=False)
    seen = []

    def recording(x, *, generator=None):
        out = real(x, generator=generator)
        seen.append((x, out))
        return out

    real = data.dynamic_binarize
    monkeypatch.setattr(data, "dynamic_binarize", recording)
    experiment.main(tiny_config.replace(max_steps=2), splits=splits)
    assert len(seen) == 2
    x, out = seen[0]
    assert not set(x.unique().tolist()) <= {0.0, 1.0} and set(out.unique().tolist()) == {0.0, 1.0}


def test_the_shipped_subset_trains(tiny_config):
    # The default dataset ships with the package: no stand-in, no network.
    result = experiment.main(tiny_config.replace(max_steps=2, batch_size=50))
    assert result.step == 2 and result.test["n_images"] == 10


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_the_optimizer_is_fused_by_default_and_computes_the_same_update(tiny_config, kind):
    """Fused (the default) and torch's default implementation take the same step, to rounding."""
    params = {}
    for fused in (True, False):
        w = torch.nn.Parameter(torch.linspace(-1, 1, 7))
        config = tiny_config.replace(optimizer=kind, fused_optimizer=fused, lr=0.1)
        opt = experiment.build_optimizer(config, [w])
        assert opt.param_groups[0]["fused"] is (True if fused else None)
        assert type(opt).__name__ == {"adam": "Adam", "sgd": "SGD"}[kind]
        if kind == "sgd":
            assert opt.param_groups[0]["momentum"] == config.momentum
        for _ in range(3):
            opt.zero_grad()
            (w**3).sum().backward()
            opt.step()
        params[fused] = w.detach()
    torch.testing.assert_close(params[True], params[False], rtol=1e-6, atol=1e-7)


def test_a_device_without_a_fused_optimizer_gets_the_default_one(tiny_config, monkeypatch):
    def refuse(*args, fused=None, **kwargs):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be on a supported device")
        return real(*args, **kwargs)

    real = torch.optim.Adam
    monkeypatch.setattr(torch.optim, "Adam", refuse)
    w = torch.nn.Parameter(torch.zeros(3))
    opt = experiment.build_optimizer(tiny_config, [w])
    assert isinstance(opt, real) and not opt.param_groups[0]["fused"]


def test_a_run_dir_of_the_pre_runner_lab_resumes(fake_data, tiny_config, tmp_path):
    """A run directory with the old single ``checkpoint.pt`` continues instead of restarting."""
    whole = tiny_config.replace(run_dir=str(tmp_path / "whole"))
    experiment.main(whole)
    experiment.main(tiny_config.replace(max_steps=4))
    run = Path(tiny_config.run_dir)
    new = load_checkpoint(run / "checkpoints" / "checkpoint-4.pt")
    old_layout = {
        "model": new["modules"]["model"],
        "estimator": new["modules"]["estimator"],
        "optimizer": new["optimizer"],
        "lr_schedule": new["lr_schedule"],
        "sampler": new["generator"],
        "window": {**new["window"]["sums"], "n": new["window"]["n"]},
        "step": 4,
        "config": new["config"],
    }
    for p in (run / "checkpoints").iterdir():
        p.unlink()
    save_checkpoint(old_layout, run / "checkpoint.pt")
    experiment.main(tiny_config)
    (ck_a, rows_a, final_a), (ck_b, rows_b, final_b) = _state(whole.run_dir), _state(run)
    assert rows_a == rows_b and final_a == final_b
    for k, v in ck_a["modules"]["model"].items():
        assert torch.equal(v, ck_b["modules"]["model"][k]), k
    sessions = json.loads((run / "run.json").read_text())["sessions"]
    assert [s["resumed_from_step"] for s in sessions] == [0, 4]


def test_a_checkpoint_that_does_not_fit_the_run_is_an_error(fake_data, tiny_config):
    """E.g. a checkpoint written by an estimator of other shapes: an error naming the file."""
    experiment.main(tiny_config.replace(max_steps=2))
    path = Path(tiny_config.run_dir, "checkpoints", "checkpoint-2.pt")
    state = load_checkpoint(path)
    state["modules"]["model"]["decoder.0.weight"] = torch.zeros(3, 3)
    save_checkpoint(state, path)
    with pytest.raises(CheckpointError, match=r"checkpoint-2\.pt does not fit this run's model"):
        experiment.main(tiny_config)
