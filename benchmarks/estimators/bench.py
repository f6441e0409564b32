"""Bias, variance and time of every registered gradient estimator on the standard toy problems.

Run (a few minutes on one core)::

    OMP_NUM_THREADS=1 python benchmarks/estimators/bench.py [--num-samples 1000] [--quick]
    OMP_NUM_THREADS=1 python benchmarks/estimators/bench.py --only vimco exact  # update rows

``--only NAME ...`` measures those estimators alone and keeps every other estimator's rows of the
existing ``results.md`` (their own run's numbers; each row's time ratio is against the torch
baseline of the process that measured it), so that an added estimator needs no full rerun.

Writes ``results.md`` (markdown tables) and ``results.png`` (bias, variance and time against the
temperature) next to this file. Every estimator in ``gumbel_softmax.estimators.available()`` is
measured: those with a declared ``temperature_kind`` at each temperature of the grid they
accept, the others once. All estimators see the same seeds (common random numbers), and every timing is also
given as a ratio to PyTorch's own ``F.gumbel_softmax(hard=True)`` forward and backward on the same
problem, measured in the same process.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from gumbel_softmax.diagnostics import MAX_STATES, ToyProblem, gradient_stats, toy_problems
from gumbel_softmax.estimators import Estimator, available, build, estimator_class
from gumbel_softmax.lab.records import git_revision, machine_line

HERE = Path(__file__).resolve().parent
TEMPERATURES = (0.1, 0.5, 1.0, 2.0)
EXTRA_TEMPERATURES = (0.5, 2.0)  # decoupled-st-gs's forward temperature (1 is plain st-gs)
SUMMARY_TEMPERATURE = 1.0


@dataclass
class Row:
    problem: str
    estimator: str
    temperature: float | None
    bias: float
    bias_se: float
    variance: float
    mse: float
    rel_mse: float
    cosine: float
    mean_cosine: float
    micros: float
    ratio: float


def builds(name: str, event_shape: tuple[int, int]) -> list[tuple[str, float | None, Estimator]]:
    """(label, temperature, estimator) built for ``event_shape`` from its declarations: at every
    grid temperature it accepts (``temperature_kind``, ``min_temperature``: ReinMax refuses
    temperatures below 1), or once with its defaults when it has no temperature; each of its
    ``extra_temperatures`` also at the values of ``EXTRA_TEMPERATURES``, at the summary
    temperature (the others at their defaults); none where K**N exceeds its ``max_states``; a ``multi_sample_bound`` estimator
    (VIMCO) with the largest S of 4, 3, 2 whose (K**N)**S tuples the exact bound can enumerate,
    none if there is no such S."""
    cls = estimator_class(name)
    n, k = event_shape
    if cls.max_states is not None and k**n > cls.max_states:
        return []
    options: dict[str, object] = {}
    if cls.multi_sample_bound:
        fitting = [s for s in (4, 3, 2) if (k**n) ** s <= MAX_STATES]
        if not fitting:
            return []
        options["num_samples"] = fitting[0]
    label = name if not options else f"{name} S={options['num_samples']}"
    if cls.temperature_kind is None:
        return [(label, None, build(name, event_shape=event_shape, **options))]
    out = [
        (label, t, build(name, event_shape=event_shape, temperature=t, **options))
        for t in TEMPERATURES
        if t >= cls.min_temperature
    ]
    t = SUMMARY_TEMPERATURE
    for attr in cls.extra_temperatures:  # at the summary temperature only
        for value in EXTRA_TEMPERATURES:
            est = build(name, event_shape=event_shape, temperature=t, **{attr: value})
            out.append((f"{label} {attr}={value:g}", t, est))
    return out


def torch_baseline_seconds(problem: ToyProblem, repeats: int) -> float:
    """Seconds per forward+backward of torch's own straight-through Gumbel-Softmax."""
    base = problem.logits.detach()
    start = time.perf_counter()
    for _ in range(repeats):
        x = base.clone().requires_grad_(True)
        z = torch.nn.functional.gumbel_softmax(x, tau=1.0, hard=True)
        torch.autograd.grad(problem.f(z).sum(), x)
    return (time.perf_counter() - start) / repeats


