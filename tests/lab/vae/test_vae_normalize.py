"""Variance normalisation of the VAE (``normalize``): the encoder follows a scaled gradient, the
decoder the same one, and the scale is the running standard deviation of the learning signal."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gumbel_softmax.lab import experiment
from gumbel_softmax.lab.checkpoint import load_checkpoint
from gumbel_softmax.lab.config import VAEConfig


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
