"""The ``gumbel-softmax`` command: a thin parser that builds a config and calls the experiment.

    gumbel-softmax vae --latent categorical --estimator st-gs --dataset binarized-mnist \\
        --epochs 100 --run-dir runs/x

``gumbel-softmax data download ...`` hands its options to
:func:`gumbel_softmax.lab.data.download_main`.

Every option of ``vae`` is a field of :class:`~gumbel_softmax.lab.config.VAEConfig`; its help
text is the field's entry in :data:`~gumbel_softmax.lab.config.HELP`. Precedence: the defaults, then
``--config file.toml``, then the options given on the command line. Running the same command with
the same ``--run-dir`` again resumes the run. Options must be spelled out (no abbreviations).

Failures are messages, not tracebacks: a bad option or config value, and a run that cannot start
or go on (a device that is not there, a run directory that is a file or cannot be written, a full
disk, corrupt checkpoints or data files, a missing optional package of the ``lab`` extra) end with
``gumbel-softmax: error: ...`` naming the option or path, and exit status 2. Warnings (a resumed
run on another sampler backend, a corrupt newest checkpoint replaced by the older one) are printed
as ``gumbel-softmax: warning: ...``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import Any, NoReturn

from gumbel_softmax import estimators

from .checkpoint import CheckpointError
from .config import (
    HELP,
    SBN_HELP,
    SEMISUP_HELP,
    ConfigError,
    SBNConfig,
    SemisupConfig,
    VAEConfig,
    load_toml,
)
from .runner import RunError

__all__ = ["build_parser", "config_from_args", "main"]

_CHOICES = {
    "latent": ["categorical", "bernoulli"],
    "prior": ["uniform", "learned"],
    "optimizer": ["adam", "sgd"],
    "temperature": ["constant", "anneal", "learned"],
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gumbel-softmax",
        allow_abbrev=False,
        description="Experiments of Jang, Gu & Poole 2017 (arXiv:1611.01144) with the "
        "gumbel-softmax library.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    vae = sub.add_parser(
        "vae",
        allow_abbrev=False,
        help="train and evaluate a VAE with discrete latents (resumes if --run-dir has a run)",
        description="Train and evaluate a discrete-latent VAE on binarized MNIST (or another "
        "dataset); write the run record (config, provenance, metrics.jsonl, TensorBoard events, "
        "checkpoint, figures) to --run-dir. Running again with the same --run-dir resumes from "
        "its last checkpoint to the same result.",
    )
    _add_config_options(vae, VAEConfig, HELP, "vae")
    sbn = sub.add_parser(
        "sbn",
        allow_abbrev=False,
        help="train and evaluate a stochastic binary network predicting the lower half of "
        "MNIST digits from the upper half (resumes if --run-dir has a run)",
        description="Structured output prediction (Jang et al. 2017, section 4.1): predict the "
        "lower half of a binarized MNIST digit from its upper half through stochastic layers "
        "(Bernoulli 392-200-200-392 or categorical 392-(20x10)-(20x10)-392), one estimator at "
        "every layer; report the importance-sampled test NLL of the lower half (m = "
        "--eval-samples). Writes the run record to --run-dir; the same --run-dir resumes.",
    )
    _add_config_options(sbn, SBNConfig, SBN_HELP, "sbn")
    semisup = sub.add_parser(
        "semisup",
        allow_abbrev=False,
        help="train and evaluate Kingma et al.'s M2 semi-supervised classifier on MNIST with "
        "100 labels (resumes if --run-dir has a run)",
        description="Semi-supervised classification (Jang et al. 2017, section 4.3): the M2 "
        "model with convolutional q(y|x), q(z|x,y) and p(x|y,z); the label of an unlabelled "
        "image summed over exactly (--estimator marginal) or sampled by a registered "
        "estimator. Reports the test accuracy of argmax q(y|x) and the test ELBO (nats). "
        "Writes the run record (with the labelled indices) to --run-dir; the same --run-dir "
        "resumes.",
    )
    _add_config_options(semisup, SemisupConfig, SEMISUP_HELP, "semisup")
    data = sub.add_parser(
        "data",
        allow_abbrev=False,
        help="data sets: `gumbel-softmax data download --help`",
        description="Data-set commands of gumbel_softmax.lab.data.",
    )
    data.add_argument("action", choices=["download"], help="download data sets into the cache")
    data.add_argument("rest", nargs=argparse.REMAINDER, help="the action's options")
    return parser


def _add_config_options(
    parser: argparse.ArgumentParser, config: Any, help_texts: dict[str, str], table: str
) -> None:
    """``--config`` and one option per field of the dataclass ``config``, helped by its text."""
    parser.add_argument(
        "--config",
        metavar="FILE.toml",
        default=argparse.SUPPRESS,
        help=f"read options from a TOML file (flat keys, or a [{table}] table, named as the "
        "fields below with underscores); command-line options override it",
    )
    defaults = config()
    for f in fields(config):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        kw: dict[str, Any] = {
            "dest": f.name,
            "default": argparse.SUPPRESS,
            "help": f"{help_texts[f.name]} (default: {default!r})",
        }
        if f.name == "estimator":
            kw["help"] += f"; registered: {', '.join(estimators.available())}"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        kw["type"] = type(default)
        if f.name in _CHOICES and (table == "vae" or f.name in ("latent", "optimizer")):
            kw["choices"] = _CHOICES[f.name]
        parser.add_argument(flag, metavar=f.name.upper(), **kw)


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`VAEConfig` (``vae``), :class:`SBNConfig` (``sbn``) or :class:`SemisupConfig`
    (``semisup``) of ``args``: defaults < TOML file < command line; raises :class:`ConfigError` on
    any bad value."""
    command = getattr(args, "command", "vae")
    values: dict[str, Any] = {}
    given = vars(args).copy()
    for key in ("command", "action", "rest"):
        given.pop(key, None)
    path = given.pop("config", None)
    if path is not None:
        values.update(load_toml(path, table=command))
    values.update(given)
    kinds: dict[str, Any] = {"sbn": SBNConfig, "semisup": SemisupConfig}
    return kinds.get(command, VAEConfig).from_dict(values)


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (default ``sys.argv[1:]``); return its exit status (0), or exit
    with status 2 and a message on stderr."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "data":
        from .data import download_main

        return int(download_main(args.rest))
    try:
        config = config_from_args(args)
    except ConfigError as err:
        parser.error(str(err))  # exits with status 2 before any work starts
    from . import experiment, sbn, semisup

    runs: dict[str, Any] = {"sbn": sbn.main, "semisup": semisup.main}
    with _warnings_as_messages():
        try:
            result = runs.get(args.command, experiment.main)(config)
        except ConfigError as err:
            parser.error(str(err))
        except (RunError, CheckpointError) as err:
            _fail(str(err))
        except OSError as err:  # the writer names the file (a full disk, a read-only folder)
            where = f"{err.filename}: " if err.filename else ""
            _fail(f"{where}{err.strerror or err}")
        except KeyboardInterrupt:
            print(
                f"gumbel-softmax: interrupted; run the same command again to resume "
                f"{config.run_dir!r} from its last checkpoint",
                file=sys.stderr,
            )
            return 130
    if args.command == "semisup":
        print(
            f"step {result.step}: test accuracy {100 * result.test['accuracy']:.2f} %, test "
            f"ELBO {result.test['elbo']:.2f} nats; valid accuracy "
            f"{100 * result.valid['accuracy']:.2f} %, valid ELBO {result.valid['elbo']:.2f}"
        )
    elif args.command == "sbn":
        print(
            f"step {result.step}: test NLL (m={config.eval_samples}) {result.test['nll']:.2f} "
            f"nats, valid NLL {result.valid['nll']:.2f}"
        )
    else:
        print(
            f"step {result.step}: test -ELBO {result.test['neg_elbo']:.2f} nats, "
            f"test -IW bound (m={config.eval_samples}) {result.test['iw_bound']:.2f} nats; "
            f"valid -ELBO {result.valid['neg_elbo']:.2f}, -IW {result.valid['iw_bound']:.2f}"
        )
    print(f"run record: {result.run_dir}")
    if result.figures:
        print(f"figures: {result.figures[0].parent}")
    return 0


def _fail(message: str) -> NoReturn:
    print(f"gumbel-softmax: error: {message}", file=sys.stderr)
    sys.exit(2)


@contextmanager
def _warnings_as_messages() -> Iterator[None]:
    """Print the run's warnings as one ``gumbel-softmax: warning: ...`` line each."""

    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        print(f"gumbel-softmax: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


if __name__ == "__main__":
    sys.exit(main())