def measure(num_samples: int, names: list[str], problems: dict[str, ToyProblem]) -> list[Row]:
    rows = []
    for pname, problem in problems.items():
        torch_baseline_seconds(problem, 20)  # warm-up
        baseline = torch_baseline_seconds(problem, num_samples)
        n, k = problem.logits.shape
        for name in names:
            if estimator_class(name).binary_only and k != 2:
                continue  # binary-only estimators (ARM, DisARM): "n/a" on K > 2 problems
            for label, t, est in builds(name, (n, k)):
                s = gradient_stats(
                    est,
                    problem.f,
                    problem.logits,
                    num_samples=num_samples,
                    generator=torch.Generator().manual_seed(0),
                    # a multi-sample-bound estimator is measured against its own objective's
                    # exact gradient (by enumeration of S-tuples), the others against E f's
                    exact=None if est.multi_sample_bound else problem.exact,
                )
                micros = 1e6 * s.seconds_per_estimate
                rows.append(
                    Row(
                        pname,
                        label,
                        t,
                        s.bias_norm,
                        float(s.stderr.norm()),
                        s.total_variance,
                        s.mse,
                        s.mse / float(s.exact.pow(2).sum()),
                        s.cosine,
                        s.mean_cosine,
                        micros,
                        s.seconds_per_estimate / baseline,
                    )
                )
                print(
                    f"{pname:16s} {label:12s} {t!s:5s} bias {s.bias_norm:.3e} "
                    f"var {s.total_variance:.3e} {micros:.0f}us",
                    flush=True,
                )
    return rows


