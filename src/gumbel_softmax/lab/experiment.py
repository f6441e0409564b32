"""The discrete VAE on the lab's runner: :func:`main` turns a config into a run record.

Read top to bottom: :func:`main` checks the config and the run directory, builds the model, the
estimator and the optimiser from the config, loads the data, and hands :func:`~.runner.train` the
four things only the VAE knows: the batch of a step, one step's loss (:func:`vae_objective`), the
periodic validation and the final evaluation. The runner (:mod:`gumbel_softmax.lab.runner`) does
the rest: cadence, checkpoints, resume, progress, the temperature schedule, metrics, the cache of
the final evaluation.

Exact resume. The checkpoint holds the model, the estimator (its learned parts and temperature),
the optimiser, the learning-rate schedule, the sampling generator, the log window and the step;
everything else random is recreated from a seed that is a pure function of
``(seed, purpose, epoch-or-step)``: the initial weights of the model and of the estimator, the
data order of each epoch, the evaluation samples of each step. A run killed at any moment and
started again with the same run directory continues from its last checkpoint and ends with the
same metrics and weights, bit for bit, as an uninterrupted run (on the same machine, thread count
and sampler backend).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from gumbel_softmax import estimators

from .config import VAEConfig
from .evaluation import Bounds, evaluate
from .experiments import EXPERIMENTS
from .models import IMAGE_DIM, DiscreteVAE
from .records import derive_seed, read_metrics
from .runner import (
    Cadence,
    Progress,
    RunDirectory,
    StepOutput,
    Training,
    load_data,
    load_splits,
    minibatches,
    require_extras,
    resolve_device,
    train,
)
from .sbn import VarianceNormalizer

__all__ = [
    "RunResult",
    "Splits",
    "build_estimator",
    "build_model",
    "build_optimizer",
    "follows_schedule",
    "load_splits",
    "main",
    "vae_objective",
]

# Changing these between a run and its resumption does not change what the run computes.
_RESUMABLE_KEYS = frozenset(
    {"epochs", "max_steps", "progress", "figures", "run_dir", "data_dir", "download"}
)
# Only the final evaluation (and the periodic validation) reads these: other values re-run
# the final evaluation of a finished run alone.
_FINAL_FIELDS = frozenset(EXPERIMENTS["vae"].final_fields)


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
            hidden=config.hidden_sizes(),
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
    schedule the estimator cannot follow never gets here. Learned parts are initialised from
    ``config.seed`` (global RNG untouched), like the model.
    """
    cls = estimators.estimator_class(config.estimator)
    options: dict[str, Any] = {}
    kind = cls.temperature_kind
    if kind is not None:
        options["temperature"] = config.schedule()(0) if kind == "scheduled" else config.tau0
    if config.temperature == "learned" and cls.learnable_temperature:
        options["learn_temperature"] = True
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init", "estimator"))
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


