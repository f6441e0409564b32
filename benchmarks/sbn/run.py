"""The paper's SBN rows (Jang, Gu & Poole 2017, arXiv:1611.01144, Table 1): structured output
prediction, the lower half of a binarized MNIST digit from its upper half, for every estimator of
the registry that applies to each latent type.

Each run trains with :func:`gumbel_softmax.lab.sbn.main` (its record goes to
``<results-dir>/runs/<latent>-<estimator>-lr<lr>-s<seed>/``, not committed); when it finishes, one
row is appended to ``results.json`` (test ``nll_m<eval-samples>`` and the validation NLL it is
selected on) and ``results.md`` is rendered again: per (latent, estimator), the run with the
lowest validation NLL among the learning rates swept, beside the paper's number. A sweep that is
stopped resumes: finished runs (in results.json) are skipped, an unfinished one continues from
its checkpoint.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/sbn/run.py --data-dir /work/shared/data \\
        --latents bernoulli --estimators sf st-gs --lrs 3e-3 1e-3 --epochs 20
    python benchmarks/sbn/run.py --render        # only rebuild results.md and curves.png

The paper's grid (the default of --lrs): SGD with momentum 0.9, learning rate per estimator
from {3e-5, 1e-5, 3e-4, 1e-4, 3e-3, 1e-3}, variance normalisation for SF, DARN and MuProp, tau = 1
(Annealed ST: its slope 1/tau raised as Chung et al. do, the lab's default for ``st-annealed``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from gumbel_softmax import estimators
from gumbel_softmax.lab import sbn
from gumbel_softmax.lab.config import ConfigError, SBNConfig
from gumbel_softmax.lab.data import load_dataset
from gumbel_softmax.lab.records import (
    eval_curve,
    git_revision,
    machine_line,
    put_row,
    read_rows,
)

HERE = Path(__file__).resolve().parent
PAPER_LRS = [3e-5, 1e-5, 3e-4, 1e-4, 3e-3, 1e-3]
# Variance normalisation: "necessary" for these in the paper (section 4.1).
NORMALIZED = {"sf", "darn", "muprop"}
# Table 1 of arXiv:1611.01144, SBN rows (test NLL, nats), as in
# /work/shared/reference/paper-numbers.md; keys are this registry's names.
PAPER = {
    "bernoulli": {
        "sf": 72.0,
        "darn": 59.7,
        "muprop": 58.9,
        "st": 58.9,
        "st-annealed": 58.7,
        "gs": 58.5,
        "st-gs": 59.3,
    },
    "categorical": {
        "sf": 73.1,
        "darn": 67.9,
        "muprop": 63.0,
        "st": 61.8,
        "st-annealed": 61.1,
        "gs": 59.0,
        "st-gs": 59.7,
    },
}
SIZES = {"bernoulli": (200, 2), "categorical": (20, 10)}


def applicable(latent: str) -> list[str]:
    """The registered estimators that apply to ``latent`` (by their declared ``binary_only``
    and ``min_temperature`` against tau = 1), the paper's seven first."""
    names = [
        n
        for n in estimators.available()
        if (latent == "bernoulli" or not estimators.estimator_class(n).binary_only)
        and estimators.estimator_class(n).min_temperature <= 1.0
    ]
    first = [n for n in PAPER[latent] if n in names]
    return first + [n for n in names if n not in first]


def append_row(row: dict[str, Any], results_dir: Path) -> None:
    """Put ``row`` into results.json in place of the row of the same run directory, and render."""
    put_row(results_dir / "results.json", row)
    render(results_dir)


