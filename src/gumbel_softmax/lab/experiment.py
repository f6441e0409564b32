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

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch import Tensor

from gumbel_softmax import estimators

from .checkpoint import load_checkpoint, save_checkpoint
from .config import ConfigError, VAEConfig
from .evaluation import Bounds, evaluate
from .models import IMAGE_DIM, DiscreteVAE
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


def build_estimator(config: VAEConfig) -> estimators.Estimator:
    r"""The registry's estimator for ``config``, built from its declared capabilities.

    Its learned parts exist on return (NVIL's baseline reads the image, ``context_features=784``;
    RELAX's network the code), so the optimiser built next trains them. The temperature:

    * ``temperature_kind == "scheduled"``: ``schedule(0)``, then :func:`main` sets
      ``estimator.temperature = schedule(step)`` before every step; with
      ``temperature="learned"`` it is learned instead (``learn_temperature=True``).
    * ``"fixed"`` (plain straight-through) and ``"learned"`` (REBAR, RELAX): ``tau0``, which the
      first keeps and the second learns from.
    * no temperature: nothing.

    The config was validated against the capabilities (:meth:`VAEConfig.validate`), so a
    schedule the estimator cannot follow never gets here.
    """
    cls = estimators.estimator_class(config.estimator)
    options: dict[str, Any] = {}
    kind = cls.temperature_kind
    if kind is not None:
        options["temperature"] = config.schedule()(0) if kind == "scheduled" else config.tau0
    if config.temperature == "learned" and cls.learnable_temperature:
        options["learn_temperature"] = True
    return estimators.build(
        config.estimator,
        event_shape=(config.n_latent, config.n_classes),
        context_features=IMAGE_DIM,
        **options,
    )


def follows_schedule(config: VAEConfig) -> bool:
    """Whether :func:`main` sets the estimator's temperature from the schedule at every step."""
    cls = estimators.estimator_class(config.estimator)
    return cls.temperature_kind == "scheduled" and config.temperature != "learned"


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
    estimator = build_estimator(config).to(device)
    schedule = config.schedule()
    anneal = follows_schedule(config)
    takes_context = estimator.takes_context
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
            if anneal:
                cast(Any, estimator).temperature = schedule(step)  # declared settable
            tau = temperature_now()
            logits = model.encode(x)
            result = estimator(
                logits,
                partial(_nll, model, x=x),
                generator=sampler,
                context=x if takes_context else None,
            )
            # NVIL normalises the inference network's learning signal: the KL's part too.
            kl = model.kl(estimators.scale_gradient(logits, result.logits_scale))
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
