"""The sequence GAN on the grammar task (issue 13; Kusner & Hernández-Lobato 2016,
arXiv:1611.04051): Gumbel-Softmax, straight-through Gumbel-Softmax and REINFORCE generators
against an LSTM discriminator, beside the maximum-likelihood LSTM of the same size, at the same
number of generator updates, scored by parse rate, unique fraction, novelty and held-out NLL;
and, with ``--task oracle``, the same methods on SeqGAN's synthetic oracle (NLL_oracle, NLL_gen).

Each method trains with :func:`gumbel_softmax.lab.gan.main` (its record goes to
``<results-dir>/runs/<method>-s<seed>/``, not committed): the GAN methods pre-train by maximum
likelihood for ``--pretrain-steps`` and then take ``--adversarial-steps``; the MLE baseline
takes all of them by maximum likelihood. When a run finishes, one row is appended to
``results.json``, its 1,000 final samples (sampling temperature 1) are written to
``samples/<method>.txt`` and ``results.md`` and the figures are rendered again. A stopped
benchmark resumes: finished runs (in results.json at these settings) are skipped, an unfinished
one continues from its checkpoint.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/gan/run.py --methods mle gs st-gs reinforce
    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/gan/run.py --task oracle --methods mle gs reinforce
    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/gan/run.py --methods seqgan --rollouts 4
    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/gan/run.py --methods gs --d-steps 3 --lr-d 1e-4 --variant d3-lrd1e-4
    python benchmarks/gan/run.py --render        # only rebuild results.md and the figures
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from gumbel_softmax import estimators
from gumbel_softmax.lab import gan, grammar
from gumbel_softmax.lab.config import GANConfig
from gumbel_softmax.lab.records import git_revision, machine_line, put_row, read_metrics, read_rows

HERE = Path(__file__).resolve().parent
#: method -> (objective, estimator, reward): REINFORCE is ``sf-ema`` (a running-mean baseline)
#: weighting every token's score by the whole sequence's cost; SeqGAN is the same estimator with
#: the per-token Monte Carlo rollout reward (``--rollouts`` completions of each prefix).
METHODS = {
    "mle": ("mle", "gs", "sequence"),
    "gs": ("gan", "gs", "sequence"),
    "st-gs": ("gan", "st-gs", "sequence"),
    "reinforce": ("gan", "sf-ema", "sequence"),
    "seqgan": ("gan", "sf-ema", "rollout"),
    "nvil": ("gan", "nvil", "sequence"),
}


def make_config(method: str, a: argparse.Namespace) -> GANConfig:
    objective, estimator, reward = METHODS[method]
    adversarial = objective == "gan"
    name = f"{method}-{a.variant}" if a.variant else method
    tag = f"{name}-s{a.seed}" if a.task == "grammar" else f"oracle-{name}-s{a.seed}"
    return GANConfig(
        task=a.task,
        objective=objective,
        estimator=estimator,
        hidden=a.hidden,
        disc_hidden=a.hidden,
        batch_size=a.batch_size,
        epochs=1000,
        max_steps=a.pretrain_steps + a.adversarial_steps,
        pretrain_steps=a.pretrain_steps if adversarial else 0,
        reward=reward,
        rollouts=a.rollouts,
        d_steps=a.d_steps,
        lr=a.lr,
        lr_d=a.lr_d,
        temperature="inverse",
        beta_max=a.beta_max,
        beta_steps=a.adversarial_steps,
        sample_temperatures=",".join(f"{t:g}" for t in a.sample_temperatures),
        eval_strings=a.eval_strings,
        eval_every=a.eval_every,
        checkpoint_every=100,
        log_every=10,
        seed=a.seed,
        figures=True,
        progress=False,
        run_dir=str(a.results_dir / "runs" / tag),
    ).validate()


def append_row(row: dict[str, Any], results_dir: Path) -> None:
    """Put ``row`` into results.json in place of the row of the same run directory."""
    put_row(results_dir / "results.json", row)


def run(method: str, a: argparse.Namespace, rev: str) -> None:
    config = make_config(method, a)
    tag = Path(config.run_dir).name
    defaults = _settings(GANConfig())  # for settings added after a row was written
    for r in read_rows(a.results_dir / "results.json"):
        if (
            r["run"] == tag
            and r["steps"] == config.max_steps
            and {**defaults, **r["settings"]} == _settings(config)
        ):
            print(f"run.py: {tag} done")
            return
    load_start = os.getloadavg()[0]
    t0 = time.time()
    print(f"run.py: {tag} ...", flush=True)
    result = gan.main(config)
    f = result.final
    samples = a.results_dir / "samples" / f"{tag.rsplit('-s', 1)[0]}.txt"
    samples.parent.mkdir(parents=True, exist_ok=True)
    samples.write_text("".join(s + "\n" for s in f["samples"]))
    taus = sorted({1.0, *config.temperatures()})
    if config.task == "oracle":
        scores: dict[str, Any] = {
            "nll_oracle": f["nll_oracle"],
            "nll_gen": f["nll_gen"],
            "by_sampling_temperature": {
                f"{t:g}": {"nll_oracle": f[f"nll_oracle@{t:g}"]} for t in taus
            },
        }
    else:
        scores = {
            "parse_rate": f["parse_rate"],
            "unique": f["unique"],
            "novel": f["novel"],
            "heldout_nll": f["heldout_nll"],
            "by_sampling_temperature": {
                f"{t:g}": {k: f[f"{k}@{t:g}"] for k in ("parse_rate", "unique", "novel")}
                for t in taus
            },
        }
    append_row(
        {
            "task": config.task,
            "method": f"{method}-{a.variant}" if a.variant else method,
            "objective": config.objective,
            "estimator": config.estimator if config.objective == "gan" else "",
            **{k: v for k, v in scores.items() if k != "by_sampling_temperature"},
            "steps": result.step,
            "adversarial_steps": result.step - config.pretrain_steps
            if config.objective == "gan"
            else 0,
            "seed": config.seed,
            "temperature": _temperature(config),
            "by_sampling_temperature": scores["by_sampling_temperature"],
            "settings": _settings(config),
            "git_revision": rev,
            "machine": machine_line(load_start=load_start),
            "wall_s": round(time.time() - t0, 1),
            "run": tag,
        },
        a.results_dir,
    )
    render(a.results_dir)
    print(f"run.py: {tag} done")


def _temperature(config: GANConfig) -> str:
    """The estimator's temperature over the adversarial steps, in words."""
    if config.objective != "gan":
        return ""
    kind = estimators.estimator_class(config.estimator).temperature_kind
    if kind is None:
        return "no temperature"
    if kind != "scheduled" or config.temperature == "constant":
        return f"fixed τ={config.tau0:g}"
    if config.temperature == "inverse":
        return f"1/τ: 1 → {config.beta_max:g} over {config.beta_steps} steps ({config.beta_kind})"
    return f"annealed from {config.tau0:g} (r={config.anneal_rate:g}, floor {config.tau_min:g})"


