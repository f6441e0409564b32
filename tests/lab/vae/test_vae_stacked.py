"""Stacked training (``gumbel_softmax.lab.stacked``): G models in one process, each the same to
the bit on the CPU as trained alone by ``experiment.main``, and the configs it refuses."""

from __future__ import annotations

import pytest
import torch

from conftest import fake_splits
from gumbel_softmax.lab import experiment, stacked
from gumbel_softmax.lab.checkpoint import load_checkpoint
from gumbel_softmax.lab.config import ConfigError, VAEConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _configs(tmp_path, **more):
    base = {
        "hidden": "32,16",
        "n_latent": 4,
        "n_classes": 5,
        "batch_size": 20,
        "epochs": 1,
        "max_steps": 6,
        "eval_samples": 3,
        "eval_images": 10,
        "test_images": 10,
        "anneal_every": 2,
        "anneal_rate": 0.1,
        "figures": False,
        "progress": False,
        **more,
    }
    return [
        VAEConfig(**base, lr=1e-2, seed=0, run_dir=str(tmp_path / "a")),
        VAEConfig(**base, lr=3e-3, seed=1, run_dir=str(tmp_path / "b")),
    ]


@pytest.mark.parametrize(
    ("optimizer", "estimator", "latent"),
    [("sgd", "st-gs", "categorical"), ("adam", "gs", "categorical"), ("sgd", "st", "bernoulli")],
)
def test_two_stacked_models_are_each_the_run_alone_to_the_bit(
    tmp_path, optimizer, estimator, latent
):
    more = {"optimizer": optimizer, "estimator": estimator, "latent": latent}
    if latent == "bernoulli":
        more.update(n_latent=6, n_classes=2)
    configs = _configs(tmp_path, **more)
    splits = fake_splits(n_train=200)
    results = stacked.train_stacked(configs, splits=splits)
    for config, result in zip(configs, results, strict=True):
        alone = experiment.main(config, splits=splits)
        assert result.step == alone.step == 6
        weights = load_checkpoint(tmp_path / config.run_dir / "checkpoints" / "checkpoint-6.pt")
        for name, value in result.model.state_dict().items():
            assert torch.equal(value, weights["modules"]["model"][name]), name
        assert result.test == alone.test and result.valid == alone.valid
    # the two models did differ (their own seeds and learning rates)
    a, b = (r.model.state_dict()["decoder.0.weight"] for r in results)
    assert not torch.equal(a, b)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"hidden": "16"}, r"differ only in lr and seed; these configs differ in hidden"),
        ({"estimator": "sf"}, "estimator 'sf' cannot train stacked"),
        ({"estimator": "relax"}, "estimator 'relax' cannot train stacked"),
        ({"prior": "learned"}, "prior='uniform'"),
        ({"lr_decay": 0.5}, "lr_decay=1"),
        ({"temperature": "learned"}, "constant or annealed temperature"),
    ],
)
def test_configs_that_cannot_stack_are_refused(tmp_path, change, match):
    a, b = _configs(tmp_path)
    with pytest.raises(ConfigError, match=match):
        if "hidden" in change:
            stacked.check_stackable([a, b.replace(**change)])
        else:
            stacked.check_stackable([a.replace(**change), b.replace(**change)])
    with pytest.raises(ConfigError, match="at least one"):
        stacked.check_stackable([])
    with pytest.raises(ConfigError, match="fixed-binarized"):
        stacked.train_stacked([a], splits=fake_splits(binarized=False))
