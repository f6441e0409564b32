"""The paper's VAE rows (Jang, Gu & Poole 2017, arXiv:1611.01144, Table 1) on the full fixed
binarized MNIST, for each estimator of the registry and both latent types.

Each run trains with :func:`gumbel_softmax.lab.experiment.main` (its record goes to
``benchmarks/vae/runs/<latent>-<estimator>-s<seed>/``, not committed), then appends two rows to
``results.json`` (test ``neg_elbo`` with one one-hot sample, and test ``iw_bound_m1000``) and
re-renders ``results.md`` beside the published numbers. Settings are chosen on the validation
split (its bounds are recorded in each row); the test split is only reported.

    OMP_NUM_THREADS=1 nice python benchmarks/vae/run.py --latent categorical --estimator gs \
        --epochs 100 --data-dir /work/shared/data
    python benchmarks/vae/run.py --render        # only rebuild results.md from results.json
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from gumbel_softmax import estimators
from gumbel_softmax.lab import experiment
from gumbel_softmax.lab.config import VAEConfig, describe_temperature
from gumbel_softmax.lab.data import load_dataset
from gumbel_softmax.lab.records import git_revision

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "results.md"

# Table 1 of arXiv:1611.01144, VAE rows (negative variational lower bound, nats; lower is better),
# as copied in /work/shared/reference/paper-numbers.md. Keys are this registry's names: the
# paper's SF is REINFORCE with NVIL's centred and normalised learning signal, sf-ema normalised
# (protocol.toml); plain sf, without a baseline, is not that estimator.
PAPER_COLUMNS = {
    "sf-ema": "SF",
    "darn": "DARN",
    "muprop": "MuProp",
    "st": "ST",
    "st-annealed": "Annealed ST",
    "gs": "Gumbel-S.",
    "st-gs": "ST Gumbel-S.",
}
PAPER = {
    "bernoulli": {
        "SF": 112.2,
        "DARN": 110.9,
        "MuProp": 109.7,
        "ST": 116.0,
        "Annealed ST": 111.5,
        "Gumbel-S.": 105.0,
        "ST Gumbel-S.": 111.5,
    },
    "categorical": {
        "SF": 110.6,
        "DARN": 128.8,
        "MuProp": 107.0,
        "ST": 110.9,
        "Annealed ST": 107.8,
        "Gumbel-S.": 101.5,
        "ST Gumbel-S.": 107.8,
    },
}


def load_fixed_binarized(data_dir: str) -> Any:
    """The fixed binarized MNIST (50k/10k/10k) through the library's loader."""
    return load_dataset("binarized-mnist", data_dir=data_dir)


def paper_value(latent: str, estimator: str) -> float | None:
    col = PAPER_COLUMNS.get(estimator)
    return PAPER[latent].get(col) if col else None


def append_rows(rows: list[dict[str, Any]], results_dir: Path = HERE) -> None:
    """Append rows to results.json under a file lock (two runs may finish together)."""
    path = results_dir / RESULTS_JSON.name
    with open(results_dir / ".results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(path.read_text()) if path.exists() else []
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(old + rows, indent=2) + "\n")
        os.replace(tmp, path)
        render(results_dir)


