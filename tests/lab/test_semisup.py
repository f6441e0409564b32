"""The semi-supervised experiment (``gumbel-softmax semisup``): marginalisation against
enumeration, the model's shapes, the labelled subset and its record, dynamic binarization, config
and CLI errors. Training every applicable estimator and kill-and-resume are checked by the
registry-driven ``test_every_estimator.py``.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from gumbel_softmax import estimators
from gumbel_softmax.diagnostics import exact_expectation
from gumbel_softmax.lab import cli, semisup
from gumbel_softmax.lab.config import SEMISUP_HELP, ConfigError, SemisupConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(k: int = 4) -> semisup.M2:
    # float64: the comparisons below are of two ways to compute one sum, so they agree to the
    # rounding of the dtype (float32 loses ~1e-4 relative in the score-function form of the
    # gradient, q_y (f_y - sum q f), with f near 500 nats).
    torch.manual_seed(0)
    return semisup.M2(n_classes=k, z_dim=3, channels=(2, 3, 4)).double()


def _images(n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, 784), 0.2, dtype=torch.float64), generator=g)


def test_marginalisation_is_the_expectation_of_the_sampled_objective():
    # -U(x) = E_{y~q}[-L(x, y) + log q(y|x)]: the sampled objective at a one-hot y, averaged
    # over the K classes by diagnostics.exact_expectation, equals the marginalised loss. The
    # z-noise of both is drawn from the same seed in the same shape (K, B, d), so they agree to
    # rounding; the gradients to every parameter agree too.
    model, x = _tiny(), _images(5)
    marginal, value = semisup.unlabelled_loss(
        model, None, x, generator=torch.Generator().manual_seed(3)
    )
    grads = torch.autograd.grad(marginal.sum(), list(model.parameters()), allow_unused=True)
    g = torch.Generator().manual_seed(3)
    logits = model.classify(x)[:, None, :]
    h = model.features(x)

    def sampled(z):
        y = z[..., 0, :]
        log_q = (torch.log_softmax(logits[:, 0], -1) * y).sum(-1)
        return semisup.neg_labelled_bound(model, h, x, y, generator=g) + log_q

    exact = exact_expectation(sampled, logits)
    torch.testing.assert_close(marginal, exact, rtol=1e-10, atol=1e-9)
    assert torch.equal(value, marginal.detach())
    again = torch.autograd.grad(exact.sum(), list(model.parameters()), allow_unused=True)
    for a, b in zip(grads, again, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_the_exact_estimator_reproduces_marginalisation():
    # The registered 'exact' estimator (every state, weighted by q) through the estimator path
    # gives the marginalised value and gradient.
    model, x = _tiny(), _images(4)
    exact = estimators.build("exact", event_shape=(1, model.n_classes))
    out = {}
    for name, est in (("marginal", None), ("exact", exact)):
        surrogate, value = semisup.unlabelled_loss(
            model, est, x, generator=torch.Generator().manual_seed(5)
        )
        grad = torch.autograd.grad(surrogate.sum(), list(model.classifier.parameters()))
        out[name] = value, grad
    torch.testing.assert_close(out["exact"][0], out["marginal"][0], rtol=1e-10, atol=1e-9)
    for a, b in zip(out["exact"][1], out["marginal"][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_the_model_has_three_convolutions_per_encoder_and_four_transposed_ones():
    model = semisup.build_model(SemisupConfig())
    convs = [m for m in model.classifier.modules() if isinstance(m, torch.nn.Conv2d)]
    trunk = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    deconvs = [m for m in model.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128] == [c.out_channels for c in trunk]
    assert [c.out_channels for c in deconvs] == [128, 64, 32, 1]
    x = torch.zeros(3, 784)
    assert model.classify(x).shape == (3, 10)
    mu, log_var = model.posterior(model.features(x), torch.eye(10)[:3])
    assert mu.shape == log_var.shape == (3, 50)
    assert model.decode(torch.eye(10)[:3].expand(2, 3, 10), torch.zeros(2, 3, 50)).shape == (
        2,
        3,
        784,
    )


def test_the_labelled_subset_is_balanced_and_a_function_of_the_seed():
    labels = torch.arange(300) % 10
    a = semisup.draw_labelled(labels, 3, n_classes=10, seed=0)
    assert torch.equal(a, semisup.draw_labelled(labels, 3, n_classes=10, seed=0))
    assert not torch.equal(a, semisup.draw_labelled(labels, 3, n_classes=10, seed=1))
    assert torch.bincount(labels[a], minlength=10).tolist() == [3] * 10
    assert torch.equal(a, a.sort().values) and len(set(a.tolist())) == 30
    with pytest.raises(ConfigError, match="31 images of class 0"):
        semisup.draw_labelled(labels, 31, n_classes=10, seed=0)


def test_dynamic_binarization_is_a_function_of_seed_purpose_and_step():
    grey = torch.rand(6, 784, generator=torch.Generator().manual_seed(0))
    b = semisup._binarize(grey, False, 0, "unlabelled", 7)
    assert torch.equal(b, semisup._binarize(grey, False, 0, "unlabelled", 7))
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    for other in ((1, "unlabelled", 7), (0, "labelled", 7), (0, "unlabelled", 8)):
        assert not torch.equal(b, semisup._binarize(grey, False, *other))
    assert semisup._binarize(b, True, 0, "unlabelled", 7) is b  # already binary: unchanged


def _argv(run, *more):
    return [
        "semisup", "--dataset", "binarized-mnist-subset", "--channels", "2,3,4", "--z-dim", "3",
        "--batch-size", "20", "--labelled-batch-size", "10", "--max-steps", "3",
        "--eval-images", "20", "--test-images", "20", "--no-progress", "--run-dir", str(run),
        *more,
    ]  # fmt: skip


def test_a_run_records_its_labelled_indices_and_draws_its_figures(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(_argv(run, "--estimator", "marginal")) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "test ELBO" in out
    from gumbel_softmax.lab.data import load_dataset

    labels = load_dataset("binarized-mnist-subset").labels_train
    expected = semisup.draw_labelled(labels, 10, n_classes=10, seed=0).tolist()
    record = json.loads((run / "run.json").read_text())
    assert record["labelled_indices"] == expected
    assert torch.bincount(labels[expected], minlength=10).tolist() == [10] * 10
    final = json.loads((run / "final.json").read_text())
    for split in ("valid", "test"):
        assert 0 <= final[split]["accuracy"] <= 1 and final[split]["n_images"] == 20
        assert final[split]["elbo"] < 0 and final[split]["elbo_labelled"] < 0
    assert {p.name for p in (run / "figures").iterdir()} == {"curves.png", "class_samples.png"}
    # the finished run again with another test size: only the final evaluation is run again
    metrics = (run / "metrics.jsonl").read_text()
    assert cli.main(_argv(run, "--estimator", "marginal", "--test-images", "30")) == 0
    again = json.loads((run / "final.json").read_text())
    assert again["test"]["n_images"] == 30 and again["step"] == final["step"]
    assert again["valid"] == final["valid"]  # the same weights, the same validation draws
    assert (run / "metrics.jsonl").read_text() == metrics


def test_a_dataset_without_labels_is_refused(tmp_path):
    x = torch.zeros(20, 784)
    splits = SimpleNamespace(
        train=x, valid=x, test=x, labels_train=None, labels_valid=None, labels_test=None,
        binarized=True, name="unlabelled",
    )  # fmt: skip
    config = SemisupConfig(run_dir=str(tmp_path / "run"), progress=False, figures=False)
    with pytest.raises(ConfigError, match="has no labels"):
        semisup.main(config, splits=splits)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--estimator", "arm"], "binary variables only"),
        (["--estimator", "vimco"], "multi-sample bound"),
        (["--estimator", "nope"], "estimator must be one of"),
        (["--estimator", "reinmax"], "cannot run at the temperatures"),
        (["--n-labelled", "105"], "n_labelled must be a multiple of the 10 classes"),
        (["--labelled-batch-size", "200"], "exceeds n_labelled=100"),
        (["--channels", "8,16"], "channels must be three"),
        (["--alpha", "0"], "alpha must be positive"),
        (["--anneal-every", "0"], "anneal_every must be >= 1"),
        (["--latent", "categorical"], "unrecognized arguments"),
    ],
)
def test_bad_options_exit_2_with_a_message(argv, match, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["semisup", *argv, "--run-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "gumbel-softmax" in err and "error:" in err and match in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["semisup", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for key in SEMISUP_HELP:
        assert "--" + key.replace("_", "-") in out, key
    assert "marginal" in out and "alpha * n_train / n_labelled" in out


def test_toml_with_a_semisup_table(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[semisup]\nestimator = "marginal"\nalpha = 0.3\nz_dim = 16\n')
    config = cli.config_from_args(cli.build_parser().parse_args(["semisup", "--config", str(path)]))
    assert (config.estimator, config.alpha, config.z_dim) == ("marginal", 0.3, 16)
    assert config.schedule()(1999) == 1.0 and config.schedule()(2000) < 1.0  # every 2000 steps


def _grey_splits():
    g = torch.Generator().manual_seed(0)
    grey = lambda n: torch.rand(n, 784, generator=g) * 0.5  # noqa: E731
    return SimpleNamespace(
        train=grey(200), valid=grey(20), test=grey(20), labels_train=torch.arange(200) % 10,
        labels_valid=torch.arange(20) % 10, labels_test=torch.arange(20) % 10, binarized=False,
        name="grey",
    )  # fmt: skip


def test_a_resumed_run_on_grey_images_draws_the_same_binarizations(tmp_path):
    # Dynamic binarization from (seed, purpose, step): a run stopped at step 3 whose last
    # checkpoint is lost resumes from step 2 and ends with the weights and rows of a whole run.
    from gumbel_softmax.lab.checkpoint import load_checkpoint
    from gumbel_softmax.lab.records import read_metrics

    splits = _grey_splits()
    base = SemisupConfig(
        estimator="st-gs", n_labelled=20, labelled_batch_size=10, batch_size=20, channels="2,3,4",
        z_dim=3, max_steps=6, checkpoint_every=2, log_every=1, eval_every=3, eval_images=20,
        progress=False, figures=False,
    )  # fmt: skip
    whole = base.replace(run_dir=str(tmp_path / "whole"))
    semisup.main(whole, splits=splits)
    part = base.replace(run_dir=str(tmp_path / "part"))
    semisup.main(part.replace(max_steps=3), splits=splits)
    (tmp_path / "part" / "checkpoints" / "checkpoint-3.pt").unlink()
    (tmp_path / "part" / "final.json").unlink()
    semisup.main(part, splits=splits)
    runs = [tmp_path / "whole", tmp_path / "part"]
    assert read_metrics(runs[0] / "metrics.jsonl") == read_metrics(runs[1] / "metrics.jsonl")
    a, b = (load_checkpoint(r / "checkpoints" / "checkpoint-6.pt")["modules"] for r in runs)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
