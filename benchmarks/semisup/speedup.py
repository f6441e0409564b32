"""The speed-up of sampling the label over marginalising it (Jang, Gu & Poole 2017,
arXiv:1611.01144, Figure 5: Gumbel-Softmax trains 2x as fast at 10 classes and 9.9x at 100, on a
Titan X): training steps per second of the M2 model of ``gumbel-softmax semisup`` with
``estimator="marginal"`` against ``"gs"``, at 10 and 100 classes, measured side by side in one
process.

One step is :func:`gumbel_softmax.lab.semisup.semisup_loss` (the training step's objective: the
unlabelled term, the labelled term and the classification loss), ``backward`` and an Adam step,
with the experiment's networks at their default sizes (``channels 32,64,128``, ``z_dim 50``).
Images are binarized MNIST from the shipped subset; with 100 classes the labels are drawn at
random (as the paper did). The two methods alternate in rounds of ``--steps`` steps after
``--warmup`` steps each, and each figure is the median over ``--rounds`` rounds, so a change of
the machine's load falls on both. On the CPU the time is the process's CPU time with one thread
(``time.process_time``): on a shared machine the wall clock measures the other jobs as well;
the wall-clock figures are in the JSON too. On CUDA it is the wall clock after a synchronize.

    OMP_NUM_THREADS=1 python benchmarks/semisup/speedup.py --batch-size 20 --labelled-batch-size 4
    python benchmarks/semisup/speedup.py --device cuda

Writes ``speedup.json`` (keys ``classes``, ``device``, ``steps_per_s_marginal``,
``steps_per_s_gs``, ``speedup``, lists over the classes), ``speedup.md`` and ``speedup.png``
(``speedup-cuda.*`` on a GPU, so that both devices' figures stand side by side).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from gumbel_softmax import estimators
from gumbel_softmax.lab import semisup
from gumbel_softmax.lab.data import load_dataset
from gumbel_softmax.lab.records import git_revision, machine_line

HERE = Path(__file__).resolve().parent
PAPER = {10: 2.0, 100: 9.9}


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time()


def measure(args: argparse.Namespace, k: int, device: torch.device) -> dict[str, Any]:
    """Steps per second of marginalisation and of Gumbel-Softmax at ``k`` classes."""
    splits = load_dataset("binarized-mnist-subset")
    g = torch.Generator().manual_seed(k)
    x = splits.train[: 50 * args.batch_size].to(device)
    labels = splits.labels_train[: args.labelled_batch_size]
    if k != 10:
        labels = torch.randint(k, (args.labelled_batch_size,), generator=g)
    xl, yl = x[: args.labelled_batch_size], labels.to(device)
    parts = {}
    for name in ("marginal", "gs"):
        torch.manual_seed(0)
        model = semisup.M2(n_classes=k).to(device)
        est = None if name == "marginal" else estimators.build("gs", event_shape=(1, k))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        sampler = torch.Generator(device=device).manual_seed(0)
        parts[name] = (model, est, opt, sampler)

    def steps(name: str, n: int, offset: int) -> None:
        model, est, opt, sampler = parts[name]
        for i in range(n):
            start = (offset + i) % 50 * args.batch_size
            out = semisup.semisup_loss(
                model, est, x[start : start + args.batch_size], xl, yl, weight=50.0,
                generator=sampler,
            )  # fmt: skip
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()

    rates: dict[str, list[float]] = {"marginal": [], "gs": []}
    walls: dict[str, list[float]] = {"marginal": [], "gs": []}
    for name in rates:
        steps(name, args.warmup, 0)
    for r in range(args.rounds):
        for name in rates:
            t0, w0 = _clock(device), time.perf_counter()
            steps(name, args.steps, r * args.steps)
            t1, w1 = _clock(device), time.perf_counter()
            rates[name].append(args.steps / (t1 - t0))
            walls[name].append(args.steps / (w1 - w0))
        print(f"K={k} round {r}: marginal {rates['marginal'][-1]:.3f}, gs {rates['gs'][-1]:.3f} "
              "steps/s", flush=True)  # fmt: skip
    m, s = statistics.median(rates["marginal"]), statistics.median(rates["gs"])
    return {
        "marginal": m,
        "gs": s,
        "wall_marginal": statistics.median(walls["marginal"]),
        "wall_gs": statistics.median(walls["gs"]),
        "rounds_marginal": rates["marginal"],
        "rounds_gs": rates["gs"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", nargs="+", type=int, default=[10, 100])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=100, help="unlabelled images per step")
    p.add_argument("--labelled-batch-size", type=int, default=20)
    p.add_argument("--steps", type=int, default=3, help="steps per round and method")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    results = {k: measure(args, k, device) for k in args.classes}
    ks = list(results)
    record = {
        "classes": ks,
        "device": str(device),
        "steps_per_s_marginal": [results[k]["marginal"] for k in ks],
        "steps_per_s_gs": [results[k]["gs"] for k in ks],
        "speedup": [results[k]["gs"] / results[k]["marginal"] for k in ks],
        "paper_speedup": [PAPER.get(k) for k in ks],
        "wall_steps_per_s_marginal": [results[k]["wall_marginal"] for k in ks],
        "wall_steps_per_s_gs": [results[k]["wall_gs"] for k in ks],
        "rounds": {str(k): results[k] for k in ks},
        "clock": "CUDA-synchronised wall clock" if device.type == "cuda" else "process CPU time",
        "batch_size": args.batch_size,
        "labelled_batch_size": args.labelled_batch_size,
        "steps_per_round": args.steps,
        "machine": machine_line(str(device)),
        "git_revision": git_revision(),
    }
    # speedup.* on the CPU, speedup-cuda.* on a GPU: both devices' figures are kept
    stem = "speedup" if device.type == "cpu" else f"speedup-{device.type}"
    (args.out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    rows = [
        f"| {k} | {record['steps_per_s_marginal'][i]:.3f} | {record['steps_per_s_gs'][i]:.3f} | "
        f"{record['speedup'][i]:.2f}x | {PAPER.get(k, '—')}x |"
        for i, k in enumerate(ks)
    ]
    md = [
        "# Speed-up of Gumbel-Softmax over marginalisation (semi-supervised M2)",
        "",
        "Generated by `benchmarks/semisup/speedup.py`; do not edit by hand.",
        f"Training steps per second ({record['clock']}), median of {args.rounds} rounds of "
        f"{args.steps} steps per method, the two methods alternating in one process; "
        f"{args.batch_size} unlabelled + {args.labelled_batch_size} labelled images per step; "
        "the experiment's default networks. 100 classes: random labels (as the paper).",
        f"Device: {device}; machine: {record['machine']}; git {record['git_revision'][:8]}.",
        "",
        "| classes | marginal steps/s | gs steps/s | speed-up | paper (Titan X) |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    (args.out / f"{stem}.md").write_text("\n".join(md))
    _figure(record, args.out / f"{stem}.png")
    print("\n".join(md))
    return 0


def _figure(record: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gumbel_softmax.lab.records import save_figure

    ks = record["classes"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    pos = range(len(ks))
    ax.bar([i - 0.2 for i in pos], record["speedup"], 0.4, label=f"measured ({record['device']})")
    paper = [PAPER.get(k, 0) for k in ks]
    ax.bar([i + 0.2 for i in pos], paper, 0.4, label="paper (Titan X)")
    ax.set_xticks(list(pos), [str(k) for k in ks])
    ax.set_xlabel("classes K")
    ax.set_ylabel("speed-up: gs steps/s ÷ marginal steps/s")
    ax.axhline(1, color="k", lw=0.5)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
