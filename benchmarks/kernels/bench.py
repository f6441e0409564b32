"""Fused Gumbel-Softmax backends against ``torch.nn.functional.gumbel_softmax``, against
``torch.compile(F.gumbel_softmax)`` and against ``copy_``.

For each shape, soft and hard, and each method (``F.gumbel_softmax``, the same compiled by
``torch.compile`` with Inductor for that shape, every backend of this library that runs on the
device, and ``copy_`` of the same bytes): the time of a forward (logits
not requiring grad: a sample) and of a forward+backward (``y.backward(g)`` with a pre-drawn ``g``),
and the peak memory each allocates above what exists before the call, in units of the output's
size. Everything is measured in one process, methods interleaved repeat by repeat, so that load
from other processes falls on all of them alike; results are reported as ratios.

    python benchmarks/kernels/bench.py                  # device auto-detected
    python benchmarks/kernels/bench.py --device cuda    # writes results-cuda.md
    python benchmarks/kernels/bench.py --quick          # two shapes, three repeats

Timing: CPU, ``time.perf_counter``; CUDA, CUDA events; around a block of consecutive calls lasting
at least 20 ms (one call where a call takes longer). Reported: the median over repeats of the
time per call. Peak memory: CUDA, ``torch.cuda.max_memory_allocated`` minus the
allocation before the call; CPU, a ``torch.profiler`` trace with ``profile_memory=True``, whose
allocation and free events, ordered by time, give the running total of bytes held by torch's
allocator (the numba kernels allocate nothing outside it: their buffers are torch tensors).
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import gumbel_softmax as gs
from gumbel_softmax import backends
from gumbel_softmax.lab.records import cpu_model

SHAPES = [(100, 20, 10), (1024, 1024), (256, 32768), (64, 50257), (2048, 8192)]
BASELINE = "F.gumbel_softmax"
# What a performance-minded user would pick instead: Inductor's fused code for this very shape
# (compiled afresh per case, static shapes, during the warm-up, which is not timed).
COMPILED = "torch.compile(F.gumbel_softmax)"
HERE = pathlib.Path(__file__).resolve().parent
BLOCK_S = 0.02  # the least duration of one timing sample, see time_interleaved


# --- the machine ---------------------------------------------------------------------------------


def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except Exception:  # not installed, or broken: say so rather than fail
        return "not available"


def machine(device: torch.device) -> list[str]:
    lines = [
        f"CPU: {cpu_model()}, {os.cpu_count()} logical cores, "
        f"torch intra-op threads {torch.get_num_threads()}",
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"numba {_version('numba')}, triton {_version('triton')}",
    ]
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        lines.append(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}")
    return lines


def load() -> str:
    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg()) + " (1/5/15 min)"
    except OSError:
        return "unknown"


# --- measuring -----------------------------------------------------------------------------------


def _time_block(fn: Callable[[], object], number: int, device: torch.device) -> float:
    """Seconds per call of ``fn``, averaged over ``number`` consecutive calls."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(number):
            fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1e3 / number
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per call of each function over ``repeats`` samples, the functions taking
    turns within each repeat. A sample is a block of consecutive calls lasting at least
    BLOCK_S (one call for slow functions), as ``timeit``'s autorange: a single call of a fraction
    of a millisecond is timed mostly by what ran just before it (caches, torch's OpenMP workers
    still spinning after its last parallel op)."""
    number = {}
    for name, fn in fns.items():  # warm-up (compilation, caches, allocator) and block sizes
        fn()
        number[name] = max(1, min(1000, round(BLOCK_S / max(_time_block(fn, 1, device), 1e-7))))
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(_time_block(fn, number[name], device))
    return {k: statistics.median(v) for k, v in samples.items()}


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Bytes allocated by ``fn`` at its peak, above what was allocated before it ran."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # an op's allocations are its self memory; frees outside any op are "[memory]" events
    events = sorted(
        (e for e in prof.events() if e.self_cpu_memory_usage != 0),
        key=lambda e: e.time_range.start,
    )
    held = peak = 0
    for e in events:
        held += e.self_cpu_memory_usage
        peak = max(peak, held)
    return peak


# --- the cases -----------------------------------------------------------------------------------


def methods(device: torch.device, hard: bool) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    compiled = torch.compile(F.gumbel_softmax, dynamic=False)
    out: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        BASELINE: lambda x: F.gumbel_softmax(x, tau=1.0, hard=hard),
        COMPILED: lambda x: compiled(x, tau=1.0, hard=hard),
    }
    g = torch.Generator(device=device).manual_seed(0)
    for name in backends.available_backends():
        if name == "reference" or backends._load(name).supports(device):  # type: ignore[union-attr]
            out[name] = lambda x, name=name: gs.gumbel_softmax(
                x, 1.0, hard=hard, generator=g, backend=name
            )
    return out


def check(device: torch.device) -> list[str]:
    """Each fused backend against the reference fed the same noise, values and gradients."""
    lines = []
    for name in backends.available_backends():
        if name == "reference" or not backends._load(name).supports(device):  # type: ignore[union-attr]
            continue
        worst = 0.0
        for shape in [(64, 10), (8, 5000), (3, 20000)]:
            for hard in (False, True):
                x = torch.randn(shape, device=device, requires_grad=True)
                y = gs.gumbel_softmax(
                    x,
                    0.5,
                    hard=hard,
                    backend=name,
                    generator=torch.Generator(device=device).manual_seed(1),
                )
                noise = backends._noise(
                    name,
                    shape,
                    device=device,
                    generator=torch.Generator(device=device).manual_seed(1),
                )
                ref = gs.gumbel_softmax(x, 0.5, hard=hard, noise=noise, backend="reference")
                w = torch.randn_like(y)
                (ga,) = torch.autograd.grad((y * w).sum(), x)
                (gb,) = torch.autograd.grad((ref * w).sum(), x)
                worst = max(
                    worst, float((y - ref).detach().abs().max()), float((ga - gb).abs().max())
                )
        status = "ok" if worst < 1e-4 else "MISMATCH"
        lines.append(f"check {name}: max |fused - reference(kernel noise)| = {worst:.2e} {status}")
    return lines


def fwd_bwd(
    m: Callable[[torch.Tensor], torch.Tensor], xg: torch.Tensor, gout: torch.Tensor
) -> Callable[[], None]:
    """One forward and backward of method ``m`` at ``xg`` (its gradient dropped after)."""

    def run() -> None:
        m(xg).backward(gout)
        xg.grad = None

    return run


def run_case(shape, hard: bool, device: torch.device, repeats: int) -> dict[str, dict[str, float]]:
    x = torch.randn(shape, device=device)
    xg = x.clone().requires_grad_()
    gout = torch.randn(shape, device=device)
    dst = torch.empty_like(x)
    out_bytes = x.numel() * x.element_size()
    torch._dynamo.reset()  # a fresh compile cache per case: no recompile limit, no dynamic shapes
    fns = methods(device, hard)

    fwd = {k: (lambda m=m: m(x)) for k, m in fns.items()}
    both = {k: fwd_bwd(m, xg, gout) for k, m in fns.items()}
    t_fwd = time_interleaved({**fwd, "copy_": lambda: dst.copy_(x)}, repeats, device)
    t_both = time_interleaved(both, repeats, device)
    rows: dict[str, dict[str, float]] = {}
    for k in fns:
        rows[k] = {
            "fwd_s": t_fwd[k],
            "fwd_speedup": t_fwd[BASELINE] / t_fwd[k],
            "fwd_vs_compiled": t_fwd[COMPILED] / t_fwd[k],
            "fwd_vs_copy": t_fwd[k] / t_fwd["copy_"],
            "fwd_mem": peak_bytes(fwd[k], device) / out_bytes,
            "both_s": t_both[k],
            "both_speedup": t_both[BASELINE] / t_both[k],
            "both_vs_compiled": t_both[COMPILED] / t_both[k],
            "both_mem": peak_bytes(both[k], device) / out_bytes,
        }
    rows["copy_"] = {"fwd_s": t_fwd["copy_"]}
    return rows


def breakdown(shape, device: torch.device, repeats: int) -> list[str]:
    """Where the numba forward's time goes, in ns per element, all in one interleaved run:
    ``copy_``; first-touching a freshly allocated output (``torch.empty(..).fill_(0)`` minus a
    ``fill_(0)`` of a preallocated one: page faults); the kernel's noise alone and its whole
    forward, both into preallocated buffers; and the full call, which also allocates. Beside
    them, Inductor's code for the same two steps, ``torch.compile`` of ``F.gumbel_softmax``'s
    noise alone (``-exponential_().log()``) and of the whole ``F.gumbel_softmax``: what bounds
    the ratio against the compiled baseline."""
    kernels = backends._load("numba")
    if device.type != "cpu" or not isinstance(kernels, backends.Kernels):
        return []
    x = torch.randn(shape)
    n = x.numel()
    flat = x.view(-1, shape[-1])
    buf = torch.empty_like(x)
    out = torch.empty_like(flat)
    one = torch.ones(1)
    seed = torch.zeros(1, dtype=torch.int64)
    g = torch.Generator().manual_seed(0)
    torch._dynamo.reset()
    compiled_noise = torch.compile(lambda x: -torch.empty_like(x).exponential_().log())
    compiled = torch.compile(F.gumbel_softmax, dynamic=False)
    t = time_interleaved(
        {
            "copy_": lambda: buf.copy_(x),
            "fill_ (preallocated)": lambda: buf.fill_(0),
            "empty + fill_ (fresh)": lambda: torch.empty_like(x).fill_(0),
            "kernel noise only": lambda: kernels.noise(seed, buf.view(-1)),
            "kernel forward (preallocated out)": lambda: kernels.forward(
                flat, one, seed, out, None, False
            ),
            "gumbel_softmax(backend='numba')": lambda: gs.gumbel_softmax(
                x, generator=g, backend="numba"
            ),
            "Inductor: Gumbel noise only, compiled -exponential_().log()": lambda: compiled_noise(
                x
            ),
            f"Inductor: {COMPILED}": lambda: compiled(x, tau=1.0),
        },
        repeats,
        device,
    )
    faults = t["empty + fill_ (fresh)"] - t["fill_ (preallocated)"]
    lines = [f"| {k} | {v * 1e9 / n:.2f} |" for k, v in t.items()]
    lines.append(
        f"| page faults of a fresh output (difference of the fills) | {faults * 1e9 / n:.2f} |"
    )
    return [
        f"### Where the time goes: numba forward, soft, {tuple(shape)}, "
        f"{torch.get_num_threads()} threads",
        "",
        "| step | ns per element |",
        "|---|---|",
        *lines,
        "",
    ]


def fixed_cost(device: torch.device, repeats: int) -> list[str]:
    """The cost of a call whose work is nothing: a (1, 2) input, in microseconds per call, for
    each method (forward, and forward+backward): what weighs at small shapes such as the
    paper's (100, 20, 10)."""
    x = torch.randn(1, 2, device=device)
    xg = x.clone().requires_grad_()
    gout = torch.randn(1, 2, device=device)
    torch._dynamo.reset()
    fns = methods(device, False)

    t_fwd = time_interleaved({k: (lambda m=m: m(x)) for k, m in fns.items()}, repeats, device)
    t_both = time_interleaved({k: fwd_bwd(m, xg, gout) for k, m in fns.items()}, repeats, device)
    return [
        "### Fixed cost per call: a (1, 2) input, soft",
        "",
        "| method | forward us | forward+backward us |",
        "|---|---|---|",
        *(f"| {k} | {t_fwd[k] * 1e6:.1f} | {t_both[k] * 1e6:.1f} |" for k in fns),
        "",
    ]


