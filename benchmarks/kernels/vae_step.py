"""One training step of the paper's categorical VAE (20 x 10, batch 100, ST Gumbel-Softmax):
this library's lab model against the same model written with ``F.gumbel_softmax`` and torch's
default Adam, in one process, steps interleaved; prints medians and the ratio.

    OMP_NUM_THREADS=2 python benchmarks/kernels/vae_step.py [--steps 60]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
import torch.nn.functional as F

import gumbel_softmax.estimators as est
from gumbel_softmax.lab.models import DiscreteVAE


def nll(model: DiscreteVAE, z: torch.Tensor, *, x: torch.Tensor) -> torch.Tensor:
    return model.reconstruction_nll(z, x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = (torch.rand(100, 784) < 0.13).float()
    g = torch.Generator().manual_seed(0)

    ours = DiscreteVAE()
    theirs = DiscreteVAE()
    theirs.load_state_dict(ours.state_dict())
    st_gs = est.get("st-gs", temperature=0.5)
    variants = {
        "torch: F.gumbel_softmax + Adam()": (theirs, torch.optim.Adam(theirs.parameters(), 1e-3)),
        "ours: st-gs (fused) + Adam()": (ours, torch.optim.Adam(ours.parameters(), 1e-3)),
    }
    fused_model = DiscreteVAE()
    fused_model.load_state_dict(ours.state_dict())
    try:
        variants["ours: st-gs (fused) + Adam(fused=True)"] = (
            fused_model,
            torch.optim.Adam(fused_model.parameters(), 1e-3, fused=True),
        )
    except (RuntimeError, TypeError, ValueError) as e:  # fused Adam not available here
        print(f"Adam(fused=True) unavailable: {e}")

    def step(name: str) -> float:
        model, opt = variants[name]
        t0 = time.perf_counter()
        logits = model.encode(x)
        if name.startswith("torch"):
            z = F.gumbel_softmax(logits, tau=0.5, hard=True)
            loss = (model.reconstruction_nll(z, x) + model.kl(logits)).mean()
        else:
            r = st_gs(logits, partial(nll, model, x=x), generator=g)
            loss = (r.surrogate + model.kl(logits)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(args.steps + 5):
        for name in variants:
            t = step(name)
            if i >= 5:  # warm-up (numba compile, allocator)
                times[name].append(t)
    base = statistics.median(times["torch: F.gumbel_softmax + Adam()"])
    print(f"threads {torch.get_num_threads()}, {args.steps} steps each, medians:")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"  {name:42s} {m * 1e3:7.2f} ms   speed-up {base / m:4.2f}x")


if __name__ == "__main__":
    main()
