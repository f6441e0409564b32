r"""Many small VAEs in one process: G models of one architecture, differing only in learning
rate and seed, trained stacked (experimental).

The paper's networks are tiny (``784-512-256-(20x10)-256-512-784``): on a GPU one run per process
leaves the device idle. :func:`train_stacked` trains G such models at once. Each model keeps its
own parameters, optimiser state (one parameter group per model, so its own learning rate),
data order, sampling generator and estimator, all built exactly as
:func:`gumbel_softmax.lab.experiment.main` builds them from its config; only the arithmetic is
batched. At every layer the G weight matrices are stacked and applied in one batched product,

.. math:: H^{(l)}_g = \phi\big(H^{(l-1)}_g W^{(l)\top}_g + b^{(l)}_g\big), \quad g = 1..G,

(``torch.baddbmm`` over ``(G, B, \cdot)``), the encoder gives logits ``(G, B, N, K)``, each
model's estimator draws its sample from its own generator (the same call, and so the same random
numbers, as alone), and the decoder and the loss are batched again. The loss is the sum of the G
models' losses, whose gradient with respect to model g's parameters is that of its own loss
(the other terms do not depend on them).

Equality with training alone. The random streams are the same draw for draw, and on the CPU the
weights and the final bounds are the same to the bit as :func:`~gumbel_softmax.lab.experiment.main`
gives each config alone (``tests/lab/vae/test_vae_stacked.py``: two models, SGD and Adam, one thread;
also checked at the paper's 512-256 sizes): torch's CPU ``baddbmm`` runs each model's product as
the same GEMM as the single ``addmm``. On a GPU the batched kernel may tile and sum the inner
dimension in another order than the single product, so there expect agreement to float
rounding, with trajectories that drift apart slowly as training amplifies the last bits.

Scope: pathwise estimators without learned parts (``gs``, ``st-gs``, ``st``, ``st-annealed``,
``gumbel-rao``, ``gst``, ``reinmax``, ...), the uniform prior, fixed binarized data (no per-batch
binarization draws), no learning-rate decay; no checkpoints or run records (a stacked training is
a measurement, not a run directory). Throughput: ``benchmarks/vae/stacked.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gumbel_softmax import estimators

from .config import ConfigError, VAEConfig
from .models import DiscreteVAE
from .records import derive_seed
from .runner import minibatches, resolve_device

__all__ = ["StackedResult", "check_stackable", "stacked_step", "train_stacked"]

# Keys in which the stacked models may differ.
_FREE = frozenset({"lr", "seed", "run_dir"})


@dataclass(frozen=True)
class StackedResult:
    """One stacked model after training: its config, model, step and final bounds (the same
    dict as a run's ``final.json`` ``valid``/``test`` entries), or ``None`` when not evaluated."""

    config: VAEConfig
    model: DiscreteVAE
    step: int
    valid: dict[str, float] | None
    test: dict[str, float] | None


def check_stackable(configs: Sequence[VAEConfig]) -> None:
    """Raise :class:`ConfigError` unless ``configs`` can train stacked: at least one, equal but
    for ``lr``, ``seed`` and ``run_dir``, a pathwise estimator without learned parts, the
    uniform prior, no learning-rate decay."""
    if not configs:
        raise ConfigError("configs must hold at least one VAEConfig, got none")
    first = configs[0].validate().to_dict()
    for c in configs[1:]:
        other = c.validate().to_dict()
        diff = sorted(k for k in first if k not in _FREE and first[k] != other[k])
        if diff:
            detail = ", ".join(f"{k}: {first[k]!r} vs {other[k]!r}" for k in diff)
            raise ConfigError(
                f"stacked models may differ only in lr and seed; these configs differ in {detail}"
            )
    c0 = configs[0]
    cls = estimators.estimator_class(c0.estimator)
    if not issubclass(cls, estimators.PathwiseEstimator) or cls.needs_event_shape:
        raise ConfigError(
            f"estimator {c0.estimator!r} cannot train stacked: only pathwise estimators without "
            "learned parts (gs, st-gs, st, st-annealed, gumbel-rao, ...) draw their sample "
            "apart from the loss"
        )
    if c0.prior != "uniform":
        raise ConfigError(f"stacked training needs prior='uniform', got {c0.prior!r}")
    if c0.lr_decay != 1.0:
        raise ConfigError(f"stacked training needs lr_decay=1 (no decay), got {c0.lr_decay!r}")
    if c0.temperature == "learned":
        raise ConfigError(
            "stacked training needs a constant or annealed temperature, got 'learned'"
        )


def _linears(mlp: nn.Sequential) -> list[nn.Linear]:
    return [m for m in mlp if isinstance(m, nn.Linear)]


def _stacked_mlp(mlps: Sequence[nn.Sequential], h: Tensor) -> Tensor:
    """The G MLPs on ``h (G, B, in)``: one ``baddbmm`` per layer, ReLU between layers."""
    layers = list(zip(*(_linears(m) for m in mlps), strict=True))
    for i, linear in enumerate(layers):
        w = torch.stack([lin.weight for lin in linear])  # (G, out, in)
        b = torch.stack([lin.bias for lin in linear])  # (G, out)
        h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        if i < len(layers) - 1:
            h = F.relu(h)
    return h


def stacked_step(
    models: Sequence[DiscreteVAE],
    samplers: Sequence[estimators.Estimator],
    x: Tensor,
    generators: Sequence[torch.Generator],
) -> Tensor:
    """The G models' training losses ``(G,)`` on their batches ``x (G, B, 784)``: the batched
    encoder, each model's sample from its own estimator and generator, the batched decoder,
    the reconstruction term plus the analytic KL, averaged over each batch."""
    m0 = models[0]
    h = _stacked_mlp([m.encoder for m in models], x)
    if m0.latent == "bernoulli":
        logits = torch.stack([h, torch.zeros_like(h)], dim=-1)
    else:
        logits = h.unflatten(-1, (m0.n_latent, m0.n_classes))
    z = torch.stack(
        [
            cast(estimators.PathwiseEstimator, est).sample(logits[g], generator=gen)
            for g, (est, gen) in enumerate(zip(samplers, generators, strict=True))
        ]
    )
    code = z[..., 0] if m0.latent == "bernoulli" else z.flatten(-2)
    pixels = _stacked_mlp([m.decoder for m in models], code)
    nll = F.binary_cross_entropy_with_logits(pixels, x, reduction="none").sum(-1)
    return (nll + m0.kl(logits)).mean(-1)


def train_stacked(
    configs: Sequence[VAEConfig],
    *,
    splits: Any = None,
    steps: int | None = None,
    evaluate: bool = True,
) -> list[StackedResult]:
    """Train the G VAEs ``configs`` (equal but for ``lr`` and ``seed``) stacked, for their
    ``epochs`` (or ``max_steps``, or ``steps`` when given), and evaluate each as
    :func:`gumbel_softmax.lab.experiment.main` does (``final.json``'s bounds).

    Raises:
        ConfigError: the configs cannot train stacked (:func:`check_stackable`), or the data
            set is not fixed-binarized.
        RunError: the device is not available.
    """
    from . import experiment

    check_stackable(configs)
    c0 = configs[0]
    device = resolve_device(c0.device)
    if splits is None:
        splits = experiment.load_splits(c0)
    if not splits.binarized:
        raise ConfigError(
            f"stacked training needs a fixed-binarized dataset, got {c0.dataset!r} (dynamically "
            "binarized each batch)"
        )
    models = [experiment.build_model(c).to(device) for c in configs]
    samplers = [experiment.build_estimator(c).to(device) for c in configs]
    schedule = c0.schedule() if experiment.follows_schedule(c0) else None
    train_x = experiment._as_tensor(splits.train).to(device)
    batches = [minibatches(train_x, c.batch_size, c.seed) for c in configs]
    steps_per_epoch = batches[0][0]
    end = c0.epochs * steps_per_epoch
    stop = steps if steps is not None else min(end, c0.max_steps) if c0.max_steps else end
    generators = [
        torch.Generator(device=device).manual_seed(derive_seed(c.seed, "samples")) for c in configs
    ]
    optimizer = _optimizer(c0, [list(m.parameters()) for m in models], [c.lr for c in configs])
    for step in range(stop):
        if schedule is not None:
            for est in samplers:
                cast(Any, est).temperature = schedule(step)  # declared settable
        x = torch.stack([batch(step) for _, batch in batches])
        loss = stacked_step(models, samplers, x, generators)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
    results = []
    for c, model in zip(configs, models, strict=True):
        valid = test = None
        if evaluate:
            binarized = splits.binarized
            v = experiment._eval_set(splits.valid, binarized, c.seed, "valid", c.eval_images)
            t = experiment._eval_set(splits.test, binarized, c.seed, "test", c.test_images)
            valid, test = (
                _final(model, data.to(device), c, name, stop)
                for name, data in (("valid", v), ("test", t))
            )
        results.append(StackedResult(config=c, model=model, step=stop, valid=valid, test=test))
    return results


def _final(model: DiscreteVAE, data: Tensor, c: VAEConfig, split: str, step: int) -> dict[str, Any]:
    from .experiment import _bounds

    b = _bounds(model, data, c, c.eval_samples, split, step)
    return {"neg_elbo": b.neg_elbo, "iw_bound": b.iw_bound, "n_images": b.n_images}


def _optimizer(
    config: VAEConfig, groups: list[list[nn.Parameter]], lrs: list[float]
) -> torch.optim.Optimizer:
    """:func:`~gumbel_softmax.lab.experiment.build_optimizer` with one parameter group per
    model at its own learning rate (the per-parameter update is the same as alone)."""
    kind: Any = torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD
    options: dict[str, Any] = {}
    if config.optimizer == "sgd":
        options["momentum"] = config.momentum
    params = [{"params": g, "lr": lr} for g, lr in zip(groups, lrs, strict=True)]
    if config.fused_optimizer:
        try:
            return kind(params, lr=lrs[0], **options, fused=True)
        except RuntimeError:
            pass
    return kind(params, lr=lrs[0], **options)
