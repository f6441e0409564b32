"""The cost of the other relaxations (relaxed top-k, Hard Concrete, IGR), in units of one
Gumbel-Softmax sample: ``F.gumbel_softmax`` and ``torch.compile(F.gumbel_softmax)`` of the same
logits, measured in the same process, interleaved, forward and backward.

    python benchmarks/core/relaxations.py [--repeats 15] [--threads 1]

Writes ``relaxations.md`` beside this file. Ratio = time / F.gumbel_softmax time (relaxed top-k
runs k softmaxes, so about k is the expected cost).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import gumbel_softmax as gs
from gumbel_softmax.distributions import IGR, HardConcrete
from gumbel_softmax.lab.records import machine_line

SHAPES = [(256, 64), (1024, 1024)]


def cases() -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    compiled = torch.compile(F.gumbel_softmax)
    g = torch.Generator().manual_seed(0)
    out: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "F.gumbel_softmax": lambda x: F.gumbel_softmax(x, tau=0.5),
        "torch.compile(F.gumbel_softmax)": lambda x: compiled(x, tau=0.5),
    }
    for k in (1, 4, 16):
        out[f"relaxed_top_k k={k}"] = lambda x, k=k: gs.relaxed_top_k(
            x, k, 0.5, generator=g, validate_args=False
        )
    out["relaxed_top_k k=4 hard"] = lambda x: gs.relaxed_top_k(
        x, 4, 0.5, hard=True, generator=g, validate_args=False
    )
    out["HardConcrete.rsample (one gate per logit)"] = lambda x: HardConcrete(
        2 / 3, logits=x, validate_args=False
    ).rsample(generator=g)
    out["IGR.rsample (loc = logits[:, 1:])"] = lambda x: IGR(
        0.5, loc=x[:, 1:], scale=torch.ones_like(x[:, 1:]), validate_args=False
    ).rsample(generator=g)
    return out


def timed(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    x = x.detach().requires_grad_(True)
    t0 = time.perf_counter()
    y = fn(x)
    y.backward(torch.ones_like(y))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(Path(__file__).with_name("relaxations.md")))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    rows = []
    for shape in SHAPES:
        x = torch.randn(shape)
        fns = cases()
        times: dict[str, list[float]] = {name: [] for name in fns}
        for fn in fns.values():  # warm-up (and compilation)
            timed(fn, x), timed(fn, x)
        for _ in range(args.repeats):
            for name, fn in fns.items():
                times[name].append(timed(fn, x))
        base = statistics.median(times["F.gumbel_softmax"])
        for name, ts in times.items():
            m = statistics.median(ts)
            rows.append((shape, name, m * 1e3, m / base))
            print(f"{shape!s:>12} {name:45} {m * 1e3:9.3f} ms  {m / base:6.2f}x")
    lines = [
        "# Relaxed top-k, Hard Concrete and IGR against `F.gumbel_softmax`",
        "",
        f"Machine: {machine_line(load_start=load_start)}.",
        "",
        f"Command: `python benchmarks/core/relaxations.py --repeats {args.repeats}"
        f"{f' --threads {args.threads}' if args.threads else ''}`. Forward + backward, median of "
        f"{args.repeats} interleaved runs after 2 warm-ups, temperature 0.5 (2/3 for Hard "
        "Concrete), float32. Ratio = time / `F.gumbel_softmax` time on the same logits "
        "(lower is faster; relaxed top-k runs k softmaxes).",
        "",
        "| shape | what | fwd+bwd (ms) | ratio to F.gumbel_softmax |",
        "|---|---|---|---|",
    ]
    for shape, name, ms, r in rows:
        lines.append(f"| {shape} | {name} | {ms:.3f} | {r:.2f}x |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