def _fmt(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def machine() -> str:
    return (
        f"{machine_line()} (a shared machine, so timings are noisy; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); "
        f"Python {platform.python_version()}; git {git_revision(HERE)}"
    )


def write_markdown(
    rows: list[Row],
    problems: dict[str, ToyProblem],
    num_samples: int,
    runs: list[str],
    path: Path,
) -> None:
    lines = [
        "# Gradient estimators on toy problems: bias, variance, time",
        "",
        "Generated by `OMP_NUM_THREADS=1 python benchmarks/estimators/bench.py`; do not edit.",
        "",
        *runs,
        f"- {num_samples} independent estimates per cell (float64, seed 0 for every estimator: "
        "common random numbers).",
        "- bias = ||mean estimate - exact gradient||_2 (its noise: ||stderr||_2 = `±`); "
        "variance = trace of the covariance of one estimate; MSE = bias^2 + variance "
        "(of one estimate); rel = MSE / ||exact||^2 (1 is what always answering 0 scores); "
        "cos = cosine of the mean estimate with the exact gradient; cos1 = mean cosine of a "
        "single estimate; us = microseconds per estimate (forward + backward); x torch = that "
        "time over torch.nn.functional.gumbel_softmax(hard=True)'s, same problem and process.",
        "- The exact gradient is by enumeration of all states, or in closed form for the "
        "separable polynomial problems. `vimco S=s` optimises the S-sample bound "
        "-E log mean_s exp(-f(z_s)), not E f: its bias, variance and rel are against the exact "
        "gradient of that bound (enumerating every S-tuple of states), with the largest S of "
        "4, 3, 2 that can be enumerated (none on the 2^128-state polynomial problems). `exact` "
        "and `unordered-set` enumerate the K^N joint states (max_states 4096 and 65536): "
        "n/a on the polynomial problems. `decoupled-st-gs forward_temperature=t` rows: τ is the "
        "backward temperature; at forward_temperature 1 (the plain rows) it is st-gs.",
        "",
        "## Problems",
        "",
        "| problem | logits | f |",
        "|---|---|---|",
    ]
    for p in problems.values():
        lines.append(f"| {p.name} | {tuple(p.logits.shape)} | {p.description} |")
    names = list(dict.fromkeys(r.estimator for r in rows))
    lines += [
        "",
        f"## Summary at τ = {SUMMARY_TEMPERATURE:g}",
        "",
        "Cells: bias / variance / microseconds per estimate, at τ = "
        f"{SUMMARY_TEMPERATURE:g} (estimators without a temperature: their defaults).",
        "",
        "| problem | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for pname in problems:
        cells = []
        for name in names:
            r = next(
                (
                    r
                    for r in rows
                    if r.problem == pname
                    and r.estimator == name
                    and r.temperature in (None, SUMMARY_TEMPERATURE)
                ),
                None,
            )
            cells.append(
                "n/a" if r is None else f"{_fmt(r.bias)} / {_fmt(r.variance)} / {r.micros:.0f}"
            )
        lines.append(f"| {pname} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += ["## All measurements", ""]
    lines += [
        "| problem | estimator | τ | bias ± | variance | MSE | rel | cos | cos1 | us | x torch |",
        "|---" * 11 + "|",
    ]
    for r in rows:
        t = "-" if r.temperature is None else f"{r.temperature:g}"
        lines.append(
            f"| {r.problem} | {r.estimator} | {t} | {_fmt(r.bias)} ± {_fmt(r.bias_se)} | "
            f"{_fmt(r.variance)} | {_fmt(r.mse)} | {_fmt(r.rel_mse)} | {r.cosine:.3f} | "
            f"{r.mean_cosine:.3f} | {r.micros:.0f} | {r.ratio:.2f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def _number(cell: str) -> float:
    return float(cell.split("±")[0])


def read_results(path: Path) -> tuple[list[Row], list[str]]:
    """The rows of an existing ``results.md`` (its "All measurements" table, at the 3 significant
    digits written there) and its machine lines."""
    lines = path.read_text().splitlines()
    runs = [line for line in lines if line.startswith("- Machine")]
    # the format before --only existed: one machine line, the run's time on the next
    whole = re.search(r"whole run (\d+) s", "\n".join(lines))
    if whole and runs and runs[0].startswith("- Machine: "):
        what = f"the other rows, whole run {whole.group(1)} s"
        runs[0] = f"- Machine ({what}): " + runs[0].removeprefix("- Machine: ")
    start = lines.index("## All measurements")
    rows = []
    for line in lines[start + 4 :]:
        if not line.startswith("| "):
            break
        c = [x.strip() for x in line.strip("|").split("|")]
        bias, se = (float(x) for x in c[3].split("±"))
        temperature = None if c[2] == "-" else float(c[2])
        rest = [_number(x) for x in c[4:11]]
        rows.append(Row(c[0], c[1], temperature, bias, se, *rest))
    return rows, runs


def plot(rows: list[Row], problems: dict[str, ToyProblem], path: Path) -> None:
    names = list(dict.fromkeys(r.estimator for r in rows))
    colours = {n: plt.get_cmap("tab20")(i % 20) for i, n in enumerate(names)}
    fig, axes = plt.subplots(3, len(problems), figsize=(3.2 * len(problems), 9), squeeze=False)
    for j, pname in enumerate(problems):
        for name in names:
            rs = [r for r in rows if r.problem == pname and r.estimator == name]
            if not rs:  # binary-only estimators on K > 2 problems
                continue
            temps = [r.temperature for r in rs if r.temperature is not None]
            for i, key in enumerate(("bias", "variance")):
                ax = axes[i, j]
                vals = [getattr(r, key) for r in rs]
                if temps:
                    ax.plot(temps, vals, "o-", color=colours[name], label=name, ms=3)
                else:
                    ax.axhline(vals[0], color=colours[name], ls="--", lw=1, label=name)
            axes[2, j].bar(name, min(r.micros for r in rs), color=colours[name])
        for i, label in enumerate(("bias ||E g - g*||", "variance tr Cov g")):
            ax = axes[i, j]
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("temperature")
            ax.set_ylabel(label)
        axes[0, j].set_title(pname)
        axes[2, j].set_ylabel("us per estimate")
        axes[2, j].tick_params(axis="x", rotation=90, labelsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(names), 9), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="100 samples, two problems")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="measure these; keep the others' rows"
    )
    args = parser.parse_args()
    num = 100 if args.quick else args.num_samples
    problems = toy_problems()
    if args.quick:
        problems = {k: problems[k] for k in ("simplex-qp", "poly-2")}
    names = available()
    path = args.out / "results.md"
    kept: list[Row] = []
    runs: list[str] = []
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f"--only: unknown estimator(s) {unknown}; available: {names}")
        kept, runs = read_results(path)
        kept = [
            r for r in kept if r.estimator.split()[0] not in args.only and r.problem in problems
        ]
        names = [n for n in names if n in args.only]
    start = time.perf_counter()
    rows = measure(num, names, problems)
    seconds = time.perf_counter() - start
    what = f"rows of {', '.join(names)}" if args.only else "whole run"
    runs.append(f"- Machine ({what}, {seconds:.0f} s): {machine()}.")
    order = {n: i for i, n in enumerate(available())}
    pindex = {p: i for i, p in enumerate(problems)}
    rows = sorted(kept + rows, key=lambda r: (pindex[r.problem], order[r.estimator.split()[0]]))
    args.out.mkdir(parents=True, exist_ok=True)
    write_markdown(rows, problems, num, runs, path)
    plot(rows, problems, args.out / "results.png")
    print(f"wrote {args.out / 'results.md'} and {args.out / 'results.png'} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