def _differences(row: dict[str, Any]) -> str:
    """The settings of a GAN row that differ from the benchmark's defaults, in words."""
    if row["objective"] != "gan":
        return ""
    s = {**_settings(GANConfig()), **row["settings"]}
    out = []
    if s["reward"] == "rollout":
        out.append(f"rollout reward, N = {s['rollouts']}")
    if s["d_steps"] != 1:
        out.append(f"{s['d_steps']} D steps per G step")
    if s["lr_d"] != 1e-3:
        out.append(f"lr_d {s['lr_d']:g}")
    if s["beta_max"] != 100.0:
        out.append(f"β_max {s['beta_max']:g}")
    return "; ".join(out)


def _settings(config: GANConfig) -> dict[str, Any]:
    return {
        k: v
        for k, v in config.to_dict().items()
        if k not in ("run_dir", "progress", "figures", "epochs")
    }


def render(results_dir: Path) -> None:
    """results.md and the figures from results.json and the runs' metrics."""
    every = read_rows(results_dir / "results.json")
    order = {m: i for i, m in enumerate(METHODS)}
    every.sort(key=lambda r: (order.get(r["method"], len(order)), r["method"]))  # variants last
    rows = [r for r in every if r.get("task", "grammar") == "grammar"]
    oracle_rows = [r for r in every if r.get("task") == "oracle"]
    data = grammar.grammar_data(0, 10_000, 1_000)  # the key gan.main caches it under
    reference = gan.string_metrics(data.held_out, data.train_set)
    lines = [
        "# Sequence GAN on the grammar task",
        "",
        "Generated by `benchmarks/gan/run.py` from `results.json` (do not edit). Arithmetic "
        "expressions over x and y of at most 15 tokens (`gumbel_softmax.lab.grammar`); each "
        "method's generator is the same LSTM; the GAN methods pre-train by maximum likelihood, "
        "then train adversarially; MLE takes the same number of generator updates by maximum "
        "likelihood. Metrics from 1,000 samples at sampling temperature 1: parse rate (valid / "
        "all), unique (distinct / all), novel (valid strings not in the 10,000 training strings "
        "/ valid), held-out NLL (nats per string, 1,000 held-out strings).",
        "",
        f"Reference, the data itself (1,000 held-out draws of the PCFG against the training "
        f"set): parse rate {reference['parse_rate']:.3f}, unique {reference['unique']:.3f}, "
        f"novel {reference['novel']:.3f}.",
        "",
        "| method | parse_rate | unique | novel | held-out NLL | steps (adversarial) | temperature | other settings | seed | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['parse_rate']:.3f} | {r['unique']:.3f} | {r['novel']:.3f} | "
            f"{r['heldout_nll']:.2f} | {r['steps']} ({r['adversarial_steps']}) | "
            f"{r['temperature'] or 'n/a'} | {_differences(r)} | {r['seed']} | {r['wall_s']:.0f} |"
        )
    lines += ["", "## Across sampling temperatures (the quality-diversity curve)", ""]
    lines += ["| method | τ_sample | parse_rate | unique | novel |", "|---|---|---|---|---|"]
    for r in rows:
        for t, v in r["by_sampling_temperature"].items():
            lines.append(
                f"| {r['method']} | {t} | {v['parse_rate']:.3f} | {v['unique']:.3f} | "
                f"{v['novel']:.3f} |"
            )
    lines += _against_mle(rows)
    lines += ["", "## Example samples (the first five of `samples/<method>.txt`)", ""]
    lines += ["| method | samples |", "|---|---|"]
    for r in rows:
        path = results_dir / "samples" / f"{r['method']}.txt"
        if path.exists():
            first = path.read_text().splitlines()[:5]
            shown = " · ".join(f"`{s}`" if s else "(empty)" for s in first)
            lines.append(f"| {r['method']} | {shown} |")
    if rows:
        s = rows[0]
        lines += [
            "",
            "## Settings",
            "",
            f"LSTM generator and discriminator of {s['settings']['hidden']} units, embedding "
            f"{s['settings']['embed']}, batch {s['settings']['batch_size']}, Adam (β1 = 0.5) at "
            f"lr {s['settings']['lr']:g} (generator) and {s['settings']['lr_d']:g} "
            f"(discriminator), RelGAN's inverse temperature to β_max = "
            f"{s['settings']['beta_max']:g} over the adversarial steps; git {s['git_revision'][:12]}; "
            f"machine: {s['machine']}.",
        ]
    if oracle_rows:
        lines += _oracle_lines(oracle_rows)
    closing = results_dir / "closing.md"
    if closing.exists():
        lines += ["", closing.read_text().strip()]
    (results_dir / "results.md").write_text("\n".join(lines) + "\n")
    if rows:
        _figures(rows, results_dir)


