"""The ``gumbel-softmax`` command: a thin parser that builds a config and calls the experiment.

    gumbel-softmax vae --latent categorical --estimator st-gs --dataset binarized-mnist \\
        --epochs 100 --run-dir runs/x

``gumbel-softmax data download ...`` hands its options to
:func:`gumbel_softmax.lab.data.download_main`; ``gumbel-softmax sweep SPEC.toml`` runs a grid of
any experiment's configs (:mod:`gumbel_softmax.lab.sweep`).

The experiment commands (``vae``, ``sbn``, ...) are the entries of
:data:`gumbel_softmax.lab.experiments.EXPERIMENTS`. Every option of ``vae`` is a field of
:class:`~gumbel_softmax.lab.config.VAEConfig`; its help text is the field's entry in
:data:`~gumbel_softmax.lab.config.HELP` (the SBN's: ``SBNConfig`` and ``SBN_HELP``). Precedence: the defaults, then
``--config file.toml``, then the options given on the command line. Running the same command with
the same ``--run-dir`` again resumes the run. Options must be spelled out (no abbreviations).

Failures are messages, not tracebacks: a bad option or config value, and a run that cannot start
or go on (a device that is not there, a run directory that is a file or cannot be written, a full
disk, corrupt checkpoints or data files, a missing optional package of the ``lab`` extra) end with
``gumbel-softmax: error: ...`` naming the option or path, and exit status 2. Warnings (a resumed
run on another sampler backend, a corrupt newest checkpoint replaced by the older one) are printed
as ``gumbel-softmax: warning: ...``. A sweep whose every point finished exits with status 0;
one with failed points writes its table (each failure's message is in it) and exits with 1.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from typing import Any, NoReturn

from gumbel_softmax import estimators

from .checkpoint import CheckpointError
from .config import ConfigError, load_toml
from .experiments import EXPERIMENTS
from .runner import RunError

__all__ = ["build_parser", "config_from_args", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gumbel-softmax",
        allow_abbrev=False,
        description="Experiments of Jang, Gu & Poole 2017 (arXiv:1611.01144) with the "
        "gumbel-softmax library.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for exp in EXPERIMENTS.values():
        command = sub.add_parser(
            exp.name, allow_abbrev=False, help=exp.help, description=exp.description
        )
        _add_config_options(command, exp.config, exp.help_texts, exp.name, exp.choices)
    from .sweep import add_arguments as add_sweep_arguments

    add_sweep_arguments(
        sub.add_parser(
            "sweep",
            allow_abbrev=False,
            help="run a grid of any experiment's configs (resumable; local processes or Ray) "
            "and tabulate the best setting per group",
            description="Run every point of the grid in SPEC.toml as a run directory under the "
            "sweep's root (finished runs are skipped, interrupted ones resume), and write "
            "results.json and results.md there: every point's metrics and, per group, the "
            "setting selected on the validation metric with its test metrics. The spec format: "
            "gumbel_softmax.lab.sweep.",
        )
    )
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
    parser: argparse.ArgumentParser,
    config: Any,
    help_texts: Mapping[str, str],
    table: str,
    choices: Mapping[str, tuple[str, ...]],
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
        if f.name in choices:
            kw["choices"] = list(choices[f.name])
        parser.add_argument(flag, metavar=f.name.upper(), **kw)


def config_from_args(args: argparse.Namespace) -> Any:
    """The config of the experiment ``args.command`` (:class:`VAEConfig` for ``vae``, ...) of
    ``args``: defaults < TOML file < command line; raises :class:`ConfigError` on any bad value."""
    command = getattr(args, "command", "vae")
    values: dict[str, Any] = {}
    given = vars(args).copy()
    for key in ("command", "action", "rest"):
        given.pop(key, None)
    path = given.pop("config", None)
    if path is not None:
        values.update(load_toml(path, table=command))
    values.update(given)
    return EXPERIMENTS[command].config.from_dict(values)


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (default ``sys.argv[1:]``); return its exit status (0), or exit
    with status 2 and a message on stderr."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "data":
        from .data import download_main

        return int(download_main(args.rest))
    if args.command == "sweep":
        return _sweep(parser, args)
    exp = EXPERIMENTS[args.command]
    try:
        config = config_from_args(args)
    except ConfigError as err:
        parser.error(str(err))  # exits with status 2 before any work starts
    with _warnings_as_messages():
        try:
            result = exp.main(config)
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
    print(exp.summary(config, result))
    print(f"run record: {result.run_dir}")
    if result.figures:
        print(f"figures: {result.figures[0].parent}")
    return 0


def _sweep(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .sweep import SweepError, load_spec, run_sweep

    try:
        spec = load_spec(args.spec, overrides=args.overrides)
    except ConfigError as err:
        parser.error(str(err))  # exits with status 2 before any run starts
    with _warnings_as_messages():
        try:
            result = run_sweep(
                spec,
                jobs=args.jobs,
                engine=args.engine,
                address=args.address,
                dry_run=args.dry_run,
                render=args.render,
            )
        except (ConfigError, SweepError) as err:
            parser.error(str(err))
        except OSError as err:
            where = f"{err.filename}: " if err.filename else ""
            _fail(f"{where}{err.strerror or err}")
        except KeyboardInterrupt:
            print(
                "gumbel-softmax: interrupted; run the same command again to resume the sweep "
                "(finished runs are skipped, interrupted ones resume from their checkpoints)",
                file=sys.stderr,
            )
            return 130
    print(result.summary())
    return 0 if result.failed == 0 and result.final_failed == 0 else 1


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