def vae_objective(
    model: DiscreteVAE,
    estimator: estimators.Estimator,
    x: Tensor,
    *,
    generator: torch.Generator,
    scale: float = 1.0,
) -> tuple[Tensor, Tensor, estimators.EstimatorResult]:
    r"""One step's loss of the VAE on the batch ``x`` ``(B, 784)``: ``(loss, kl, result)``.

    :math:`\text{loss} = \frac1B \sum_b [\text{surrogate}_b + \mathrm{KL}_b]`, where the
    estimator's surrogate carries the gradient of :math:`\mathbb E_q[-\log p(x\mid z)]` and the
    KL is analytic. The KL reads the logits through
    ``scale_gradient(logits, result.logits_scale)``: an estimator that scales the inference
    network's learning signal (NVIL's variance normalisation) scales the KL's gradient to the
    logits by the same factor, so the encoder sees one consistently scaled objective (Mnih &
    Gregor 2014, arXiv:1402.0030); the KL's value, and the decoder's gradient, are unchanged.
    NVIL's baseline reads the image (``context=x``).

    An estimator that declares ``multi_sample_bound`` (VIMCO) is given the per-sample
    :math:`-\log w = -\log p(x, z) + \log q(z\mid x)` instead, and its surrogate is the whole
    loss (the S-sample bound holds the KL); the analytic KL is then returned for logging only.

    ``scale`` (variance normalisation, 1 = off) multiplies the whole gradient reaching the
    encoder's logits, estimator and KL terms alike: the encoder then follows a positive multiple
    of the same gradient estimate, and the decoder's gradient is unchanged.
    """
    logits = model.encode(x)
    if scale != 1.0:
        logits = estimators.scale_gradient(logits, scale)
    if estimator.multi_sample_bound:
        f = partial(_neg_log_weight, model, x=x, logits=logits)
        result = estimator(logits, f, generator=generator)
        return result.surrogate.mean(), model.kl(logits).detach(), result
    result = estimator(
        logits,
        partial(_nll, model, x=x),
        generator=generator,
        context=x if estimator.takes_context else None,
    )
    kl = model.kl(estimators.scale_gradient(logits, result.logits_scale))
    return (result.surrogate + kl).mean(), kl, result


