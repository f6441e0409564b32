"""The lab's experiments, by name: one registry that the CLI and the sweep read.

Each :class:`Experiment` says what a command needs to know about an experiment, declared rather
than discovered: its config dataclass (``from_dict``, ``validate``, ``to_dict``, a ``run_dir``
field), the help text of each field, the CLI's choices, the function that runs a config, the
metrics of its ``final.json`` a sweep may select on or report, and the one-line summary the CLI
prints. A new experiment joins ``gumbel-softmax <name>`` and ``gumbel-softmax sweep`` by one entry
in :data:`EXPERIMENTS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
        choices: fields whose CLI option takes one of a few values.
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
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def main(self, config: Any, **kwargs: Any) -> Any:
        """Run (or resume) ``config`` with the experiment's ``main``; return its result."""
        module = importlib.import_module(f"{__package__}.{self.module}")
        return module.main(config, **kwargs)


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
            choices={
                "latent": _LATENT,
                "prior": ("uniform", "learned"),
                "optimizer": _OPTIMIZER,
                "temperature": ("constant", "anneal", "learned"),
            },
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
            choices={"latent": _LATENT, "optimizer": _OPTIMIZER},
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
            choices={"optimizer": _OPTIMIZER},
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
            choices={
                "objective": ("gan", "mle"),
                "task": ("grammar", "oracle"),
                "temperature": ("constant", "anneal", "inverse"),
                "beta_kind": ("exp", "lin", "log", "quad", "sigmoid"),
                "reward": ("sequence", "rollout"),
            },
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
