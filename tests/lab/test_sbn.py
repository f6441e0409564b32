"""The SBN experiment (``gumbel-softmax sbn``): its model against enumeration, its config and CLI
errors, the run record, variance normalisation and the figures. Training every estimator and
kill-and-resume are checked by the registry-driven ``test_every_estimator.py``.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gumbel_softmax import estimators
from gumbel_softmax.diagnostics import exact_expectation
from gumbel_softmax.lab import cli, figures, sbn
from gumbel_softmax.lab.checkpoint import load_checkpoint
from gumbel_softmax.lab.config import SBN_HELP, ConfigError, SBNConfig
from gumbel_softmax.testing import assert_close_mean

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(latent: str) -> sbn.SBN:
    torch.manual_seed(0)
    n, k = (3, 2) if latent == "bernoulli" else (2, 3)
    return sbn.SBN(latent=latent, n_latent=n, n_classes=k, layers=2, in_features=4, out_features=5)


def _exact_log_likelihood(model: sbn.SBN, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p(y|x) = log sum_h p(h1|x) p(h2|h1) p(y|h2), by enumerating h1 and h2."""

    def after_h1(z1: torch.Tensor) -> torch.Tensor:
        def likelihood(z2: torch.Tensor) -> torch.Tensor:
            return torch.exp(-model.nll(model.code(z2), y))

        return exact_expectation(likelihood, model.layer_logits(1, model.code(z1)))

    return exact_expectation(after_h1, model.layer_logits(0, x)).log()


@pytest.mark.parametrize("latent", ["bernoulli", "categorical"])
def test_the_importance_sampled_likelihood_is_unbiased_for_the_exact_one(latent):
    # exp(-L_1) = p(y|h), h ~ p(h|x), is an unbiased estimate of p(y|x): its mean over 20 000
    # draws matches the enumerated likelihood (z-test, false-alarm rate 1e-3). This checks the
    # evaluation's samplers (Bernoulli by one uniform per unit, categorical by Gumbel-max).
    model = _tiny(latent)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, generator=g)
    y = torch.bernoulli(torch.full((1, 5), 0.4), generator=g)
    exact = _exact_log_likelihood(model, x, y).exp().detach()
    n = 20_000
    with torch.no_grad():
        draws = torch.exp(-sbn.nll_bound(model, x.expand(n, 4), y.expand(n, 5), m=1, generator=g))
    assert_close_mean(draws, float(exact), false_alarm=1e-3)


def test_the_model_has_the_papers_shapes():
    bern = sbn.build_model(SBNConfig())
    cat = sbn.build_model(SBNConfig.from_dict({"latent": "categorical"}))
    assert [(m.in_features, m.out_features) for m in [*bern.stochastic, bern.output]] == [
        (392, 200),
        (200, 200),
        (200, 392),
    ]
    assert [(m.in_features, m.out_features) for m in [*cat.stochastic, cat.output]] == [
        (392, 200),
        (200, 200),
        (200, 392),
    ]
    assert cat.layer_logits(0, torch.zeros(3, 392)).shape == (3, 20, 10)
    assert bern.layer_logits(0, torch.zeros(3, 392)).shape == (3, 200, 2)
    upper, lower = sbn.split_halves(torch.arange(784.0).expand(2, 784))
    assert upper[0, -1] == 391 and lower[0, 0] == 392  # rows 0-13, rows 14-27


def test_one_estimator_per_layer_with_its_own_context_size():
    nodes = sbn.build_estimators(SBNConfig(estimator="nvil"))
    assert len(nodes) == 2 and nodes[0] is not nodes[1]
    assert nodes[0].baseline.hidden.in_features == 392  # the upper half
    assert nodes[1].baseline.hidden.in_features == 200  # the layer below
    assert all(n.temperature == 1.0 for n in sbn.build_estimators(SBNConfig(estimator="gs")))


