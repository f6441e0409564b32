"""gumbel_softmax (reference PyTorch path) against torch.nn.functional.gumbel_softmax.

Same process, same shapes, interleaved repeats, median of wall-clock times; prints and writes
``results.md`` beside this file with the ratios (torch time / our time: > 1 means we are faster).

    python benchmarks/core/bench.py [--repeats 15] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import gumbel_softmax as gs
from gumbel_softmax.lab.records import machine_line

SHAPES = [(100, 20, 10), (1024, 1024), (256, 32768), (64, 50257), (2048, 8192)]


def ours(x: torch.Tensor, hard: bool) -> torch.Tensor:
    return gs.gumbel_softmax(x, 0.5, hard=hard, validate_args=False, backend="reference")


def theirs(x: torch.Tensor, hard: bool) -> torch.Tensor:
    return F.gumbel_softmax(x, tau=0.5, hard=hard)


def timed(fn, x, hard: bool, backward: bool) -> float:
    if backward:
        x = x.detach().requires_grad_(True)
    t0 = time.perf_counter()
    y = fn(x, hard)
    if backward:
        y.backward(torch.ones_like(y))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.md")))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    load_start = os.getloadavg()[0]
    for shape in SHAPES:
        x = torch.randn(shape)
        for hard in (False, True):
            for backward in (False, True):
                t_ours, t_torch = [], []
                for _ in range(2):  # warm-up
                    timed(ours, x, hard, backward), timed(theirs, x, hard, backward)
                for _ in range(args.repeats):
                    t_ours.append(timed(ours, x, hard, backward))
                    t_torch.append(timed(theirs, x, hard, backward))
                mo, mt = statistics.median(t_ours), statistics.median(t_torch)
                rows.append((shape, hard, backward, mt * 1e3, mo * 1e3, mt / mo))
                print(
                    f"{shape!s:>16} hard={hard!s:5} bwd={backward!s:5} torch {mt * 1e3:9.3f} ms  "
                    f"ours {mo * 1e3:9.3f} ms  speed-up {mt / mo:5.2f}x"
                )
    lines = [
        "# Core benchmark: `gumbel_softmax` (reference path) vs `F.gumbel_softmax`",
        "",
        f"Machine: {machine_line(load_start=load_start)}.",
        "",
        f"Command: `python benchmarks/core/bench.py --repeats {args.repeats}"
        f"{f' --threads {args.threads}' if args.threads else ''}`. Median of "
        f"{args.repeats} interleaved runs after 2 warm-ups, temperature 0.5, float32. "
        "Speed-up = torch time / our time (> 1: ours is faster).",
        "",
        "| shape | hard | pass | F.gumbel_softmax (ms) | ours (ms) | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for shape, hard, backward, mt, mo, r in rows:
        lines.append(
            f"| {shape} | {hard} | {'fwd+bwd' if backward else 'fwd'} | {mt:.3f} | {mo:.3f} | {r:.2f}x |"
        )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
