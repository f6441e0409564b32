"""Variance normalisation of the VAE (``normalize``): the encoder follows a scaled gradient, the
decoder the same one, and the scale is the running standard deviation of the learning signal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gumbel_softmax.lab import experiment
from gumbel_softmax.lab.checkpoint import load_checkpoint
from gumbel_softmax.lab.config import ConfigError, VAEConfig


def _grads(scale: float) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    config = VAEConfig(estimator="sf", hidden="16", n_latent=3, n_classes=4)
    model = experiment.build_model(config)
    est = experiment.build_estimator(config)
    x = torch.bernoulli(torch.full((8, 784), 0.3), generator=torch.Generator().manual_seed(0))
    loss, _, _ = experiment.vae_objective(
        model, est, x, generator=torch.Generator().manual_seed(1), scale=scale
    )
    loss.backward()
    return [p.grad.clone() for p in model.encoder.parameters()], [
        p.grad.clone() for p in model.decoder.parameters()
    ]


def test_the_scale_multiplies_the_encoders_gradient_only():
    enc1, dec1 = _grads(1.0)
    enc, dec = _grads(0.25)
    # the same samples (same generator seed): the decoder's gradient is the same to the bit, the
    # encoder's one quarter of it (a power of two: exact in floating point)
    assert all(torch.equal(a, b) for a, b in zip(dec, dec1, strict=True))
    assert all(torch.equal(a, 0.25 * b) for a, b in zip(enc, enc1, strict=True))


def test_a_normalized_run_logs_the_scale_and_resumes(tiny_config, fake_data):
    config = tiny_config.replace(estimator="sf", normalize=True)
    experiment.main(config.replace(max_steps=4))
    resumed = experiment.main(config)
    rows = [json.loads(line) for line in open(f"{config.run_dir}/metrics.jsonl")]
    assert all(0 < r["scale"] <= 1 for r in rows if r["kind"] == "train")
    # the running variance is in the checkpoint (so a resumed run scales as an uninterrupted one)
    state = load_checkpoint(Path(config.run_dir) / "checkpoints" / "checkpoint-6.pt")
    assert float(state["modules"]["normalizer"]["variance"]) > 0
    fresh = experiment.main(config.replace(run_dir=config.run_dir + "-fresh"))
    assert resumed.test == fresh.test


def test_normalize_by_signal_divides_by_the_spread_of_the_estimators_own_signal(
    tiny_config, fake_data
):
    """DARN's Taylor baseline leaves a signal f - b(z) much narrower than f: normalised by the
    signal's running std (NVIL's definition) its encoder takes larger steps than normalised by
    the cost's, and the running variance in the checkpoint is the smaller one."""

    base = tiny_config.replace(
        estimator="darn", normalize=True, max_steps=12, log_every=1, epochs=5
    )
    scales, variances = {}, {}
    for by in ("cost", "signal"):
        config = base.replace(normalize_by=by, run_dir=f"{tiny_config.run_dir}-{by}")
        experiment.main(config)
        rows = [json.loads(line) for line in open(f"{config.run_dir}/metrics.jsonl")]
        scales[by] = [r["scale"] for r in rows if r["kind"] == "train"]  # one row per step
        last = Path(config.run_dir) / "checkpoints" / f"checkpoint-{len(scales[by])}.pt"
        state = load_checkpoint(last)
        variances[by] = float(state["modules"]["normalizer"]["variance"])
    assert scales["cost"][0] == scales["signal"][0] == 1.0  # nothing seen yet
    assert 0 < variances["signal"] < variances["cost"]
    assert any(s < t for s, t in zip(scales["cost"], scales["signal"], strict=True))
    assert all(s <= t for s, t in zip(scales["cost"], scales["signal"], strict=True))
    with pytest.raises(ConfigError, match="normalize_by='signal' needs an estimator"):
        base.replace(estimator="gs", normalize_by="signal").validate()
    with pytest.raises(ConfigError, match="needs normalize=true"):
        base.replace(normalize=False, normalize_by="signal").validate()
    with pytest.raises(ConfigError, match="normalize_by"):
        base.replace(normalize_by="std").validate()