def test_variance_normalizer_scale():
    norm = sbn.VarianceNormalizer()
    assert norm.scale == 1.0
    norm.update(torch.tensor([0.0, 100.0]))  # var 5000, v = 0.2 * 5000
    assert norm.scale == pytest.approx(1 / math.sqrt(1000))
    norm.eval()
    norm.update(torch.tensor([0.0, 1e6]))  # frozen outside training
    assert norm.scale == pytest.approx(1 / math.sqrt(1000))


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["sbn", "--estimator", "arm", "--latent", "categorical"], "binary variables only"),
        (["sbn", "--estimator", "nope"], "estimator must be one of"),
        (["sbn", "--lr", "0"], "lr must be positive"),
        (["sbn", "--latent", "bernoulli", "--n-classes", "3"], "n_classes must be 2"),
        (["sbn", "--layers", "0"], "layers must be >= 1"),
        (["sbn", "--estimator", "reinmax", "--tau0", "0.5"], "cannot run at tau0=0.5"),
        (["sbn", "--latent", "gaussian"], "invalid choice"),
        (["sbn", "--estimator", "st-annealed", "--slope-rate", "-1"], "slope_rate must be >= 0"),
        (["sbn", "--estimator", "st-annealed", "--slope-max", "nan"], "slope_max must be positive"),
        (
            ["sbn", "--estimator", "st-annealed", "--tau0", "0.1", "--slope-max", "5"],
            "slope_max must be >= the first slope 1/tau0 = 10, got 5.0",
        ),
        (["sbn", "--prior", "learned"], "unrecognized arguments"),
    ],
)
def test_bad_options_exit_2_with_a_message(argv, match, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--run-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "gumbel-softmax" in err and "error:" in err and match in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["sbn", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for key in SBN_HELP:
        assert "--" + key.replace("_", "-") in out, key
    assert "lower half" in out


def test_toml_with_an_sbn_table(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[sbn]\nlatent = "categorical"\nestimator = "sf"\nnormalize = true\n')
    config = cli.config_from_args(cli.build_parser().parse_args(["sbn", "--config", str(path)]))
    assert (config.latent, config.n_latent, config.n_classes) == ("categorical", 20, 10)
    assert config.estimator == "sf" and config.normalize


def _fake_splits():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(784, generator=g) * 0.6
    draw = lambda n: torch.bernoulli(p.expand(n, 784), generator=g)  # noqa: E731
    return SimpleNamespace(
        train=draw(200), valid=draw(20), test=draw(20), binarized=True, name="fake"
    )


def test_a_run_with_sgd_and_normalisation_writes_its_record(tmp_path):
    config = SBNConfig(
        estimator="sf", normalize=True, n_latent=6, epochs=2, batch_size=50, lr=1e-3,
        eval_samples=4, eval_samples_during=2, log_every=1, checkpoint_every=4,
        progress=False, run_dir=str(tmp_path / "run"),
    )  # fmt: skip
    result = sbn.main(config, splits=_fake_splits())
    assert result.step == 8
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    train = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 9))
    # the first step's scale is 1 (no variance seen yet); then the NLL's variance is far above 1
    assert train[0]["scale"] == 1.0 and all(r["scale"] < 1.0 for r in train[1:])
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [4, 8]
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["m"] == 4 and final["test"]["n_images"] == 20
    assert math.isfinite(final["test"]["nll"]) and final["valid"]["nll"] == result.valid["nll"]
    assert sorted(p.name for p in result.figures) == ["completions.png", "curves.png"]
    # the optimiser is SGD with momentum, as in the paper
    ck = load_checkpoint(tmp_path / "run" / "checkpoints" / "checkpoint-8.pt")
    assert ck["optimizer"]["param_groups"][0]["momentum"] == 0.9
    assert "variance" in ck["modules"]["normalizer"]


def test_figures_have_labelled_axes(tmp_path):
    model = _tiny("bernoulli")
    big = sbn.SBN(n_latent=4)
    metrics = [
        {"kind": "train", "step": 1, "loss": 200.0},
        {"kind": "eval", "step": 1, "nll": 190.0, "m": 2},
    ]
    paths = figures.draw_sbn(big, metrics, torch.zeros(3, 784), tmp_path / "f", seed=0)
    assert all(p.stat().st_size > 0 for p in paths)
    with pytest.raises(ValueError, match="images must have shape"):
        figures.sbn_completions(model, torch.zeros(3, 10), tmp_path / "x.png")


def test_every_registered_estimator_builds_for_both_latents_or_is_refused_by_its_declarations():
    # the capability declarations decide which (latent, estimator) pairs exist
    for name in estimators.available():
        cls = estimators.estimator_class(name)
        latents = ["bernoulli"] + ([] if cls.binary_only else ["categorical"])
        for latent in latents:
            config = {"latent": latent, "estimator": name}
            if cls.multi_sample_bound:
                with pytest.raises(ConfigError, match="multi-sample bound"):
                    SBNConfig.from_dict(config)
                continue
            if cls.max_states is not None:  # the default 200 bits / 20 x 10 are too many states
                with pytest.raises(ConfigError, match="max_states"):
                    SBNConfig.from_dict(config)
                config["n_latent"] = 2
            assert len(sbn.build_estimators(SBNConfig.from_dict(config))) == 2


def test_run_dir_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sbn", "--run-dir", str(tmp_path / "f"), "--no-progress"])
    assert exit_info.value.code == 2
    assert "is a file" in capsys.readouterr().err


def test_an_evaluation_subset_is_random_not_the_first_images():
    # the test split is sorted by digit: its first images are one class
    sorted_split = np.repeat(np.arange(10, dtype=np.float32), 100)[:, None].repeat(784, 1) / 9
    subset = sbn._images(sorted_split, True, 0, "test", limit=50)
    assert subset.shape == (50, 784) and len(subset[:, 0].unique()) >= 5
    assert torch.equal(subset, sbn._images(sorted_split, True, 0, "test", limit=50))  # fixed


def test_only_slope_annealed_st_anneals_its_slope_and_as_chung_et_al_do():
    # The paper's SBN keeps tau = 1 fixed; Annealed ST is its annealing: alpha = min(5, 1 + 0.04
    # epoch), rising at every step here. E = 500 steps an epoch (50,000 images, batch 100).
    annealed = SBNConfig(estimator="st-annealed").schedule(500)
    assert [annealed(t) for t in (0, 250, 5000, 50_000, 10**6)] == pytest.approx(
        [1.0, 1 / 1.02, 1 / 1.4, 0.2, 0.2]
    )
    for name in ("st", "gs", "st-gs"):
        fixed = SBNConfig(estimator=name, tau0=0.5).schedule(500)
        assert {fixed(t) for t in (0, 5000, 10**6)} == {0.5}
    # a slope_max an estimator without annealing never uses is not checked
    assert SBNConfig(estimator="gs", tau0=0.1, slope_max=5.0).validate()
