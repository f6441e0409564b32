"""Every registered estimator, one budget, one picture: does each estimator train in the lab?

For every estimator of ``gumbel_softmax.estimators.available()`` and every latent type it supports
(categorical 20×10 for every estimator that is not ``binary_only``; Bernoulli 200, K = 2, for all),
one run of the lab's VAE through :func:`gumbel_softmax.lab.experiment.main` (the one runner) with
the lab defaults (``VAEConfig()``: Adam lr 1e-3, batch 100, τ = max(0.5, exp(-3e-5 t)) updated
every 1000 steps), 10 epochs, seed 0, on the full fixed binarized MNIST. One exception to the
defaults, recorded in the row's ``settings.adjusted``: an estimator whose declared
``min_temperature`` is above τmin (ReinMax: 1) has τ0 and τmin raised to it.

This is a smoke test of the wiring at a common budget, not the paper's tuned protocol (no
per-estimator learning rate, temperature or epoch count; for the Table 1 rows see ``run.py``).

Outputs, beside this script or in ``--results-dir``:

* ``runs/all-<latent>-<estimator>/``: each run's record (not committed). Starting the script
  again resumes an interrupted run from its checkpoint and skips runs whose row is already in
  the JSON with the same settings.
* ``all_estimators.json``: one row per run (``latent``, ``estimator``, ``epochs``,
  ``valid_neg_elbo``, ``test_neg_elbo``, ``test_iw_bound_m1000`` (``_m<m>`` with another
  ``--eval-samples``), ``wall_s``, ``settings``, ``git_revision``, ``machine``, ...), rewritten
  atomically after each run, so a partial sweep keeps what it finished.
* ``all_estimators.md`` (the table) and ``all_estimators-<latent>.png`` (validation −ELBO
  against step, one figure per latent type), both rendered from the JSON: each row carries its
  validation curve (``curve``), read from the run's ``metrics.jsonl`` when it finishes. A row
  from before rows carried it is drawn from its run's record when that is on the machine; a
  latent with a row that has neither keeps its committed figure (never drawn with fewer runs).

    OMP_NUM_THREADS=1 nice python benchmarks/vae/all_estimators.py --jobs 2
    python benchmarks/vae/all_estimators.py --render      # only rebuild the .md and .png
    python benchmarks/vae/all_estimators.py --dataset binarized-mnist-subset --max-steps 20 \\
        --eval-every 10 --eval-samples 2 --valid-images 50 --test-images 50 \\
        --estimators gs arm --results-dir /tmp/smoke      # a quick check of the script
"""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

from gumbel_softmax import estimators
from gumbel_softmax.lab import experiment
from gumbel_softmax.lab.config import ConfigError, VAEConfig, describe_temperature
from gumbel_softmax.lab.data import DATASETS, load_dataset
from gumbel_softmax.lab.records import cpu_model, eval_curve, git_revision, write_atomic
from gumbel_softmax.lab.runner import RunDirectory, exit_with_parent

HERE = Path(__file__).resolve().parent
PROG = "all_estimators.py"
JSON_NAME = "all_estimators.json"
MD_NAME = "all_estimators.md"


def png_name(latent: str) -> str:
    return f"all_estimators-{latent}.png"


# (N, K) of each latent type: the paper's two VAEs.
LATENTS: dict[str, tuple[int, int]] = {"categorical": (20, 10), "bernoulli": (200, 2)}
# Config keys that say where or how a run is shown, not what it computes.
_NOT_SETTINGS = ("run_dir", "data_dir", "progress", "figures", "download")


# ---------------------------------------------------------------------------------- the sweep
def combinations(latents: Sequence[str], names: Sequence[str]) -> list[tuple[str, str]]:
    """The (latent, estimator) pairs to run: binary-only estimators have no categorical run, and
    an estimator that enumerates joint states has no run whose K**N exceeds its declared
    ``max_states`` (``exact``, ``unordered-set``: none at these sizes, 10**20 and 2**200)."""

    def fits(latent: str, name: str) -> bool:
        n, k = LATENTS[latent]
        limit = estimators.estimator_class(name).max_states
        return limit is None or k**n <= limit

    return [
        (latent, name)
        for latent in latents
        for name in names
        if not (latent == "categorical" and estimators.estimator_class(name).binary_only)
        and fits(latent, name)
    ]