# --- reporting -----------------------------------------------------------------------------------


HEADER = (
    "| shape | mode | method | fwd ms | fwd speedup | fwd vs compiled | fwd / copy_ | "
    "fwd peak mem | fwd+bwd ms | fwd+bwd speedup | fwd+bwd vs compiled | fwd+bwd peak mem |"
)


def table(results: dict) -> list[str]:
    lines = [HEADER, "|" + "---|" * 12]
    for (shape, mode), rows in results.items():
        copy = rows["copy_"]["fwd_s"]
        for k, r in rows.items():
            if k == "copy_":
                continue
            lines.append(
                f"| {tuple(shape)} | {mode} | {k} | {r['fwd_s'] * 1e3:.3f} | "
                f"{r['fwd_speedup']:.1f}x | {r['fwd_vs_compiled']:.1f}x | {r['fwd_vs_copy']:.1f} | "
                f"{r['fwd_mem']:.2f} | {r['both_s'] * 1e3:.3f} | {r['both_speedup']:.1f}x | "
                f"{r['both_vs_compiled']:.1f}x | {r['both_mem']:.2f} |"
            )
        lines.append(f"| {tuple(shape)} | {mode} | copy_ | {copy * 1e3:.3f} | | | 1.0 | | | | | |")
    return lines


