"""Training and evaluating the discrete VAE: :func:`main` turns a config into a run record.

Read top to bottom: build everything from the config, restore the last checkpoint if the run
directory has one, train with periodic validation and checkpoints, evaluate the final bounds, draw
the figures.

Exact resume. Everything random is either saved in the checkpoint (model, optimizer, learning-rate
schedule, the sampling generator, the running log window, the step) or recreated from a seed that is
a pure function of ``(seed, purpose, epoch-or-step)`` (the data order of each epoch, the evaluation
samples at each step). The temperature schedule is a pure function of the step; a learned
temperature is a parameter saved with the model. A run killed at any moment and started again with
the same run directory therefore continues from its last checkpoint and ends with the same metrics
and weights, bit for bit, as an uninterrupted run (on the same machine and thread count).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from gumbel_softmax import Constant, ExponentialAnneal, Schedule, estimators

from .checkpoint import load_checkpoint, save_checkpoint
from .config import ConfigError, VAEConfig
from .evaluation import Bounds, evaluate
from .models import DiscreteVAE
from .records import derive_seed, provenance, read_metrics, truncate_metrics, write_json_atomic

__all__ = ["RunResult", "Splits", "build_model", "build_optimizer", "load_splits", "main"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
# Changing these between a run and its resumption does not change what the run computes.
_RESUMABLE_KEYS = frozenset(
    {"epochs", "max_steps", "progress", "figures", "run_dir", "data_dir", "download"}
)


class Splits(Protocol):
    """What :func:`main` needs of a dataset (``gumbel_softmax.lab.data.load_dataset`` gives it)."""

    @property
    def train(self) -> Any: ...
    @property
    def valid(self) -> Any: ...
    @property
    def test(self) -> Any: ...
    @property
    def binarized(self) -> bool: ...
    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class RunResult:
    """The final bounds of a run (nats per image) and where its record is."""

    step: int
    valid: dict[str, float]
    test: dict[str, float]
    run_dir: Path
    figures: list[Path]


def build_model(config: VAEConfig) -> DiscreteVAE:
    """The model a config describes, initialised from ``config.seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        return DiscreteVAE(
            latent=config.latent,  # type: ignore[arg-type]
            n_latent=config.n_latent,
            n_classes=config.n_classes,
            prior=config.prior,  # type: ignore[arg-type]
        )


def _init_options(name: str) -> set[str]:
    cls = type(estimators.get(name))
    return set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}


def build_estimator(config: VAEConfig, temperature: float | None = None) -> estimators.Estimator:
    r"""The registry's estimator for ``config``, at ``temperature`` (default: the schedule's
    value at step 0) if it takes one.

    * ``temperature="learned"`` uses the estimator's own learned temperature
      (``learn_temperature=True``, :math:`\tau = e^{\lambda}` optimised with the model).
    * ``temperature="anneal"`` rebuilds the estimator whenever the schedule changes the value,
      which is exact for estimators without learned parts (all those with a ``temperature``
      argument except ``rebar``/``relax``, which learn theirs).
    * Estimators without a temperature (``sf``, ``nvil``, ``arm`` ...) ignore these options.

    Raises:
        ConfigError: a combination the estimator does not support (a learned temperature it does
            not have, annealing an estimator with learned parts, a binary-only estimator on
            categorical latents).
    """
    options = _init_options(config.estimator)
    kwargs: dict[str, Any] = {}
    if "temperature" in options:
        kwargs["temperature"] = build_schedule(config)(0) if temperature is None else temperature
        if config.temperature == "learned":
            if "learn_temperature" not in options:
                raise ConfigError(
                    f"temperature='learned' needs an estimator with a learned temperature; "
                    f"{config.estimator!r} has none (use 'gs' or 'st-gs', or another mode)"
                )
            kwargs["learn_temperature"] = True
    est = estimators.get(config.estimator, **kwargs)
    if config.temperature == "anneal" and "temperature" in options and list(est.parameters()):
        raise ConfigError(
            f"temperature='anneal' cannot drive {config.estimator!r}, which learns its own "
            "temperature; use temperature='constant' (its initial value is tau0)"
        )
    if est.binary_only and config.n_classes != 2:
        raise ConfigError(
            f"estimator {config.estimator!r} handles binary variables only; use latent='bernoulli'"
        )
    return est