def make_config(latent: str, name: str, args: argparse.Namespace) -> tuple[VAEConfig, list[str]]:
    """The run's config (the lab defaults plus the sweep's options) and the list of its
    deviations from the defaults that the estimator's declared capabilities forced."""
    n, k = LATENTS[latent]
    cls = estimators.estimator_class(name)
    defaults = VAEConfig()
    tau0, tau_min = defaults.tau0, defaults.tau_min
    adjusted: list[str] = []
    if cls.temperature_kind is not None and cls.min_temperature > tau_min:
        low = cls.min_temperature
        raised = [
            f"{key} {value:g} -> {low:g}"
            for key, value in (("tau0", tau0), ("tau_min", tau_min))
            if value < low
        ]
        adjusted.append(f"{', '.join(raised)} ({name} declares min_temperature {low:g})")
        tau0, tau_min = max(tau0, low), low
    config = VAEConfig(
        latent=latent,
        n_latent=n,
        n_classes=k,
        estimator=name,
        dataset=args.dataset,
        data_dir=args.data_dir,
        epochs=args.epochs,
        max_steps=args.max_steps,
        tau0=tau0,
        tau_min=tau_min,
        eval_every=args.eval_every,
        eval_samples=args.eval_samples,
        eval_images=args.valid_images,
        test_images=args.test_images,
        progress=False,
        run_dir=str(args.results_dir / run_name(latent, name)),
    ).validate()
    return config, adjusted


def run_name(latent: str, name: str) -> str:
    return f"runs/all-{latent}-{name}"


def settings_of(config: VAEConfig, adjusted: list[str]) -> dict[str, Any]:
    s = {k: v for k, v in config.to_dict().items() if k not in _NOT_SETTINGS}
    s["adjusted"] = adjusted
    return s


def with_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored row's settings with the config fields added after it was stored, at their
    defaults: at its default a new field computes what the row's run computed (a new field's
    default keeps the old behaviour)."""
    defaults = {k: v for k, v in VAEConfig().to_dict().items() if k not in _NOT_SETTINGS}
    return {**defaults, **stored}


def same_settings(stored: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Whether a stored row was run with ``settings`` (see :func:`with_defaults`)."""
    return with_defaults(stored) == settings


_SPLITS: dict[tuple[str, str], Any] = {}


def _splits(dataset: str, data_dir: str) -> Any:
    """The dataset, loaded once per process."""
    key = (dataset, data_dir)
    if key not in _SPLITS:
        _SPLITS[key] = load_dataset(dataset, data_dir=data_dir or None)
    return _SPLITS[key]