def _reference_mle(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The seed-0 maximum-likelihood row with the most updates (``mle``: as many generator
    updates as each GAN), the figure's solid curve; other MLE runs are drawn dotted."""
    mle = [r for r in rows if r["objective"] == "mle" and r["seed"] == 0]
    return max(mle, key=lambda r: r["steps"]) if mle else None


def mle_unique_at(curve: list[tuple[float, float]], parse_rate: float) -> float | None:
    """The unique fraction of the maximum-likelihood curve at ``parse_rate``: linear between
    its measured ``(parse_rate, unique)`` points (its sampling temperatures) sorted by parse
    rate; ``None`` outside the parse rates it reaches."""
    pts = sorted(curve)
    for (p0, u0), (p1, u1) in itertools.pairwise(pts):
        if p0 <= parse_rate <= p1:
            return u0 if p1 == p0 else u0 + (u1 - u0) * (parse_rate - p0) / (p1 - p0)
    return None


def _against_mle(rows: list[dict[str, Any]]) -> list[str]:
    """Each GAN's points against two MLE curves of its own seed: the MLE run with as many
    generator updates, and the one with as many as its pre-training (its starting point): its
    unique fraction minus a curve's at the same parse rate, in standard errors of the
    difference of two binomial fractions."""
    mles = [r for r in rows if r["objective"] == "mle"]
    if not mles:
        return []
    n = mles[0]["settings"]["eval_strings"]

    def curve_of(seed: int, steps: int) -> tuple[str, list[tuple[float, float]]] | None:
        for m in mles:
            if m["seed"] == seed and m["steps"] == steps:
                points = m["by_sampling_temperature"].values()
                return m["method"], [(v["parse_rate"], v["unique"]) for v in points]
        return None

    def versus(curve: Any, v: dict[str, float]) -> tuple[str, float | None]:
        at = None if curve is None else mle_unique_at(curve[1], v["parse_rate"])
        if at is None:
            return "", None
        delta = v["unique"] - at
        se = (v["unique"] * (1 - v["unique"]) / n + at * (1 - at) / n) ** 0.5
        z = delta / se if se > 0 else 0.0
        return f"`{curve[0]}` {at:.3f}: {delta:+.3f} ({z:+.1f})", z

    lines = [
        "",
        "## Against the maximum-likelihood curves",
        "",
        "For each GAN run, its point at τ_sample = 1 and the one of its sampling temperatures "
        "furthest beyond the first curve. The curves are MLE runs of the same seed (the same "
        "data and initialisation): one with as many generator updates, and one with as many as "
        "the GAN's pre-training (its starting point: the same run's first steps). Each cell: "
        "the curve's unique fraction at the point's parse rate (linear between the curve's "
        "points sorted by parse rate; blank outside the parse rates it reaches, or where no MLE "
        "run of that seed and length is in results.json) and Δ unique = the point's minus it, "
        f"with z = Δ / sqrt(u(1-u)/{n} + u'(1-u')/{n}), the binomial standard error of the "
        f"difference of two fractions of {n:,} samples (the interpolation's own error ignored). "
        "z > 2: beyond the curve (a one-sided false alarm of about 2% per point if it lay on "
        "it). Unique counts invalid strings too, and the data's own unique fraction is below "
        "0.9 (above): beyond a curve on this axis is not a better fit of the data; the held-out "
        "NLL says that.",
        "",
        "| method | τ_sample | parse_rate | unique | MLE, as many updates | MLE, the pre-trained "
        "start | held-out NLL |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["objective"] == "mle":
            continue
        curves = [
            curve_of(r["seed"], r["steps"]),
            curve_of(r["seed"], r["settings"]["pretrain_steps"]),
        ]
        scored = [
            (t, v, [versus(c, v) for c in curves]) for t, v in r["by_sampling_temperature"].items()
        ]
        one = [p for p in scored if float(p[0]) == 1.0]
        beyond = [p for p in scored if p[2][0][1] is not None]
        best = max(beyond, key=lambda p: p[2][0][1] or 0.0) if beyond else None
        for t, v, cells in one + ([best] if best is not None and best not in one else []):
            lines.append(
                f"| {r['method']} | {t} | {v['parse_rate']:.3f} | {v['unique']:.3f} | "
                + " | ".join(c[0] for c in cells)
                + f" | {r['heldout_nll']:.2f} |"
            )
    return lines


def _oracle_lines(rows: list[dict[str, Any]]) -> list[str]:
    s = rows[0]["settings"]
    config = GANConfig(**{k: v for k, v in s.items() if k in GANConfig.__dataclass_fields__})
    oracle = gan.build_oracle(config)
    _, held_out = gan.oracle_data(config, oracle)
    with torch.no_grad():
        floor = float(-oracle.log_prob(held_out).mean()) / config.oracle_length
    lines = [
        "",
        "## The synthetic oracle (SeqGAN / RelGAN)",
        "",
        f"A random LSTM of {s['oracle_hidden']} units over {s['oracle_vocab']} tokens (every "
        f"parameter N(0, 1), seed {s['seed']}) draws {s['n_train']:,} training sequences of "
        f"{s['oracle_length']} tokens; NLL_oracle is its NLL of 1,000 generated sequences, "
        "NLL_gen the generator's NLL of 1,000 held-out oracle sequences, both nats per token. "
        f"The oracle's own entropy rate (its NLL of the held-out sequences), the floor of both: "
        f"{floor:.3f}.",
        "",
        "| method | NLL_oracle | NLL_gen | steps (adversarial) | temperature | wall (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['nll_oracle']:.3f} | {r['nll_gen']:.3f} | {r['steps']} "
            f"({r['adversarial_steps']}) | {r['temperature'] or 'n/a'} | {r['wall_s']:.0f} |"
        )
    return lines


def _figures(rows: list[dict[str, Any]], results_dir: Path) -> None:
    missing = [r["run"] for r in rows if not (results_dir / "runs" / r["run"]).is_dir()]
    if missing:  # never redraw the curves with fewer runs than they were drawn from
        print(
            f"run.py: curves.png kept: the records of {len(missing)} run(s) are not on this "
            f"machine ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})",
            file=sys.stderr,
        )
    else:
        _curves(rows, results_dir)
    _quality_diversity(rows, results_dir)


def _curves(rows: list[dict[str, Any]], results_dir: Path) -> None:
    import matplotlib

    from gumbel_softmax.lab.records import save_figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for r in rows:
        metrics = read_metrics(results_dir / "runs" / r["run"] / "metrics.jsonl")
        evals = [m for m in metrics if m["kind"] == "eval"]
        train = [m for m in metrics if m["kind"] == "train"]
        axes[0].plot(
            [m["step"] for m in evals], [m["parse_rate"] for m in evals], label=r["method"]
        )
        for key, style in (("d_loss", "-"), ("g_loss", "--")):
            pts = [(m["step"], m[key]) for m in train if key in m]
            if pts:
                axes[1].plot(
                    *zip(*pts, strict=True), style, label=f"{r['method']} {key[0].upper()}"
                )
        taus = [(m["step"], m["temperature"]) for m in train if m.get("temperature") is not None]
        if taus and r["objective"] == "gan":
            axes[2].plot(*zip(*taus, strict=True), label=r["method"])
    axes[0].set(xlabel="step", ylabel="parse rate (τ_sample = 1)", ylim=(0, 1.02))
    axes[0].legend(fontsize=8)
    axes[1].set(xlabel="step", ylabel="loss (nats)", title="D (solid) and G (dashed) losses")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=7, ncol=2)
    axes[2].set(xlabel="step", ylabel="estimator temperature τ", yscale="log")
    if axes[2].get_legend_handles_labels()[0]:
        axes[2].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, results_dir / "curves.png")
    plt.close(fig)