def main(config: VAEConfig, *, splits: Splits | None = None) -> RunResult:
    """Train (or resume) the run ``config`` describes and return its final bounds.

    Args:
        config: the run's options (validated here, before any work).
        splits: the dataset; by default ``load_splits(config)``.

    Raises:
        ConfigError: an invalid config (checked before anything is written), a run directory
            that is a file or holds a different run, or a dataset that is not where the config
            points.
        RunError: the device is not available, an optional package is missing, or a data file
            is corrupt.
        CheckpointError: every checkpoint of the run directory is corrupt.
        OSError: a file of the run record cannot be written (the error names it).
    """
    config.validate()
    run = RunDirectory(config.run_dir)
    run.check_config(
        config.to_dict(), resumable=_RESUMABLE_KEYS | _FINAL_FIELDS, defaults=VAEConfig().to_dict()
    )
    device = resolve_device(config.device)
    require_extras(progress=config.progress, figures=config.figures)
    from . import figures as figures_module  # loaded now: a long run never sees later edits

    model = build_model(config).to(device)
    estimator = build_estimator(config).to(device)
    if splits is None:
        splits = load_data(config)
    train_x = _as_tensor(splits.train).to(device)
    steps_per_epoch, minibatch = minibatches(train_x, config.batch_size, config.seed)
    valid_x = _eval_set(splits.valid, splits.binarized, config.seed, "valid", config.eval_images)
    test_x = _eval_set(splits.test, splits.binarized, config.seed, "test", config.test_images)
    valid_x, test_x = valid_x.to(device), test_x.to(device)
    optimizer = build_optimizer(config, [*model.parameters(), *estimator.parameters()])
    lr_schedule = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=config.lr_decay_every, gamma=config.lr_decay
    )
    sampler = torch.Generator(device=device).manual_seed(derive_seed(config.seed, "samples"))
    binarize: Callable[..., Tensor] | None = None
    if not splits.binarized:
        from .data import dynamic_binarize

        binarize = dynamic_binarize

    def batch(step: int) -> Tensor:
        x = minibatch(step)
        if binarize is not None:
            x = binarize(x, generator=sampler)  # a fresh binarization per batch
        return x

    # Variance normalisation (the paper's choice for SF, DARN and MuProp): the scale is read
    # before the step's samples, so the step stays unbiased for a multiple of the gradient.
    normalizer = VarianceNormalizer().to(device)

    def step(x: Tensor) -> StepOutput:
        scale = normalizer.scale if config.normalize else 1.0
        loss, kl, result = vae_objective(model, estimator, x, generator=sampler, scale=scale)
        value = result.objective()  # the estimator's estimate of E f (or of its bound)
        kl = kl.detach()
        total = value if estimator.multi_sample_bound else value + kl  # the bound holds the KL
        stats = {"loss": float(total.mean()), "kl": float(kl.mean())}
        if config.normalize:
            # The spread of what the scale divides: the cost f, or the estimator's own learning
            # signal f - b (declared reports_signal, checked by the config).
            signal = result.signal if config.normalize_by == "signal" else value
            assert signal is not None
            normalizer.update(signal.detach())
            stats["scale"] = scale
        return StepOutput(loss, stats)

    def validate(step: int) -> dict[str, float]:
        b = _bounds(model, valid_x, config, config.eval_samples_during, "valid", step)
        return {"neg_elbo": b.neg_elbo, "iw_bound": b.iw_bound, "m": b.m}

    def final(step: int, progress: Progress) -> dict[str, Any]:
        out: dict[str, Any] = {}
        n_batches = [-(-len(d) // config.eval_batch_size) for d in (valid_x, test_x)]
        progress.total = sum(n_batches)
        for name, data in (("valid", valid_x), ("test", test_x)):
            b = _bounds(model, data, config, config.eval_samples, name, step, progress)
            out[name] = {"neg_elbo": b.neg_elbo, "iw_bound": b.iw_bound, "n_images": b.n_images}
        return out

    cadence = Cadence.of(config, steps_per_epoch)
    result = train(
        run,
        Training(
            modules={
                "model": model,
                "estimator": estimator,
                # only when on, so that runs from before the option resume as they were
                **({"normalizer": normalizer} if config.normalize else {}),
            },
            optimizer=optimizer,
            lr_schedule=lr_schedule,
            generator=sampler,
            batch=batch,
            step=step,
            evaluate=validate,
            final=final,
            final_key={"m": config.eval_samples},
            final_fields=_FINAL_FIELDS,
            estimator=estimator,
            schedule=config.schedule() if follows_schedule(config) else None,
        ),
        cadence,
        config=config.to_dict(),
        seed=config.seed,
        progress=config.progress,
        session={"dataset": splits.name, "steps_per_epoch": steps_per_epoch},
    )
    figures: list[Path] = []
    if config.figures:
        figures = figures_module.draw_all(
            model, read_metrics(run.metrics), test_x, run.figures, seed=config.seed
        )
    final_record = result.final
    return RunResult(
        step=result.step,
        valid=final_record["valid"],
        test=final_record["test"],
        run_dir=run.path,
        figures=figures,
    )


def _nll(model: DiscreteVAE, z: Tensor, *, x: Tensor) -> Tensor:
    return model.reconstruction_nll(z, x)


def _neg_log_weight(model: DiscreteVAE, z: Tensor, *, x: Tensor, logits: Tensor) -> Tensor:
    return -model.log_joint_minus_q(z, x, logits)


def _bounds(
    model: DiscreteVAE,
    data: Tensor,
    config: VAEConfig,
    m: int,
    split: str,
    step: int,
    progress: Progress | None = None,
) -> Bounds:
    g = torch.Generator(device=data.device)
    g.manual_seed(derive_seed(config.seed, "eval", split, step, m))
    options = {"m": m, "batch_size": config.eval_batch_size, "chunk": config.eval_chunk}
    if progress is None:
        return evaluate(model, data, generator=g, **options)
    # Batch by batch for the progress bar: the same samples (one generator, the same order) as
    # one call; the averages agree with it to rounding.
    neg_elbo = iw = 0.0
    for start in range(0, data.shape[0], config.eval_batch_size):
        x = data[start : start + config.eval_batch_size]
        b = evaluate(model, x, generator=g, **options)
        neg_elbo += b.neg_elbo * b.n_images
        iw += b.iw_bound * b.n_images
        progress.update(1)
    n = data.shape[0]
    return Bounds(neg_elbo=neg_elbo / n, iw_bound=iw / n, m=m, n_images=n)