def _init_worker() -> None:
    # Parallel runs share the cores: one thread each, so they do not oversubscribe them.
    torch.set_num_threads(1)
    exit_with_parent()  # a killed sweep takes its workers with it


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume, or re-read) one run and return its row. Runs in a worker process."""
    config = VAEConfig.from_dict(job["config"])
    splits = _splits(config.dataset, config.data_dir)
    load_start = os.getloadavg()[0]  # the machine may be shared: its load explains wall times
    t0 = time.perf_counter()
    result = experiment.main(config, splits=splits)
    wall = time.perf_counter() - t0
    run = json.loads((result.run_dir / "run.json").read_text())
    m = config.eval_samples
    return {
        "latent": config.latent,
        "estimator": config.estimator,
        "n_latent": config.n_latent,
        "n_classes": config.n_classes,
        # Epochs actually trained (fewer than settings.epochs when max_steps stopped the run).
        "epochs": round(result.step / run["steps_per_epoch"], 3),
        "steps": result.step,
        "valid_neg_elbo": result.valid["neg_elbo"],
        "test_neg_elbo": result.test["neg_elbo"],
        f"test_iw_bound_m{m}": result.test["iw_bound"],
        "valid_images": result.valid["n_images"],
        "test_images": result.test["n_images"],
        "iw_samples": m,
        # This session's time; a resumed run says from which step it resumed.
        "wall_s": round(wall, 1),
        "resumed_from_step": run["sessions"][-1]["resumed_from_step"],
        "temperature_kind": estimators.estimator_class(config.estimator).temperature_kind,
        "settings": job["settings"],
        "dataset": splits.name,
        "git_revision": job["git_revision"],
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "parallel_jobs": job["jobs"],
            "torch": torch.__version__,
            "device": config.device,
            "load_average_1min_start": round(load_start, 2),
            "load_average_1min_end": round(os.getloadavg()[0], 2),
        },
        "run_dir": run_name(config.latent, config.estimator),
        "curve": eval_curve(RunDirectory(result.run_dir).metrics, "neg_elbo"),
    }


# ---------------------------------------------------------------------------------- the files
def read_rows(results_dir: Path) -> list[dict[str, Any]]:
    path = results_dir / JSON_NAME
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = json.loads(path.read_text())
    return rows


def _order(row: dict[str, Any]) -> tuple[int, str]:
    return (list(LATENTS).index(row["latent"]), row["estimator"])


def store_row(row: dict[str, Any], results_dir: Path) -> None:
    """Put ``row`` in the JSON in place of an older row of the same (latent, estimator), and
    re-render the table and the figure. A file lock serialises two sweeps finishing together."""
    (results_dir / "runs").mkdir(exist_ok=True)
    with open(results_dir / "runs" / ".all_estimators.lock", "w") as lock:  # runs/: not committed
        fcntl.flock(lock, fcntl.LOCK_EX)
        key = (row["latent"], row["estimator"])
        rows = [r for r in read_rows(results_dir) if (r["latent"], r["estimator"]) != key]
        rows = sorted([*rows, row], key=_order)
        write_atomic(results_dir / JSON_NAME, (json.dumps(rows, indent=2) + "\n").encode())
        render(results_dir)


def render(results_dir: Path) -> None:
    """Rebuild ``all_estimators.md`` and each latent's ``all_estimators-<latent>.png`` from the
    JSON; a latent with a run whose curve is neither in its row nor on this machine keeps its
    figure (a note on stderr says so)."""
    rows = read_rows(results_dir)
    kept: dict[str, list[str]] = {}  # latent -> the rows without a curve, where its figure stays
    for latent in LATENTS:
        part = [r for r in rows if r["latent"] == latent]
        curves = {r["estimator"]: curve_of(r, results_dir) for r in part}
        missing = [name for name, c in curves.items() if c is None]
        if missing:
            exists = (results_dir / png_name(latent)).exists()
            if exists:
                kept[latent] = missing
            print(
                f"{PROG}: {png_name(latent)} {'kept' if exists else 'not drawn'}: no "
                f"curve for {', '.join(missing)} (its run's record is not on this machine)",
                file=sys.stderr,
            )
        elif part:
            write_atomic(results_dir / png_name(latent), render_figure(latent, part, curves))
    write_atomic(results_dir / MD_NAME, render_markdown(rows, kept).encode())


def curve_of(row: dict[str, Any], results_dir: Path) -> list[list[float]] | None:
    """``[[step, validation −ELBO], ...]`` of a run: from its row, else from its record; None
    when neither is here (a row from before rows carried it, its record on another machine)."""
    if "curve" in row:
        return row["curve"]
    metrics = RunDirectory(results_dir / row["run_dir"]).metrics
    return eval_curve(metrics, "neg_elbo") if metrics.exists() else None


def _iw(row: dict[str, Any]) -> float:
    value: float = row[f"test_iw_bound_m{row['iw_samples']}"]
    return value


def _common(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """For each setting every row has, the value most rows have (a row lists only where it
    differs: ReinMax's raised temperature floor, say)."""
    if not rows:
        return {}
    keys = set.intersection(*(set(r["settings"]) for r in rows)) - {"adjusted"}
    common = {}
    for key in sorted(keys):
        values = [json.dumps(r["settings"][key]) for r in rows]
        common[key] = json.loads(max(values, key=values.count))
    return common


def render_markdown(rows: list[dict[str, Any]], kept: dict[str, list[str]] | None = None) -> str:
    rows = [{**r, "settings": with_defaults(r["settings"])} for r in rows]
    common = _common(rows)
    per_latent = {"estimator", "latent", "n_latent", "n_classes"}
    shown_as_temperature = {"temperature", "tau0", "tau_min"}
    lines = [
        "# Every estimator in the lab's VAE, at one budget",
        "",
        "Generated by `benchmarks/vae/all_estimators.py` from `all_estimators.json`; do not edit",
        "by hand. Each registered estimator trained on each latent type it supports, through the",
        "lab's one runner (`gumbel_softmax.lab.experiment.main`), with the lab's default settings",
        "and one seed. It measures whether and how well each estimator trains in the lab at a",
        "common budget. It is **not** the paper's tuned protocol: no estimator's learning rate,",
        "temperature or epoch count was tuned (the paper's Table 1 rows are in `results.md`).",
        "",
        "Nats per image, lower is better. −ELBO: one one-hot sample from the encoder, analytic KL;",
        "IW bound: the importance-weighted bound with m samples. `valid` and `test` are the",
        "validation and test splits (all of their images unless the settings say otherwise).",
        "Rows are sorted by test −ELBO. Wall times are of the session that finished the run",
        "(a resumed run says where it resumed), on the machine listed below.",
        "",
    ]
    for latent, (n, k) in LATENTS.items():
        part = sorted((r for r in rows if r["latent"] == latent), key=lambda r: r["test_neg_elbo"])
        if not part:
            continue
        shape = f"{n}×{k}" if latent == "categorical" else f"{n} bits"
        lines += [
            f"## {latent.capitalize()} {shape}",
            "",
            "| estimator | epochs | steps | valid −ELBO | test −ELBO | test IW bound (m) | "
            "temperature | other settings | wall | git |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in part:
            other = [
                f"{key}={value}"
                for key, value in sorted(r["settings"].items())
                if key not in per_latent | shown_as_temperature
                and key != "adjusted"
                and (key not in common or value != common[key])
            ]
            other += r["settings"].get("adjusted", [])
            wall = f"{r['wall_s'] / 60:.1f} min"
            if r.get("resumed_from_step"):
                wall += f" (resumed at step {r['resumed_from_step']})"
            lines.append(
                f"| {r['estimator']} | {r['epochs']:g} | {r['steps']} | "
                f"{r['valid_neg_elbo']:.2f} | {r['test_neg_elbo']:.2f} | "
                f"{_iw(r):.2f} ({r['iw_samples']}) | {describe_temperature(r['estimator'], r['settings'])} | "
                f"{'; '.join(other) or '—'} | {wall} | {r['git_revision'][:8]} |"
            )
        lines.append("")
    if rows:
        shown = {k: v for k, v in common.items() if k not in per_latent}
        lines += [
            "## Settings of every row, unless its row says otherwise",
            "",
            ", ".join(f"`{k}={v}`" for k, v in shown.items()),
            "",
            "## Machines",
            "",
        ]
        machines = set()
        for r in rows:
            m = r["machine"]
            machines.add(
                f"- {m['cpu']}, {m['cores']} cores, {m['threads']} torch thread(s) per run, "
                f"{m['parallel_jobs']} run(s) in parallel, torch {m['torch']}, device "
                f"{m['device']}"
            )
        lines += [*sorted(machines), ""]
        loads = [
            v
            for r in rows
            for v in (
                r["machine"]["load_average_1min_start"],
                r["machine"]["load_average_1min_end"],
            )
        ]
        lines += [
            f"1-minute load average at the start and end of the runs: {min(loads):.1f} to "
            f"{max(loads):.1f} (per row in the JSON).",
            "",
            "Validation −ELBO against step: "
            + ", ".join(f"`{png_name(k)}`" for k in LATENTS)
            + ". Each run's record (config, metrics,",
            "figures, checkpoints) is under `runs/all-<latent>-<estimator>/`, not committed.",
            "",
        ]
        for latent, missing in (kept or {}).items():
            lines += [
                f"`{png_name(latent)}` is kept from an earlier render: {len(missing)} of its "
                "rows were stored before rows carried their validation curve, and their runs' "
                "records are not on the machine that rendered this, so it cannot be redrawn "
                "and lacks the rows measured since it was drawn (their curves are in "
                f"`{JSON_NAME}`).",
                "",
            ]
    else:
        lines += ["No runs yet.", ""]
    return "\n".join(lines)


def render_figure(
    latent: str, rows: list[dict[str, Any]], curves: dict[str, list[list[float]]]
) -> bytes:
    """PNG bytes: validation −ELBO against the step for each run of ``latent`` (``curves``, by
    estimator), the legend sorted by the final test −ELBO."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, k = LATENTS[latent]
    fig, ax = plt.subplots(figsize=(10, 6))
    # Ten distinct colours, then the same colours dashed, dash-dotted, ...
    colours = plt.get_cmap("tab10").colors
    styles = ("-", "--", "-.", ":")
    finals: list[float] = []
    for i, r in enumerate(sorted(rows, key=lambda r: r["test_neg_elbo"])):
        if not curves[r["estimator"]]:
            continue  # no evaluation yet
        steps, values = zip(*curves[r["estimator"]], strict=True)
        finals.append(values[-1])
        ax.plot(
            steps,
            values,
            styles[(i // len(colours)) % len(styles)],
            color=colours[i % len(colours)],
            marker="o",
            ms=2.5,
            lw=1.2,
            label=f"{r['estimator']} (test {r['test_neg_elbo']:.1f})",
        )
    shape = f"{n}×{k}" if latent == "categorical" else f"{n} bits"
    ax.set_title(
        f"Every estimator, {latent} {shape}, lab defaults, one seed\n(validation −ELBO during "
        "training; not the paper's tuned protocol)",
        fontsize=10,
    )
    ax.set_xlabel("step (minibatches of 100)")
    ax.set_ylabel("validation −ELBO (nats per image)")
    ax.grid(alpha=0.3)
    # Early evaluations of the slow estimators would squash the rest: the axis shows every
    # final value with room above it, and clips what starts higher.
    if finals:
        low, high = min(finals), max(finals)
        ax.set_ylim(low - 0.05 * (high - low) - 2, high + 0.35 * (high - low) + 10)
    ax.legend(
        fontsize=7,
        title="estimator (test −ELBO)",
        title_fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),  # beside the axes: 21 lines leave no room inside
        borderaxespad=0.0,
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


# ---------------------------------------------------------------------------------- the CLI
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument(
        "--latent",
        choices=["all", *LATENTS],
        default="all",
        help="latent type(s) to run (default: all)",
    )
    p.add_argument(
        "--estimators",
        nargs="+",
        metavar="NAME",
        default=None,
        help=f"a subset of the registry (default: all of {estimators.available()})",
    )
    p.add_argument("--epochs", type=int, default=10, help="epochs per run (default: 10)")
    p.add_argument(
        "--max-steps", type=int, default=0, help="stop each run after this many steps (smoke tests)"
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="steps between validation evaluations (default 0: once per epoch)",
    )
    p.add_argument(
        "--eval-samples", type=int, default=1000, help="m of the final IW bounds (default: 1000)"
    )
    p.add_argument("--valid-images", type=int, default=0, help="validation images (default 0: all)")
    p.add_argument("--test-images", type=int, default=0, help="test images (default 0: all)")
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        default="binarized-mnist",
        help="dataset (default: the fixed binarized MNIST; binarized-mnist-subset for smoke tests)",
    )
    p.add_argument(
        "--data-dir",
        default=os.environ.get("GUMBEL_SOFTMAX_DATA", "/work/shared/data"),
        help="directory holding the datasets (default: $GUMBEL_SOFTMAX_DATA, else "
        "/work/shared/data)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs in parallel processes, each with one torch thread (default: 1, in this "
        "process with torch's default threads)",
    )
    p.add_argument(
        "--results-dir",
        type=Path,
        default=HERE,
        help="where the JSON, .md, .png and runs/ go (default: benchmarks/vae)",
    )
    p.add_argument(
        "--render", action="store_true", help="only re-render the .md and .png from the JSON"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    for key in ("epochs", "jobs", "eval_samples"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    for key in ("max_steps", "eval_every", "valid_images", "test_images"):
        if getattr(args, key) < 0:
            p.error(f"--{key.replace('_', '-')} must be >= 0, got {getattr(args, key)}")
    names = args.estimators or estimators.available()
    unknown = [n for n in names if n not in estimators.available()]
    if unknown:
        p.error(f"--estimators: unknown {unknown}; registered: {estimators.available()}")
    latents = list(LATENTS) if args.latent == "all" else [args.latent]
    pairs = combinations(latents, names)
    if not pairs:
        p.error(
            f"--estimators {names} with --latent {args.latent}: no run (binary-only estimators)"
        )
    if args.results_dir.exists() and not args.results_dir.is_dir():
        p.error(f"--results-dir {str(args.results_dir)!r} is not a directory")
    try:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        if args.render:
            render(args.results_dir)
            print(f"rendered {args.results_dir / MD_NAME} and the figures")
            return 0
        jobs = []
        done = {(r["latent"], r["estimator"]): r for r in read_rows(args.results_dir)}
        for latent, name in pairs:
            config, adjusted = make_config(latent, name, args)
            settings = settings_of(config, adjusted)
            old = done.get((latent, name))
            if old is not None and same_settings(old["settings"], settings):
                print(f"{latent} {name}: done (test −ELBO {old['test_neg_elbo']:.2f}), skipped")
                continue
            jobs.append({"config": config.to_dict(), "settings": settings})
        if not jobs:
            return 0
        _splits(args.dataset, args.data_dir)  # a missing dataset fails here, before any run
    except (ConfigError, FileNotFoundError, OSError) as err:
        p.exit(2, f"{PROG}: error: {err}\n")
    revision = git_revision(HERE)  # of the code that runs, read before the long runs
    for job in jobs:
        job.update(git_revision=revision, jobs=args.jobs)
    failed: list[str] = []

    def finish(job: dict[str, Any], row: dict[str, Any] | None, err: BaseException | None) -> None:
        what = f"{job['config']['latent']} {job['config']['estimator']}"
        if row is None:
            failed.append(what)
            if not isinstance(err, ConfigError):  # a bug, not a bad option: show where
                traceback.print_exception(err)
            print(f"{PROG}: error: run {what} failed: {err}", file=sys.stderr)
            return
        store_row(row, args.results_dir)
        print(
            f"{what}: {row['steps']} steps, valid −ELBO {row['valid_neg_elbo']:.2f}, test "
            f"−ELBO {row['test_neg_elbo']:.2f}, test IW {_iw(row):.2f}, {row['wall_s']:.0f} s",
            flush=True,
        )

    print(f"{len(jobs)} run(s) to do, {args.jobs} at a time", flush=True)
    if args.jobs == 1:
        for job in jobs:
            try:
                finish(job, run_one(job), None)
            except Exception as err:  # the other runs still go ahead
                finish(job, None, err)
    else:
        context = multiprocessing.get_context("spawn")  # no fork of a process running torch
        with ProcessPoolExecutor(args.jobs, mp_context=context, initializer=_init_worker) as pool:
            futures = {pool.submit(run_one, job): job for job in jobs}
            for future in as_completed(futures):
                err = future.exception()
                finish(futures[future], None if err else future.result(), err)
    if failed:
        print(f"{PROG}: error: {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
