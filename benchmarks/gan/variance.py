"""How much the per-token rollout reward (SeqGAN) lowers the variance of the REINFORCE generator
gradient of the sequence GAN, and what it costs: measured at a trained generator and
discriminator (the final checkpoint of a ``run.py`` run, default ``runs/seqgan-s0``), with
``sf-ema`` frozen at the baseline it had there.

For each reward (the whole sequence's cost, and the rollout reward with N completions per
prefix) it draws R generator-gradient estimates, each from one batch of ``--batch-size``
sequences as a training step does, with independent random numbers (the rewards taking turns, so that the machine's load
reaches each one's timing alike), and reports the total
variance :math:`\\sum_j \\widehat{\\mathrm{Var}}(\\hat g_j)` over the generator's parameters, its
ratio to the whole-sequence reward's, the squared norm of the mean estimate (how much of the
second moment is signal), and the seconds per estimate. All estimates of every reward are of
the same gradient (each reward is unbiased, ``tests/lab/test_gan.py``), so the ratios compare
like with like. Writes ``variance.md`` beside this script.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/gan/variance.py --draws 100
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from gumbel_softmax.lab import gan
from gumbel_softmax.lab.checkpoint import load_checkpoint
from gumbel_softmax.lab.config import GANConfig
from gumbel_softmax.lab.records import git_revision, machine_line
from gumbel_softmax.testing import assert_same_mean

HERE = Path(__file__).resolve().parent


def measure(run: Path, draws: int, batch: int, rollouts: list[int], seed: int) -> list[dict]:
    """One row per reward: ``rollouts`` 0 (the sequence's cost) and each N."""
    config = GANConfig(**json.loads((run / "config.json").read_text()))
    files = sorted(
        (run / "checkpoints").glob("checkpoint-*.pt"), key=lambda p: int(p.stem.split("-")[1])
    )
    state = load_checkpoint(files[-1])
    model, est = gan.build_model(config), gan.build_estimator(config.replace(estimator="sf-ema"))
    model.load_state_dict(state["modules"]["model"])
    if config.estimator == "sf-ema":
        est.load_state_dict(state["modules"]["estimator"])
    est.eval()  # the baseline stays where training left it: every draw is independent
    params = list(model.generator.parameters())
    length = gan.LENGTH if config.task == "grammar" else config.oracle_length
    rewards = [0, *rollouts]
    # independent random numbers per reward; the rewards take turns, draw by draw, so that a
    # change of the machine's load reaches each reward's timing alike
    gens = {n: torch.Generator().manual_seed(seed + 1_000_003 * n) for n in rewards}
    grads: dict[int, list[torch.Tensor]] = {n: [] for n in rewards}
    seconds = dict.fromkeys(rewards, 0.0)
    for _ in range(draws):
        for n in rewards:
            t0 = time.perf_counter()
            cost, _ = gan.generator_cost(
                model, est, batch, generator=gens[n], length=length, rollouts=n
            )
            grad = torch.autograd.grad(cost.mean(), params)
            seconds[n] += time.perf_counter() - t0
            grads[n].append(torch.cat([x.flatten() for x in grad]).double())
    first = torch.stack(grads[0])
    rows = []
    for n in rewards:
        x = torch.stack(grads[n])
        try:  # every reward estimates the same gradient (Welch per parameter, Bonferroni)
            assert_same_mean(x, first, false_alarm=1e-3)
            same = "yes"
        except AssertionError as err:
            same = f"no: {err}"
        rows.append(
            {
                "reward": "sequence" if n == 0 else f"rollout, N = {n}",
                "total_variance": float(x.var(0).sum()),
                "mean_sq_norm": float(x.mean(0).pow(2).sum()),
                "seconds": seconds[n] / draws,
                "same_mean": same if n else "",
            }
        )
    base = rows[0]
    for r in rows:
        r["variance_ratio"] = r["total_variance"] / base["total_variance"]
        r["time_ratio"] = r["seconds"] / base["seconds"]
    return [{**r, "step": int(state["step"])} for r in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--run", type=Path, default=HERE / "runs" / "seqgan-s0")
    p.add_argument("--draws", type=int, default=100, help="gradient estimates per reward")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rollouts", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE / "variance.md")
    a = p.parse_args(argv)
    if not (a.run / "config.json").exists():
        print(f"variance.py: error: --run {str(a.run)!r} holds no run", file=sys.stderr)
        return 2
    if a.draws < 2 or a.batch_size < 1 or min(a.rollouts) < 1:
        print(
            "variance.py: error: --draws must be >= 2, --batch-size and --rollouts >= 1",
            file=sys.stderr,
        )
        return 2
    load = os.getloadavg()[0]
    rows = measure(a.run, a.draws, a.batch_size, a.rollouts, a.seed)
    lines = [
        "# Variance of the REINFORCE generator gradient: whole-sequence vs rollout reward",
        "",
        f"Generated by `benchmarks/gan/variance.py` (do not edit): {a.draws} independent "
        f"estimates per reward, each from a batch of {a.batch_size} sequences, of the gradient "
        f"of E[softplus(-D(x))] for the generator's parameters at step {rows[0]['step']} of "
        f"`{a.run.name}` (its generator, discriminator and sf-ema baseline, frozen). Total "
        "variance = the sum over parameters of the estimates' variance; |mean|² = the squared "
        "norm of their mean (the gradient, up to noise). Same mean: the estimates' means agree "
        "with the sequence reward's in every parameter (two-sample Welch z-test per parameter, "
        "false-alarm rate 1e-3 over all of them, Bonferroni), as they must: both are unbiased; "
        "every reward draws its own, independent estimates.",
        "",
        "| reward | total variance | ratio | \\|mean\\|² | same mean | s per estimate | time ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['reward']} | {r['total_variance']:.4g} | {r['variance_ratio']:.3f} | "
            f"{r['mean_sq_norm']:.3g} | {r['same_mean']} | {r['seconds']:.3f} | "
            f"{r['time_ratio']:.1f} |"
        )
    lines += [
        "",
        f"git {git_revision(HERE)[:12]}; machine: {machine_line(load_start=load)}.",
    ]
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