def selected(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (latent, estimator), the row with the lowest validation NLL (the test split plays
    no part in the choice)."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["latent"], r["estimator"])
        if key not in best or r["valid_value"] < best[key]["valid_value"]:
            best[key] = r
    order = {
        n: i for i, n in enumerate(dict.fromkeys([*PAPER["bernoulli"], *estimators.available()]))
    }
    return sorted(best.values(), key=lambda r: (r["latent"] != "bernoulli", order[r["estimator"]]))


def _settings(r: dict[str, Any]) -> str:
    s = r["settings"]
    cls = estimators.estimator_class(r["estimator"])
    kind = cls.temperature_kind
    tau = (
        "no τ" if kind is None else f"τ {'learned from' if kind == 'learned' else '='} {s['tau0']}"
    )
    if cls.annealed:  # the slope 1/τ rises with the epoch (SBNConfig.schedule)
        first, end = (
            1 / s["tau0"],
            min(s["slope_max"], 1 / s["tau0"] + s["slope_rate"] * r["epochs"]),
        )
        tau = (
            f"slope 1/τ = min({s['slope_max']:g}, {first:g} + {s['slope_rate']:g}·epoch): "
            f"{first:g} → {end:g}"
        )
    return (
        f"{s['optimizer']} lr={s['lr']:g} (momentum {s['momentum']}), batch {s['batch_size']}, "
        f"{tau}, {'variance-normalised' if s['normalize'] else 'no normalisation'}; "
        f"valid {r['valid_images']} images m={s['eval_samples']}, test {r['test_images']} "
        f"images; swept lr {', '.join(f'{v:g}' for v in r['swept_lrs'])}"
    )


def _row_md(r: dict[str, Any]) -> str:
    paper = "—" if r["paper_value"] is None else f"{r['paper_value']:.1f}"
    return (
        f"| {r['latent']} | {r['estimator']} | {r['metric']} | {r['value']:.2f} | "
        f"{r['valid_value']:.2f} | {paper} | {r['epochs']} | {_settings(r)} | {r['seed']} | "
        f"{r['git_revision'][:8]} | {r['machine']} |"
    )


def _trend(r: dict[str, Any]) -> float | None:
    """From the row's validation curve: the mean NLL of its last quarter of evaluations minus
    that of the quarter before (negative: still falling when the run stopped)."""
    values = [v for _, v in r.get("curve") or []]
    q = len(values) // 4
    if q < 1:
        return None
    return sum(values[-q:]) / q - sum(values[-2 * q : -q]) / q


def _at_epoch(r: dict[str, Any], epoch: float) -> float | None:
    """The validation NLL of the row's curve at ``epoch`` (its evaluation at that step)."""
    step = round(epoch * r["steps"] / r["epochs"]) if r["epochs"] else None
    return next((v for s, v in r.get("curve") or [] if s == step), None)


def _closing(r: dict[str, Any]) -> str:
    paper = r["paper_value"]
    gap = "—" if paper is None else f"{r['value'] - paper:+.2f}"
    trend = _trend(r)
    early, last = _at_epoch(r, 10), (r.get("curve") or [[None, None]])[-1][1]
    course = "—" if early is None or r["epochs"] <= 10 else f"{early:.2f} → {last:.2f}"
    return (
        f"| {r['latent']} | {r['estimator']} | {r['value']:.2f} | "
        f"{'—' if paper is None else f'{paper:.1f}'} | {gap} | {r['epochs']} | "
        f"{'—' if trend is None else f'{trend:+.2f}'} | {course} |"
    )


def render(results_dir: Path) -> None:
    """results.md (the selected rows, then every run) and curves.png from results.json."""
    rows = read_rows(results_dir / "results.json")
    # What was swept for each (latent, estimator): every learning rate with a finished run.
    swept: dict[tuple[str, str], set[float]] = {}
    for r in rows:
        swept.setdefault((r["latent"], r["estimator"]), set()).add(r["settings"]["lr"])
    for r in rows:
        r["swept_lrs"] = sorted(swept[(r["latent"], r["estimator"])])
    head = [
        "| latent | estimator | metric | value | valid_value | paper_value | epochs | settings "
        "| seed | git | machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines = [
        "# SBN benchmark: the paper's Table 1 SBN rows, measured",
        "",
        "Generated by `benchmarks/sbn/run.py` from `results.json`; do not edit by hand.",
        "Structured output prediction on the fixed binarized MNIST: the lower half of each digit",
        "from its upper half. `value`: test negative log-likelihood of the lower half in nats,",
        "importance-sampled with m samples from the model (`nll_m1000`: m = 1000, the paper's),",
        "exact one-hot samples at every layer; lower is better. `valid_value`: the same on the",
        "validation split, on which the row was selected. Paper: Jang, Gu & Poole 2017",
        "(arXiv:1611.01144) Table 1, SBN rows (SGD with momentum 0.9, learning rate per estimator",
        "from {3e-5, 1e-5, 3e-4, 1e-4, 3e-3, 1e-3} on validation, epochs not published). Each row",
        "states its epochs, the learning rates swept for it and the evaluation sets.",
        "",
        "## Selected on validation (one row per latent and estimator)",
        "",
        *head,
        *map(_row_md, selected(rows)),
        "",
        "## Every run",
        "",
        *head,
        *map(_row_md, rows),
        "",
        "## Closing note: the gap to the paper and what limits it",
        "",
        "`gap` = value - paper_value (negative: at or below the paper). `valid trend`: the mean",
        "validation NLL of the last quarter of the row's learning curve minus that of the",
        "quarter before (m = 100, one evaluation per epoch; negative: still falling when the run",
        "stopped). `epoch 10 → end`: the curve's validation NLL at epoch 10 and at the end (what",
        "the epochs past 10 gave).",
        "",
        "| latent | estimator | value | paper_value | gap | epochs | valid trend | epoch 10 → end |",
        "|---|---|---|---|---|---|---|---|",
        *(_closing(r) for r in selected(rows)),
        "",
        *_limits(selected(rows)),
        "Variance normalisation (`variance-normalised` in the settings, the paper's choice for",
        "sf, darn and muprop) divides the whole gradient of each layer's logits by the running",
        "standard deviation of the cost, about 28 nats here (logged scale 0.037): those layers",
        "then learn at about 1/28 of the learning rate, MuProp's Taylor term included. The runs",
        "with `--normalize off` (run directories `-nonorm`, 4 epochs, in Every run) measure it:",
        "muprop trains much further without it in 4 epochs than with it in 10 (its `-nonorm`",
        "rows against its normalised ones), sf and darn do not.",
        "`st-annealed` is `st` with its slope 1/τ raised as Chung et al. raise it (α = min(5,",
        "1 + 0.04·epoch), at every step; the paper's SBN keeps every other τ at 1): at the same",
        "learning rate the two start alike and part as the slope grows.",
        "",
        "Learning curves of the selected runs: `curves.png`; completions of each selected run:",
        "`figures/<run>/completions.png` (copied from the run records, which stay uncommitted",
        "under `runs/`).",
        "",
    ]
    (results_dir / "results.md").write_text("\n".join(lines))
    if rows:
        _curves(selected(rows), results_dir)


def _limits(sel: list[dict[str, Any]]) -> list[str]:
    """The closing note's account of the gap, from the selected rows themselves."""
    if not sel:
        return []
    met = [r for r in sel if r["paper_value"] is not None and r["value"] <= r["paper_value"]]
    trends = [t for t in (_trend(r) for r in sel) if t is not None]
    falling = sum(t < 0 for t in trends)
    counts = sorted({len(r["swept_lrs"]) for r in sel})
    epochs = sorted({r["epochs"] for r in sel})
    images = sorted({(r["valid_images"], r["test_images"]) for r in sel})
    lrs = (
        f"one learning rate, {sel[0]['swept_lrs'][0]:g} (chosen for the short budget, not on "
        "validation)"
        if counts == [1] and len({r["swept_lrs"][0] for r in sel}) == 1
        else "the learning rate chosen on validation among "
        + (f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}")
        + " of the paper's six rates (`swept lr` lists the ones run for each cell)"
    )
    return [
        f"{len(met)} of {len(sel)} cells reach the paper's value. What limits these rows: the",
        "epoch budget of this shared two-core CPU (other jobs' load in the machine column; one",
        f"thread, `nice -n 19`); the validation NLL of {falling} of the {len(trends)} selected",
        "runs was still falling when it stopped (valid trend < 0 above).",
        f"Each cell had {lrs}, and {' or '.join(f'{e:g}' for e in epochs)} epochs (each row is",
        "the last session of its run directory, continued from its checkpoints); the",
        "evaluation used "
        + ", ".join(f"{v or 'all'} validation and {t or 'all'} test images" for v, t in images)
        + " (random subsets fixed by the seed), not the 10,000 of each split.",
    ]


def _curves(rows: list[dict[str, Any]], results_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gumbel_softmax.lab.records import save_figure

    latents = sorted({r["latent"] for r in rows})
    fig, axes = plt.subplots(1, len(latents), figsize=(6.5 * len(latents), 4.5), squeeze=False)
    for ax, latent in zip(axes[0], latents, strict=True):
        for r in (r for r in rows if r["latent"] == latent):
            metrics = r.get("curve") or []
            if metrics:
                ax.plot(
                    *zip(*metrics, strict=True),
                    "o-",  # markers: a one-epoch curve is one point
                    ms=3,
                    lw=1,
                    label=f"{r['estimator']} (lr {r['settings']['lr']:g})",
                )
        ax.set_title(f"{latent}: validation NLL of the selected runs")
        ax.set_xlabel("step")
        ax.set_ylabel(f"valid NLL, nats (m = {rows[0]['settings']['eval_samples_during']})")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    save_figure(fig, results_dir / "curves.png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--latents", nargs="+", choices=["bernoulli", "categorical"],
                   default=["bernoulli", "categorical"])  # fmt: skip
    p.add_argument("--estimators", nargs="+", default=None,
                   help="default: every registered estimator that applies to the latent")  # fmt: skip
    p.add_argument("--lrs", nargs="+", type=float, default=PAPER_LRS)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=os.environ.get("GUMBEL_SOFTMAX_DATA", "/work/shared/data"))
    p.add_argument("--dataset", default="binarized-mnist",
                   help="binarized-mnist (the benchmark) or binarized-mnist-subset (smoke tests)")  # fmt: skip
    p.add_argument("--eval-samples", type=int, default=1000, help="m of the final NLL")
    p.add_argument("--eval-samples-during", type=int, default=100, help="m of the curves")
    p.add_argument("--valid-images", type=int, default=0, help="0 = all 10,000")
    p.add_argument("--test-images", type=int, default=0, help="0 = all 10,000")
    p.add_argument("--normalize", choices=["paper", "off"], default="paper",
                   help="variance normalisation: the paper's (sf, darn, muprop) or off for all "
                   "(run directories get the suffix -nonorm)")  # fmt: skip
    p.add_argument("--max-steps", type=int, default=0, help="stop early (smoke tests only)")
    p.add_argument("--results-dir", type=Path, default=HERE)
    p.add_argument("--render", action="store_true", help="only re-render results.md")
    a = p.parse_args(argv)
    if a.results_dir.exists() and not a.results_dir.is_dir():
        print(f"run.py: error: --results-dir {str(a.results_dir)!r} is a file", file=sys.stderr)
        return 2
    a.results_dir.mkdir(parents=True, exist_ok=True)
    if a.render:
        render(a.results_dir)
        return 0
    known = estimators.available()
    unknown = [n for n in a.estimators or [] if n not in known]
    if unknown or any(not (v > 0) for v in a.lrs) or a.epochs < 1:
        why = f"unknown estimator(s) {unknown}" if unknown else "--lrs must be > 0, --epochs >= 1"
        print(f"run.py: error: {why}; registered: {', '.join(known)}", file=sys.stderr)
        return 2
    splits = load_dataset(a.dataset, data_dir=a.data_dir)
    rev = git_revision(HERE)
    for latent in a.latents:
        names = [n for n in (a.estimators or applicable(latent)) if n in applicable(latent)]
        for name in names:
            for lr in a.lrs:
                run(a, splits, rev, latent, name, lr)
    return 0


def run(a: argparse.Namespace, splits: Any, rev: str, latent: str, name: str, lr: float) -> None:
    """One run of the sweep, skipped when results.json has it at this length."""
    n, k = SIZES[latent]
    normalize = name in NORMALIZED and a.normalize == "paper"
    off = name in NORMALIZED and not normalize
    tag = f"{latent}-{name}-lr{lr:g}-s{a.seed}{'-nonorm' if off else ''}"
    run_dir = a.results_dir / "runs" / tag
    try:
        config = SBNConfig(
            latent=latent, n_latent=n, n_classes=k, estimator=name, normalize=normalize,
            dataset=a.dataset, data_dir=a.data_dir, epochs=a.epochs, max_steps=a.max_steps,
            optimizer="sgd", lr=lr, momentum=0.9, tau0=1.0, seed=a.seed,
            eval_samples=a.eval_samples, eval_samples_during=a.eval_samples_during,
            eval_images=a.valid_images, test_images=a.test_images, checkpoint_every=500,
            log_every=100, progress=False, run_dir=str(run_dir),
        ).validate()  # fmt: skip
    except ConfigError as err:
        print(f"run.py: skipping {tag}: {err}", file=sys.stderr)
        return
    steps = (a.max_steps or 10**12, a.epochs)
    for r in read_rows(a.results_dir / "results.json"):
        if r["run"] == tag and (r["steps_limit"], r["epochs_asked"]) == steps:
            print(f"run.py: {tag} done ({r['epochs']} epochs): test {r['value']:.2f}")
            return
    load_start = os.getloadavg()[0]
    t0 = time.time()
    print(f"run.py: {tag} ...", flush=True)
    result = sbn.main(config, splits=splits)
    curve = eval_curve(run_dir / "metrics.jsonl", "nll")
    settings = {
        key: v
        for key, v in config.to_dict().items()
        if key not in ("run_dir", "data_dir", "progress", "figures", "download")
    }
    figures = a.results_dir / "figures" / tag
    figures.mkdir(parents=True, exist_ok=True)
    shutil.copy(run_dir / "figures" / "completions.png", figures / "completions.png")
    shutil.copy(run_dir / "figures" / "curves.png", figures / "curves.png")
    append_row(
        {
            "latent": latent,
            "estimator": name,
            "metric": f"nll_m{a.eval_samples}",
            "value": result.test["nll"],
            "valid_value": result.valid["nll"],
            "paper_value": PAPER[latent].get(name),
            # the epochs trained (a run stopped past a shorter --epochs finishes where it is)
            "epochs": round(result.step / (len(splits.train) // config.batch_size), 2),
            "epochs_asked": a.epochs,
            "steps": result.step,
            "steps_limit": steps[0],
            "seed": a.seed,
            "settings": settings,
            "valid_images": result.valid["n_images"],
            "test_images": result.test["n_images"],
            "git_revision": rev,
            "machine": machine_line(load_start=load_start),
            "wall_s": round(time.time() - t0, 1),
            "run": tag,
            "curve": curve,
        },
        a.results_dir,
    )
    print(f"run.py: {tag}: test {result.test['nll']:.2f}, valid {result.valid['nll']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
