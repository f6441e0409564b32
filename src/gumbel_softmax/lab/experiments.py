"""The lab's experiments, by name: one registry that the CLI and the sweep read.

Each :class:`Experiment` says what a command needs to know about an experiment, declared rather
than discovered: its config dataclass (``from_dict``, ``validate``, ``to_dict``, a ``run_dir``
field), the help text of each field, the CLI's choices, the function that runs a config, the
metrics of its ``final.json`` a sweep may select on or report, and the one-line summary the CLI
prints; and, for the registry-driven tests, a tiny configuration, what a config builds before its
first step, which training metric shows it learning and whether it anneals the temperature. A new
experiment joins ``gumbel-softmax <name>``, ``gumbel-softmax sweep`` and the test that trains
every registered estimator in every experiment (``tests/lab/test_every_estimator.py``) by one
entry in :data:`EXPERIMENTS`.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .config import (
    GAN_HELP,
    HELP,
    SBN_HELP,
    SEMISUP_HELP,
    ConfigError,
    GANConfig,
    SBNConfig,
    SemisupConfig,
    VAEConfig,
)

__all__ = ["EXPERIMENTS", "Experiment", "get"]


@dataclass(frozen=True)
class Experiment:
    """One lab experiment as the commands see it.

    Attributes:
        name: the CLI command (``vae``, ``sbn``).
        config: the config dataclass; ``config.from_dict(mapping)`` validates and raises
            :class:`~gumbel_softmax.lab.config.ConfigError`.
        help_texts: the help of each config field (the CLI prints it verbatim).
        help: one line for ``gumbel-softmax --help``; description: the command's ``--help``.
        module: the lab module whose ``main(config)`` runs a config (imported when run).
        metrics: the entries of ``final.json`` (``"split.metric"``) a sweep may select on or
            report; select: the default selection metric (lower is better); report: the default
            reported metrics.
        summary: ``(config, result) -> str``, the line the CLI prints after a run.
        tiny: config fields (over the defaults) of a run that trains in about a second on the
            shipped data (``binarized-mnist-subset``, or the GAN's synthetic oracle); the
            registry-driven tests add the estimator, its temperatures and the run's cadence.
        learns: the training-row metric that shows the run learning: it falls, or, with
            ``learns_below``, it ends below that value (a discriminator that tells real from
            fake has a loss below log 4; the sum of a GAN's two losses need not fall).
        anneals: whether a ``"scheduled"`` estimator's temperature follows the config's
            ``schedule()``; the SBN keeps the paper's fixed temperature ``tau0``, but for an
            estimator declaring ``annealed`` (slope-annealed ST), which follows its
            ``schedule(steps_per_epoch)``.
        builders: the names of the module's functions that build, from a config, the model
            and the estimator(s) before the first step (see :meth:`initial`).
        choices: fields whose CLI option takes one of a few values.
        final_fields: the config fields that change what the final evaluation computes and
            never the trained weights (the periodic validation may read them too, never the
            training steps). A run asked again with other values of these alone resumes from
            its last checkpoint and re-runs only its final evaluation; a sweep's ``[final]``
            table may set these and no others.
    """

    name: str
    config: type[Any]
    help_texts: Mapping[str, str]
    help: str
    description: str
    module: str
    metrics: tuple[str, ...]
    select: str
    report: tuple[str, ...]
    summary: Callable[[Any, Any], str]
    tiny: Mapping[str, Any]
    learns: str = "loss"
    learns_below: float | None = None
    anneals: bool = True
    builders: tuple[str, str] = ("build_model", "build_estimator")
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    final_fields: tuple[str, ...] = ()

    def main(self, config: Any, **kwargs: Any) -> Any:
        """Run (or resume) ``config`` with the experiment's ``main``; return its result."""
        return self._module().main(config, **kwargs)

    def initial(self, config: Any) -> tuple[nn.Module, nn.Module | None]:
        """The model and the estimator(s) that ``config`` builds before its first step, as its
        run builds them (the same seed, the same initial weights)."""
        module = self._module()
        model, estimator = (getattr(module, name) for name in self.builders)
        return model(config), estimator(config)

    def _module(self) -> Any:
        return importlib.import_module(f"{__package__}.{self.module}")


def _vae_summary(config: VAEConfig, result: Any) -> str:
    return (
        f"step {result.step}: test -ELBO {result.test['neg_elbo']:.2f} nats, "
        f"test -IW bound (m={config.eval_samples}) {result.test['iw_bound']:.2f} nats; "
        f"valid -ELBO {result.valid['neg_elbo']:.2f}, -IW {result.valid['iw_bound']:.2f}"
    )


def _sbn_summary(config: SBNConfig, result: Any) -> str:
    return (
        f"step {result.step}: test NLL (m={config.eval_samples}) {result.test['nll']:.2f} "
        f"nats, valid NLL {result.valid['nll']:.2f}"
    )


def _semisup_summary(config: SemisupConfig, result: Any) -> str:
    return (
        f"step {result.step}: test accuracy {100 * result.test['accuracy']:.2f} %, test "
        f"ELBO {result.test['elbo']:.2f} nats; valid accuracy "
        f"{100 * result.valid['accuracy']:.2f} %, valid ELBO {result.valid['elbo']:.2f}"
    )


def _gan_summary(config: GANConfig, result: Any) -> str:
    f = result.final
    if config.task == "oracle":
        return (
            f"step {result.step}: NLL_oracle {f['nll_oracle']:.3f}, NLL_gen {f['nll_gen']:.3f} "
            "nats per token"
        )
    return (
        f"step {result.step}: parse rate {f['parse_rate']:.3f}, unique {f['unique']:.3f}, "
        f"novel {f['novel']:.3f} ({config.eval_strings} strings at sampling temperature 1); "
        f"held-out NLL {f['heldout_nll']:.2f} nats per string"
    )


_LATENT = ("categorical", "bernoulli")
_OPTIMIZER = ("adam", "sgd")
_SUBSET = "binarized-mnist-subset"
# the evaluation of the tiny runs: a few images, m = 2 (what the periodic and final ones cost)
_TINY_EVAL = {"eval_samples": 2, "eval_samples_during": 2, "eval_images": 50, "test_images": 50}
# tau annealed 2 tau_min -> tau_min over a few dozen steps, so that a short run sees it move
_TINY_ANNEAL = {"anneal_rate": 0.05, "anneal_every": 4}
# The evaluation's size (m, the validation and test images) and its batching (memory only): the
# training steps never read them, each evaluation draws from its own seeded generator.
_EVALUATION = ("eval_samples", "eval_images", "test_images", "eval_batch_size", "eval_chunk")

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            name="vae",
            config=VAEConfig,
            help_texts=HELP,
            help="train and evaluate a VAE with discrete latents (resumes if --run-dir has a run)",
            description="Train and evaluate a discrete-latent VAE on binarized MNIST (or another "
            "dataset); write the run record (config, provenance, metrics.jsonl, TensorBoard "
            "events, checkpoint, figures) to --run-dir. Running again with the same --run-dir "
            "resumes from its last checkpoint to the same result.",
            module="experiment",
            metrics=("valid.neg_elbo", "valid.iw_bound", "test.neg_elbo", "test.iw_bound"),
            select="valid.neg_elbo",
            report=("test.neg_elbo", "test.iw_bound"),
            summary=_vae_summary,
            tiny={
                "dataset": _SUBSET,
                "batch_size": 50,
                "lr": 0.003,
                "epochs": 1,
                "hidden": "64,32",
                "temperature": "anneal",
                **_TINY_EVAL,
                **_TINY_ANNEAL,
            },
            choices={
                "latent": _LATENT,
                "prior": ("uniform", "learned"),
                "optimizer": _OPTIMIZER,
                "temperature": ("constant", "anneal", "learned"),
            },
            final_fields=_EVALUATION,
        ),
        Experiment(
            name="sbn",
            config=SBNConfig,
            help_texts=SBN_HELP,
            help="train and evaluate a stochastic binary network predicting the lower half of "
            "MNIST digits from the upper half (resumes if --run-dir has a run)",
            description="Structured output prediction (Jang et al. 2017, section 4.1): predict "
            "the lower half of a binarized MNIST digit from its upper half through stochastic "
            "layers (Bernoulli 392-200-200-392 or categorical 392-(20x10)-(20x10)-392), one "
            "estimator at every layer; report the importance-sampled test NLL of the lower half "
            "(m = --eval-samples). Writes the run record to --run-dir; the same --run-dir "
            "resumes.",
            module="sbn",
            metrics=("valid.nll", "test.nll"),
            select="valid.nll",
            report=("test.nll",),
            summary=_sbn_summary,
            tiny={
                "dataset": _SUBSET,
                "batch_size": 50,
                "lr": 0.003,
                "epochs": 1,
                "optimizer": "adam",
                **_TINY_EVAL,
            },
            anneals=False,
            builders=("build_model", "build_estimators"),
            choices={"latent": _LATENT, "optimizer": _OPTIMIZER},
            final_fields=_EVALUATION,
        ),
        Experiment(
            name="semisup",
            config=SemisupConfig,
            help_texts=SEMISUP_HELP,
            help="train and evaluate Kingma et al.'s M2 semi-supervised classifier on MNIST with "
            "100 labels (resumes if --run-dir has a run)",
            description="Semi-supervised classification (Jang et al. 2017, section 4.3): the M2 "
            "model with convolutional q(y|x), q(z|x,y) and p(x|y,z); the label of an unlabelled "
            "image summed over exactly (--estimator marginal) or sampled by a registered "
            "estimator. Reports the test accuracy of argmax q(y|x) and the test ELBO (nats). "
            "Writes the run record (with the labelled indices) to --run-dir; the same --run-dir "
            "resumes.",
            module="semisup",
            metrics=(
                "valid.error",
                "valid.accuracy",
                "valid.elbo",
                "test.error",
                "test.accuracy",
                "test.elbo",
            ),
            select="valid.error",
            report=("test.accuracy", "test.elbo"),
            summary=_semisup_summary,
            # conv nets of 2-4 channels, batch 25 + 10 labelled
            tiny={
                "dataset": _SUBSET,
                "batch_size": 25,
                "labelled_batch_size": 10,
                "lr": 0.003,
                "epochs": 1,
                "channels": "2,4,4",
                "z_dim": 4,
                "eval_samples": 1,
                "eval_samples_during": 2,
                "eval_images": 20,
                "test_images": 20,
                **_TINY_ANNEAL,
            },
            choices={"optimizer": _OPTIMIZER},
            final_fields=("eval_samples", "eval_images", "test_images", "eval_batch_size"),
        ),
        Experiment(
            name="gan",
            config=GANConfig,
            help_texts=GAN_HELP,
            help="train and evaluate a sequence GAN (or its maximum-likelihood baseline) on "
            "grammar strings (resumes if --run-dir has a run)",
            description="Adversarial generation of discrete sequences (Kusner & "
            "Hernandez-Lobato 2016, arXiv:1611.04051): an LSTM generator of arithmetic "
            "expressions over x and y, its tokens drawn by --estimator, against an LSTM "
            "discriminator; or, with --objective mle, the same LSTM trained by maximum "
            "likelihood. Reports the parse rate, unique fraction and novelty of generated "
            "strings and the held-out NLL. Writes the run record to --run-dir; the same "
            "--run-dir resumes.",
            module="gan",
            # the final record is flat (one evaluation, at sampling temperature 1 and others)
            metrics=("heldout_nll", "parse_rate", "unique", "novel", "nll_oracle", "nll_gen"),
            select="heldout_nll",
            report=("parse_rate", "unique", "novel", "heldout_nll"),
            summary=_gan_summary,
            # the synthetic oracle (the grammar's strings have 16 tokens, 3 times the cost): 200
            # sequences of 6 tokens of 9 from a random LSTM, batch 25, 16-unit LSTMs
            tiny={
                "task": "oracle",
                "oracle_vocab": 9,
                "oracle_length": 6,
                "n_train": 200,
                "n_held_out": 50,
                "hidden": 16,
                "embed": 8,
                "disc_hidden": 16,
                "batch_size": 25,
                "lr": 0.001,
                "lr_d": 0.01,
                "epochs": 3,
                "temperature": "anneal",
                "eval_strings": 50,
                "sample_temperatures": "1",
                **_TINY_ANNEAL,
            },
            learns="d_loss",
            learns_below=math.log(4),
            choices={
                "objective": ("gan", "mle"),
                "task": ("grammar", "oracle"),
                "temperature": ("constant", "anneal", "inverse"),
                "beta_kind": ("exp", "lin", "log", "quad", "sigmoid"),
                "reward": ("sequence", "rollout"),
            },
            final_fields=("eval_strings",),
        ),
    )
}


def get(name: str) -> Experiment:
    """The registered experiment ``name``.

    Raises:
        ConfigError: no experiment of that name (the message lists the registered ones).
    """
    try:
        return EXPERIMENTS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"experiment must be one of {sorted(EXPERIMENTS)}, got {name!r}"
        ) from None