def build_optimizer(config: VAEConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Adam, or SGD with momentum, at ``config.lr``; torch's fused implementation (one kernel
    over all parameters, on CPU as on GPU) unless ``config.fused_optimizer`` is off or the
    parameters' device has none. On the categorical VAE's CPU step the fused Adam saves about a
    fifth of the step (``benchmarks/kernels/vae_step.py``)."""
    kind: Any = torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD
    options: dict[str, Any] = {"lr": config.lr}
    if config.optimizer == "sgd":
        options["momentum"] = config.momentum
    if config.fused_optimizer:
        try:
            return kind(params, **options, fused=True)
        except RuntimeError:  # no fused kernel for this device (torch says which it supports)
            pass
    return kind(params, **options)


def build_schedule(config: VAEConfig) -> Schedule:
    if config.temperature == "anneal":
        return ExponentialAnneal(
            tau0=config.tau0,
            rate=config.anneal_rate,
            tau_min=config.tau_min,
            every=config.anneal_every,
        )
    return Constant(config.tau0)


def load_splits(config: VAEConfig) -> Splits:
    """Load ``config.dataset`` through :func:`gumbel_softmax.lab.data.load_dataset`."""
    from .data import load_dataset  # imported here so the models run without the data module

    splits: Splits = load_dataset(
        config.dataset, data_dir=config.data_dir or None, download=config.download
    )
    return splits


def _as_tensor(a: Any) -> Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32)).reshape(len(a), -1)


def _eval_set(a: Any, binarized: bool, seed: int, name: str, limit: int) -> Tensor:
    x = _as_tensor(a)
    if limit:
        x = x[:limit]
    if not binarized:
        # Grey-scale sets: one fixed binarization of the evaluation images, a function of the seed.
        g = torch.Generator().manual_seed(derive_seed(seed, "binarize", name))
        x = torch.bernoulli(x, generator=g)
    return x


def _check_resume(config: VAEConfig, run_dir: Path) -> None:
    stored_path = run_dir / "config.json"
    if not stored_path.exists():
        return
    stored = VAEConfig.from_dict(json.loads(stored_path.read_text()))
    diff = sorted(
        k
        for k, v in config.to_dict().items()
        if k not in _RESUMABLE_KEYS and stored.to_dict()[k] != v
    )
    if diff:
        detail = ", ".join(f"{k}: {stored.to_dict()[k]!r} -> {getattr(config, k)!r}" for k in diff)
        raise ConfigError(
            f"run_dir {str(run_dir)!r} holds a run with a different config ({detail}); "
            "use a new run_dir, or the same options to resume"
        )


def main(config: VAEConfig, *, splits: Splits | None = None) -> RunResult:
    """Train (or resume) the run ``config`` describes and return its final bounds.

    Args:
        config: the run's options (validated here, before any work).
        splits: the dataset; by default ``load_splits(config)``.

    Raises:
        ConfigError: an invalid config, or a run directory holding a different run.
        CheckpointError: the run directory's checkpoint is corrupt.
    """
    config.validate()
    from . import figures as figures_module  # loaded now: a long run never sees later edits

    run_dir = Path(config.run_dir)
    _check_resume(config, run_dir)
    device = torch.device(config.device)
    model = build_model(config).to(device)
    estimator = build_estimator(config).to(device)  # bad combinations fail here, before any work
    schedule = build_schedule(config)
    anneal = config.temperature == "anneal" and "temperature" in _init_options(config.estimator)
    if splits is None:
        try:
            splits = load_splits(config)
        except FileNotFoundError as err:  # data not where the config points: a config error
            raise ConfigError(str(err)) from None
    train_x = _as_tensor(splits.train).to(device)
    steps_per_epoch = train_x.shape[0] // config.batch_size
    if steps_per_epoch < 1:
        raise ConfigError(
            f"batch_size={config.batch_size} exceeds the {train_x.shape[0]} training images"
        )
    total = config.epochs * steps_per_epoch
    if config.max_steps:
        total = min(total, config.max_steps)
    valid_x = _eval_set(splits.valid, splits.binarized, config.seed, "valid", config.eval_images)
    test_x = _eval_set(splits.test, splits.binarized, config.seed, "test", config.test_images)
    valid_x, test_x = valid_x.to(device), test_x.to(device)

    optimizer = build_optimizer(config, [*model.parameters(), *estimator.parameters()])
    lr_schedule = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=config.lr_decay_every, gamma=config.lr_decay
    )
    sampler = torch.Generator(device=device).manual_seed(derive_seed(config.seed, "samples"))
    window = {"loss": 0.0, "kl": 0.0, "n": 0}

    run_dir.mkdir(parents=True, exist_ok=True)
    for stray in run_dir.glob(f"{CHECKPOINT}.tmp*"):
        stray.unlink()  # a checkpoint write that was killed: never used
    state = load_checkpoint(run_dir / CHECKPOINT)
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        estimator.load_state_dict(state["estimator"])
        optimizer.load_state_dict(state["optimizer"])
        lr_schedule.load_state_dict(state["lr_schedule"])
        sampler.set_state(state["sampler"])
        window = dict(state["window"])
        step = int(state["step"])
    else:
        write_json_atomic(config.to_dict(), run_dir / "config.json")
    truncate_metrics(run_dir / METRICS, step)
    sessions = _read_json(run_dir / "run.json", {"sessions": []})
    sessions["sessions"].append({**provenance(config.seed), "resumed_from_step": step})
    sessions.update(seed=config.seed, dataset=splits.name, steps_per_epoch=steps_per_epoch)
    write_json_atomic(sessions, run_dir / "run.json")

    from torch.utils.tensorboard import SummaryWriter

    tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=step if step else None)
    metrics = open(run_dir / METRICS, "a")

    def log(row: dict[str, Any]) -> None:
        metrics.write(json.dumps(row, sort_keys=True) + "\n")
        metrics.flush()
        for k, v in row.items():
            if isinstance(v, float):
                tb.add_scalar(f"{row['kind']}/{row.get('split', 'train')}/{k}", v, row["step"])

    def checkpoint() -> None:
        save_checkpoint(
            {
                "model": model.state_dict(),
                "estimator": estimator.state_dict(),
                "optimizer": optimizer.state_dict(),
                "lr_schedule": lr_schedule.state_dict(),
                "sampler": sampler.get_state(),
                "window": dict(window),
                "step": step,
                "config": config.to_dict(),
            },
            run_dir / CHECKPOINT,
        )

    def temperature_now() -> float | None:
        t = getattr(estimator, "temperature", None)
        return None if t is None else float(t.detach() if isinstance(t, Tensor) else t)

    binarize: Callable[..., Tensor] | None = None
    if not splits.binarized:
        from .data import dynamic_binarize

        binarize = dynamic_binarize
    eval_every = config.eval_every or steps_per_epoch
    progress = _progress(config.progress, total, step)
    order: tuple[int, Tensor] | None = None
    try:
        while step < total:
            epoch, i = divmod(step, steps_per_epoch)
            if order is None or order[0] != epoch:
                g = torch.Generator().manual_seed(derive_seed(config.seed, "order", epoch))
                order = (epoch, torch.randperm(train_x.shape[0], generator=g).to(device))
            x = train_x[order[1][i * config.batch_size : (i + 1) * config.batch_size]]
            if binarize is not None:
                x = binarize(x, generator=sampler)  # a fresh binarization per batch
            if anneal and schedule(step) != temperature_now():
                # The schedule moved: the same (parameter-free) estimator at the new temperature.
                estimator = build_estimator(config, schedule(step)).to(device)
            tau = temperature_now()
            logits = model.encode(x)
            result = estimator(logits, partial(_nll, model, x=x), generator=sampler)
            kl = model.kl(logits)
            loss = (result.surrogate + kl).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            lr_schedule.step()
            step += 1
            value = result.value.reshape(-1, *kl.shape).mean(0)
            window["loss"] += float((value + kl.detach()).mean())
            window["kl"] += float(kl.detach().mean())
            window["n"] += 1
            # Rows follow a fixed cadence (plus the natural end of training), never the step where
            # a session stops (max_steps): a stopped-and-resumed run writes the same rows.
            end = step == config.epochs * steps_per_epoch
            if step % config.log_every == 0 or end:
                row = {
                    "kind": "train",
                    "step": step,
                    "epoch": step / steps_per_epoch,
                    "loss": window["loss"] / window["n"],
                    "kl": window["kl"] / window["n"],
                    "temperature": tau,
                    "lr": float(optimizer.param_groups[0]["lr"]),
                }
                log(row)
                progress.set_postfix(
                    loss=f"{row['loss']:.2f}", tau="n/a" if tau is None else f"{tau:.3f}"
                )
                window = {"loss": 0.0, "kl": 0.0, "n": 0}
            if step % eval_every == 0 or end:
                b = _bounds(model, valid_x, config, config.eval_samples_during, "valid", step)
                log(
                    {
                        "kind": "eval",
                        "split": "valid",
                        "step": step,
                        "epoch": step / steps_per_epoch,
                        "neg_elbo": b.neg_elbo,
                        "iw_bound": b.iw_bound,
                        "m": b.m,
                    }
                )
            if step % config.checkpoint_every == 0 or step == total:
                checkpoint()
            progress.update(1)
    finally:
        progress.close()
        metrics.close()
        tb.close()

    final = _read_json(run_dir / "final.json", None)
    if final is None or final.get("step") != step or final.get("m") != config.eval_samples:
        final = {"step": step, "m": config.eval_samples}
        for name, data in (("valid", valid_x), ("test", test_x)):
            b = _bounds(model, data, config, config.eval_samples, name, step)
            final[name] = {"neg_elbo": b.neg_elbo, "iw_bound": b.iw_bound, "n_images": b.n_images}
        write_json_atomic(final, run_dir / "final.json")
    figures: list[Path] = []
    if config.figures:
        figures = figures_module.draw_all(
            model, read_metrics(run_dir / METRICS), test_x, run_dir / "figures", seed=config.seed
        )
    return RunResult(
        step=step, valid=final["valid"], test=final["test"], run_dir=run_dir, figures=figures
    )


def _nll(model: DiscreteVAE, z: Tensor, *, x: Tensor) -> Tensor:
    return model.reconstruction_nll(z, x)


def _bounds(
    model: DiscreteVAE, data: Tensor, config: VAEConfig, m: int, split: str, step: int
) -> Bounds:
    g = torch.Generator(device=data.device)
    g.manual_seed(derive_seed(config.seed, "eval", split, step, m))
    return evaluate(
        model, data, m=m, batch_size=config.eval_batch_size, chunk=config.eval_chunk, generator=g
    )


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


class _NoBar:
    def set_postfix(self, **kw: Any) -> None: ...
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


def _progress(enabled: bool, total: int, initial: int) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