def selected(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each (latent, N, K, estimator, machine kind), the run with the lowest *validation*
    negative ELBO; its rows (both metrics) are the ones reported. The test split plays no part."""
    best: dict[tuple[Any, ...], tuple[str, int]] = {}
    score: dict[tuple[Any, ...], float] = {}
    for r in rows:
        if r["metric"] != "neg_elbo":
            continue
        key = (r["latent"], r["n_latent"], r["n_classes"], r["estimator"], r.get("device", "cpu"))
        if key not in score or r["valid_value"] < score[key]:
            # A run continued to more epochs keeps its directory: (run_dir, steps) names a result.
            score[key], best[key] = r["valid_value"], (r["run_dir"], r["steps"])
    chosen = set(best.values())
    return [r for r in rows if (r["run_dir"], r["steps"]) in chosen]


def _row_md(r: dict[str, Any]) -> str:
    s = r["settings"]
    settings = (
        # runs made before the fused optimiser became the default have no such key
        f"{s['optimizer']}{' (fused)' if s.get('fused_optimizer') else ''} lr={s['lr']}, "
        f"batch {s['batch_size']}, "
        f"{describe_temperature(r['estimator'], s)}, prior {s['prior']}"
    )
    paper = "—" if r["paper_value"] is None else f"{r['paper_value']:.1f}"
    return (
        f"| {r['latent']} {r['n_latent']}×{r['n_classes']} | {r['estimator']} | {r['metric']} "
        f"| {r['value']:.2f} | {paper} | {r['epochs']} | {r['valid_value']:.2f} | {r['seed']} "
        f"| {r.get('device', 'cpu')} | {settings} | {r['git_revision'][:8]} |"
    )


def render(results_dir: Path = HERE) -> None:
    path = results_dir / RESULTS_JSON.name
    rows = json.loads(path.read_text()) if path.exists() else []
    lines = [
        "# VAE benchmark: the paper's Table 1 VAE rows, measured",
        "",
        "Generated by `benchmarks/vae/run.py` from `results.json`; do not edit by hand.",
        "Test split of the fixed binarized MNIST (10,000 images), nats per image, lower is better.",
        "`neg_elbo`: one one-hot sample, analytic KL. `iw_bound_m1000`: importance-weighted",
        "bound, m = 1000. Paper: Jang, Gu & Poole 2017 (arXiv:1611.01144) Table 1, reported as",
        "the negative variational lower bound (m = 1000 per its text; models trained with",
        "SGD+momentum). Each row states its own epochs (the paper's count is not published) and",
        "settings.",
        "",
        "Reported rows: for each latent type, estimator and device, the run with the lowest",
        "validation negative ELBO (the `valid` column, 10,000 validation images unless the",
        "settings say otherwise); every run is listed further down.",
        "",
    ]
    head = [
        "| latent | estimator | metric | value | paper | epochs | valid (same metric) | seed | "
        "device | settings | git |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += protocol_section(results_dir)
    lines += ["## Selected on validation", "", *head, *map(_row_md, selected(rows))]
    lines += ["", "## Every run", "", *head, *map(_row_md, rows), "", "## Machines", ""]
    lines += [*sorted({f"- {r.get('device', 'cpu')}: {r['machine']}" for r in rows}), ""]
    lines += [
        "Figures of each run (curves, reconstructions, prior samples, latents):",
        "`benchmarks/vae/figures/<run>/`, copied from the run records, which stay uncommitted",
        "under `benchmarks/vae/runs/`. The 15-epoch categorical st-gs run of be59be42 predates the",
        "NaN-free KL gradient (37c0379), which the categorical gs run needed;",
        "`categorical-st-gs-s0-fixed` is that configuration rerun from scratch after the fix.",
        "Runs of 50 and 100 epochs continued their run directories from the checkpoints (exact",
        "resume: the same as uninterrupted runs of that length).",
        "The categorical st and st-annealed rows (c69488f) replace rows of 6e7c23b and a8b62f2 in",
        "which the lab annealed plain st and never annealed st-annealed (slope 1): they were each",
        "other's. Now st keeps τ = 1 (its temperature is fixed) and st-annealed follows the",
        "schedule (slope 1 → 2); their figures were drawn from the final checkpoints by the",
        "current figure code.",
        "",
    ]
    (results_dir / RESULTS_MD.name).write_text("\n".join(lines))


def protocol_section(results_dir: Path = HERE) -> list[str]:
    """The cells of the paper's protocol (``protocol.toml``, run by ``gumbel-softmax sweep``;
    its table ``protocol.json``): per cell the setting selected on validation (phase 1), its
    test bounds (phase 2's m = 1000 evaluation when the spec has ``[final]``), the step it
    reached and how many of the cell's grid points ran."""
    path = results_dir / "protocol.json"
    if not path.exists():
        return []
    doc = json.loads(path.read_text())
    final = doc.get("final") or {}
    phases = (
        " Two phases: every grid point was evaluated cheaply (its own final evaluation, as "
        "`protocol.toml`'s [base] sets it) "
        "and selected on its validation −ELBO; the test columns are phase 2's, the selected "
        f"point evaluated again with {', '.join(f'{k}={v}' for k, v in final.items())} on its "
        "trained weights (`—` until phase 2 ran)."
        if final
        else ""
    )
    lines = [
        "## The paper's protocol (`protocol.toml`)",
        "",
        "`gumbel-softmax sweep benchmarks/vae/protocol.toml` (SGD momentum 0.9, the paper's",
        "learning-rate grid, variance normalisation for sf-ema (the paper's SF: REINFORCE with",
        "a running-mean baseline)/darn/muprop, the annealing grid for the relaxed estimators;",
        "plain sf, without a baseline, is a reference row; per cell the setting with the lowest",
        "validation −ELBO among",
        "the grid points that ran; every point: `protocol.md`). A cell's `step` says how far its",
        f"selected run trained (the protocol's end: 100 epochs = 50,000 steps). "
        f"{doc['points_done']} of {doc['points_total']} grid points run.{phases}",
        "",
        "| latent | estimator | test neg_elbo | test iw_bound_m1000 | paper | selected | step "
        "| valid neg_elbo | points run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in doc["groups"]:
        latent, est = g["group"]["latent"], g["group"]["estimator"]
        paper = paper_value(latent, est)
        sel = g.get("selected")
        shown = "—" if sel is None else ", ".join(f"{k}={v}" for k, v in sel.items())

        def num(key: str, g: dict[str, Any] = g) -> str:
            return "—" if g.get(key) is None else f"{g[key]:.2f}"

        lines.append(
            f"| {latent} | {est} | {num('test.neg_elbo')} | {num('test.iw_bound')} | "
            f"{'—' if paper is None else f'{paper:.1f}'} | {shown} | {g.get('step', '—')} | "
            f"{num('valid.neg_elbo')} | {g['done']}/{g['points']} |"
        )
    return [*lines, ""]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--latent", choices=["categorical", "bernoulli"], default="categorical")
    p.add_argument("--estimator", default="gs", help=f"one of {estimators.available()}")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--max-steps", type=int, default=0, help="stop early (smoke tests only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=os.environ.get("GUMBEL_SOFTMAX_DATA", "/work/shared/data"))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--temperature", choices=["constant", "anneal", "learned"], default="anneal")
    p.add_argument("--tau0", type=float, default=1.0)
    p.add_argument("--tau-min", type=float, default=0.5)
    p.add_argument("--anneal-rate", type=float, default=1e-4)
    p.add_argument("--anneal-every", type=int, default=1000)
    p.add_argument("--eval-samples", type=int, default=1000, help="m of the final test bound")
    p.add_argument(
        "--valid-images",
        type=int,
        default=0,
        help="validation images for the curves and the final validation bound",
    )
    p.add_argument("--tag", default="", help="suffix of the run directory")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument(
        "--results-dir",
        type=Path,
        default=HERE,
        help="where results.json/.md and runs/ go (default: benchmarks/vae)",
    )
    p.add_argument(
        "--git-revision",
        default="",
        help="the revision to record when the code runs outside its checkout",
    )
    p.add_argument("--render", action="store_true", help="only re-render results.md")
    a = p.parse_args()
    if a.render:
        render(a.results_dir)
        return
    bern = a.latent == "bernoulli"
    name = f"{a.latent}-{a.estimator}-s{a.seed}{a.tag}"
    config = VAEConfig(
        latent=a.latent,
        n_latent=200 if bern else 20,
        n_classes=2 if bern else 10,
        estimator=a.estimator,
        dataset="binarized-mnist",
        data_dir=a.data_dir,
        epochs=a.epochs,
        optimizer=a.optimizer,
        lr=a.lr,
        temperature=a.temperature,
        tau0=a.tau0,
        tau_min=a.tau_min,
        anneal_rate=a.anneal_rate,
        anneal_every=a.anneal_every,
        seed=a.seed,
        eval_samples=a.eval_samples,
        eval_images=a.valid_images,
        eval_every=0,
        run_dir=str(a.results_dir / "runs" / name),
        progress=False,
        checkpoint_every=2500,
        device=a.device,
        max_steps=a.max_steps,
        log_every=100,
        eval_batch_size=1000 if a.device.startswith("cuda") else 100,
    ).validate()
    splits = load_fixed_binarized(a.data_dir)
    rev = a.git_revision or git_revision(HERE)  # of the code that runs, read before a long run
    load_start = os.getloadavg()[0]  # the machine is shared: its load explains wall times
    t0 = time.time()
    result = experiment.main(config, splits=splits)
    wall = time.time() - t0
    settings = {
        k: v
        for k, v in config.to_dict().items()
        if k not in ("run_dir", "data_dir", "progress", "figures", "download")
    }
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread(s), 1-min load average "
        f"{load_start:.1f} at start and {os.getloadavg()[0]:.1f} at end"
    )
    if config.device.startswith("cuda"):
        machine += f", {torch.cuda.get_device_name(torch.device(config.device))}"
    base = {
        "latent": a.latent,
        "n_latent": config.n_latent,
        "n_classes": config.n_classes,
        "estimator": a.estimator,
        "paper_value": paper_value(a.latent, a.estimator),
        "epochs": a.epochs,
        "steps": result.step,
        "seed": a.seed,
        "git_revision": rev,
        "settings": settings,
        "wall_s": round(wall, 1),
        "machine": machine,
        "run_dir": str(Path("benchmarks/vae/runs") / name),
        "device": config.device,
    }
    rows = [
        {
            **base,
            "metric": "neg_elbo",
            "value": result.test["neg_elbo"],
            "valid_value": result.valid["neg_elbo"],
        },
        {
            **base,
            "metric": f"iw_bound_m{a.eval_samples}",
            "value": result.test["iw_bound"],
            "valid_value": result.valid["iw_bound"],
        },
    ]
    append_rows(rows, a.results_dir)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