def targets(results: dict, fast: str, device: torch.device) -> list[str]:
    """The issues' targets for the fastest backend of the device: on the CPU those of the fused
    kernels' issue and, against ``torch.compile(F.gumbel_softmax)``, of issue 10 (forward at
    least 5x at K >= 1024 and 2x at (100, 20, 10)); on CUDA those of issue 10."""
    lines = []
    cuda = device.type == "cuda"
    # (fwd vs F at K >= 1024, fwd+bwd vs F at K >= 1024, fwd vs F at (100, 20, 10), fwd / copy_)
    fwd_k, both_k, fwd_small, copy_max = (2, 1.5, 1.5, 3) if cuda else (10, 5, 3, 10)
    vs_compiled_k, vs_compiled_small = 5, 2

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    for (shape, mode), rows in results.items():
        if fast not in rows:
            continue
        r = rows[fast]
        k = shape[-1]
        if k >= 1024:
            lines.append(
                f"- {tuple(shape)} {mode}: forward {r['fwd_speedup']:.1f}x (>= {fwd_k}x: "
                f"{verdict(r['fwd_speedup'] >= fwd_k)}), forward+backward "
                f"{r['both_speedup']:.1f}x (>= {both_k}x: {verdict(r['both_speedup'] >= both_k)})"
                f"; forward vs compiled {r['fwd_vs_compiled']:.1f}x (>= {vs_compiled_k}x: "
                f"{verdict(r['fwd_vs_compiled'] >= vs_compiled_k)})"
            )
        elif shape == (100, 20, 10):
            lines.append(
                f"- {tuple(shape)} {mode}: forward {r['fwd_speedup']:.1f}x (>= {fwd_small}x: "
                f"{verdict(r['fwd_speedup'] >= fwd_small)}); forward vs compiled "
                f"{r['fwd_vs_compiled']:.1f}x (>= {vs_compiled_small}x: "
                f"{verdict(r['fwd_vs_compiled'] >= vs_compiled_small)})"
            )
        if shape == (2048, 8192):
            lines.append(
                f"- {tuple(shape)} {mode}: forward / copy_ = {r['fwd_vs_copy']:.1f} "
                f"(<= {copy_max}: {verdict(r['fwd_vs_copy'] <= copy_max)})"
            )
        lines.append(
            f"- {tuple(shape)} {mode}: peak memory forward {r['fwd_mem']:.2f}, "
            f"forward+backward {r['both_mem']:.2f} outputs (<= 1 and 2, up to the "
            f"per-row temperature: {verdict(r['fwd_mem'] < 1.05 and r['both_mem'] < 2.05)})"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="two shapes, three repeats")
    p.add_argument(
        "--shapes",
        default=None,
        help="comma-separated shapes such as 100x20x10,1024x1024 (default: all of SHAPES)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads for every method (default: torch's choice)",
    )
    p.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        help="results file (default: results.md, or results-cuda.md on CUDA)",
    )
    args = p.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    shapes = [SHAPES[0], SHAPES[1]] if args.quick else SHAPES
    if args.shapes:
        shapes = [tuple(int(n) for n in s.split("x")) for s in args.shapes.split(",")]
    repeats = 3 if args.quick else args.repeats
    out = args.out or HERE / ("results-cuda.md" if device.type == "cuda" else "results.md")
    fast = "triton" if device.type == "cuda" else "numba"

    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = load()
    print("\n".join(machine(device)), f"\nload before: {load_before}", flush=True)
    checks = check(device)
    print("\n".join(checks), flush=True)
    results = {}
    for shape in shapes:
        for hard in (False, True):
            mode = "hard" if hard else "soft"
            results[(shape, mode)] = run_case(shape, hard, device, repeats)
            print("\n".join(table({(shape, mode): results[(shape, mode)]})[2:]), flush=True)
    details = (
        []
        if args.quick
        else [
            line
            for shape in ((2048, 8192), (64, 50257), (100, 20, 10))
            if shape in shapes
            for line in breakdown(shape, device, repeats)
        ]
        + fixed_cost(device, repeats)
    )
    print("\n".join(details), flush=True)
    load_after = load()
    report = [
        f"# Gumbel-Softmax kernels: {device.type.upper()} benchmark",
        "",
        f"Generated by `{' '.join(['python benchmarks/kernels/bench.py', *(argv or sys.argv[1:])])}` on "
        f"{started:%Y-%m-%d %H:%M} UTC. float32, temperature 1, class dimension last.",
        "",
        *[f"- {line}" for line in machine(device)],
        f"- load average before: {load_before}; after: {load_after}",
        *[f"- {line}" for line in checks],
        "",
        "Times are medians over "
        f"{repeats} repeats, methods interleaved; a repeat times a block of consecutive calls "
        f"lasting at least {BLOCK_S * 1e3:.0f} ms (one call where a call takes longer). *speedup* = time of `{BASELINE}` / time of "
        f"the method; *vs compiled* = time of `{COMPILED}` (Inductor, compiled for the case's shape "
        "during the untimed warm-up) / time of the method; *fwd / copy_* = time of the method / time of `copy_` of the same bytes into "
        "a preallocated tensor; *peak mem* = peak bytes allocated during the call above those "
        "allocated before it, in units of the output's size. Forward: logits not requiring grad "
        "(a sample; `hard` then needs no exp). Forward+backward: logits requiring grad, "
        "`y.backward(g)` with `g` pre-drawn. "
        + (
            "CUDA: CUDA events, `max_memory_allocated`."
            if device.type == "cuda"
            else "CPU: `time.perf_counter`; memory from a `torch.profiler` trace "
            "(`profile_memory=True`): allocation and free events ordered by time."
        ),
        "",
        *table(results),
        "",
        f"## Targets of the issue, for `{fast}`",
        "",
        *targets(results, fast, device),
        "",
        *details,
    ]
    out.write_text("\n".join(report))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
