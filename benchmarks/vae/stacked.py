"""Throughput of stacked training (``gumbel_softmax.lab.stacked``): G VAEs trained in one stacked
step against the same G models trained one after another, for G = 1, 6, 24.

The models are the paper's categorical VAE (``784-512-256-(20x10)-256-512-784``), ST
Gumbel-Softmax, SGD with momentum 0.9, batch 100, differing in learning rate and seed. Both
sides run the same step code (:func:`~gumbel_softmax.lab.stacked.stacked_step`, whose one-model
case is a run alone's step, tested to the bit) with a fused SGD, so the ratio is what stacking
buys, not what the runner's logging costs. Timed: ``--steps`` training steps after ``--warmup``
untimed ones, no evaluation; the data are random fixed-binarized images (the speed does not
depend on them). The baseline (G separate models) is measured in the same process as the stacked run.

    OMP_NUM_THREADS=1 python benchmarks/vae/stacked.py              # writes stacked.md
    python benchmarks/vae/stacked.py --device cuda --steps 200 --out stacked-cuda.md
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from gumbel_softmax.lab import experiment
from gumbel_softmax.lab.config import VAEConfig
from gumbel_softmax.lab.records import git_revision, write_atomic
from gumbel_softmax.lab.stacked import stacked_step

HERE = Path(__file__).resolve().parent
LRS = (3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)


def configs(g: int, device: str, steps: int) -> list[VAEConfig]:
    return [
        VAEConfig(
            estimator="st-gs",
            optimizer="sgd",
            lr=LRS[i % len(LRS)],
            seed=i,
            epochs=1,
            max_steps=steps,
            device=device,
            run_dir=f"runs/stacked-bench-{i}",
        )
        for i in range(g)
    ]


def splits(steps: int) -> SimpleNamespace:
    g = torch.Generator().manual_seed(0)
    train = torch.bernoulli(torch.full((100 * steps, 784), 0.3), generator=g)
    return SimpleNamespace(train=train, valid=train[:100], test=train[:100], binarized=True)


def rate(cs: list[VAEConfig], data: SimpleNamespace, steps: int, warmup: int) -> float:
    """Model-steps per second of :func:`stacked_step` on the models of ``cs`` (built as a run
    builds them), timed over ``steps`` steps after ``warmup`` untimed ones."""
    device = torch.device(cs[0].device)
    models = [experiment.build_model(c).to(device) for c in cs]
    samplers = [experiment.build_estimator(c).to(device) for c in cs]
    gens = [torch.Generator(device=device).manual_seed(c.seed) for c in cs]
    groups = [{"params": list(m.parameters()), "lr": c.lr} for m, c in zip(models, cs, strict=True)]
    opt = torch.optim.SGD(groups, lr=cs[0].lr, momentum=0.9, fused=True)
    train = data.train.to(device)
    t0 = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        rows = slice((step % 50) * 100, (step % 50 + 1) * 100)
        x = train[rows].expand(len(cs), 100, 784)
        loss = stacked_step(models, samplers, x, gens)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(cs) * steps / (time.perf_counter() - t0)


def measure(g: int, device: str, steps: int, warmup: int) -> dict[str, float]:
    data = splits(50)
    cs = configs(g, device, steps + warmup)
    # separate: the G models one after another (each its own step, as G runs alone would)
    t = [1 / rate([c], data, steps, warmup) for c in cs]  # seconds per step of each
    return {"separate": len(cs) / sum(t), "stacked": rate(cs, data, steps, warmup)}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--groups", type=int, nargs="+", default=[1, 6, 24])
    p.add_argument("--out", default=str(HERE / "stacked.md"))
    args = p.parse_args()
    rows = []
    for g in args.groups:
        r = measure(g, args.device, args.steps, args.warmup)
        rows.append((g, r["separate"], r["stacked"]))
        print(
            f"G={g}: separate {r['separate']:.1f}, stacked {r['stacked']:.1f} model-steps/s, x{r['stacked'] / r['separate']:.2f}"
        )
    device = (
        torch.cuda.get_device_name(torch.device(args.device))
        if args.device.startswith("cuda")
        else f"{cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s)"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# Stacked training: G VAEs in one step against G separate models",
        "",
        "Generated by `benchmarks/vae/stacked.py`; do not edit by hand. Throughput in model-steps "
        "per second (G x steps / time) of the paper's categorical VAE (784-512-256-(20x10)-256-"
        "512-784, ST Gumbel-Softmax, SGD momentum 0.9, batch 100), the G models differing in "
        "learning rate and seed; `separate` trains the same G models one after another with the "
        "same step code in the same process. "
        f"{args.steps} timed steps after {args.warmup} untimed ones.",
        "",
        f"Machine: {device}; torch {torch.__version__}; 1-minute load average at the end "
        f"{load:.2f} (a shared machine: the absolute rates vary, the ratio less); git "
        f"{git_revision()[:12]}.",
        "",
        "| G | separate (model-steps/s) | stacked (model-steps/s) | stacked / separate |",
        "|---|---|---|---|",
    ]
    for g, sep, stk in rows:
        lines.append(f"| {g} | {sep:.1f} | {stk:.1f} | {stk / sep:.2f} |")
    if not args.device.startswith("cuda"):
        lines += [
            "",
            "On CPU threads a step of these networks is compute-bound (its matrix products keep "
            "the cores busy already), so stacking saves only the per-step overheads of G small "
            "steps. What stacking is for is a GPU, where one small model leaves the device idle: "
            "`--device cuda --out stacked-cuda.md` measures it there.",
        ]
    write_atomic(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