def _quality_diversity(rows: list[dict[str, Any]], results_dir: Path) -> None:
    """The plane from results.json alone: each MLE run's curve over the sampling temperatures,
    each GAN's point at τ_sample 1."""
    import matplotlib

    from gumbel_softmax.lab.records import save_figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = _reference_mle(rows)
    # Two panels: the whole plane, and the corner where the MLE curves and the runs that did
    # not collapse lie (they overlap at the full scale).
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    colours = plt.get_cmap("tab10").colors
    markers = ("o", "s", "^", "D", "v", "P", "X")
    for ax in axes:
        gans = 0
        for r in rows:
            pts = sorted(
                (float(t), v["unique"], v["parse_rate"])
                for t, v in r["by_sampling_temperature"].items()
            )
            if r["objective"] == "mle":
                style, label = (
                    ("k-o", f"{r['method']} (τ_sample)")
                    if r is ref
                    else (":.", f"{r['method']} ({r['steps']} steps, τ_sample)")
                )
                ax.plot([p[1] for p in pts], [p[2] for p in pts], style, ms=3, label=label)
                if r is ref:
                    for t, x, y in pts:
                        ax.annotate(
                            f"{t:g}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points"
                        )
            else:
                ax.plot(
                    [r["unique"]],
                    [r["parse_rate"]],
                    markers[(gans // len(colours)) % len(markers)],
                    color=colours[gans % len(colours)],
                    label=f"{r['method']} (τ_sample 1)",
                )
                gans += 1
        ax.set(xlabel="unique fraction (diversity)", ylabel="parse rate (quality)")
    axes[0].set(xlim=(0, 1.02), ylim=(0, 1.02), title="quality-diversity")
    axes[1].set(xlim=(0.8, 1.0), ylim=(0.8, 1.005), title="the corner (τ_sample labels: mle's)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    save_figure(fig, results_dir / "quality_diversity.png")
    plt.close(fig)


def parser() -> argparse.ArgumentParser:
    """The command line of :func:`main`."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--task", choices=["grammar", "oracle"], default="grammar")
    p.add_argument(
        "--methods", nargs="+", choices=list(METHODS), default=["mle", "gs", "st-gs", "reinforce"]
    )
    p.add_argument("--pretrain-steps", type=int, default=600)
    p.add_argument("--adversarial-steps", type=int, default=400)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-d", type=float, default=1e-3)
    p.add_argument("--beta-max", type=float, default=100.0)
    p.add_argument(
        "--rollouts", type=int, default=4, help="completions per prefix of seqgan's rollout reward"
    )
    p.add_argument(
        "--d-steps", type=int, default=1, help="discriminator updates per generator update"
    )
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument(
        "--sample-temperatures", nargs="+", type=float, default=[0.5, 0.75, 1.0, 1.25, 1.5, 2.0]
    )
    p.add_argument("--eval-strings", type=int, default=1000, help="samples per evaluation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--variant",
        default="",
        help="a name for runs at other settings than the defaults: their run directory, samples "
        "file and method label get it as a suffix (e.g. gs-lrd1e-4)",
    )
    p.add_argument("--results-dir", type=Path, default=HERE)
    p.add_argument("--render", action="store_true", help="only re-render results.md and figures")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if a.results_dir.exists() and not a.results_dir.is_dir():
        print(f"run.py: error: --results-dir {str(a.results_dir)!r} is a file", file=sys.stderr)
        return 2
    if a.pretrain_steps < 0 or a.adversarial_steps < 1 or a.eval_strings < 1:
        print(
            "run.py: error: --pretrain-steps must be >= 0, --adversarial-steps and --eval-strings >= 1",
            file=sys.stderr,
        )
        return 2
    if a.rollouts < 1 or a.d_steps < 1:
        print("run.py: error: --rollouts and --d-steps must be >= 1", file=sys.stderr)
        return 2
    a.results_dir.mkdir(parents=True, exist_ok=True)
    if a.render:
        render(a.results_dir)
        return 0
    rev = git_revision(HERE)
    for method in a.methods:
        run(method, a, rev)
    return 0


if __name__ == "__main__":
    sys.exit(main())
