r"""Structured output prediction with stochastic binary networks (Jang, Gu & Poole 2017,
arXiv:1611.01144, section 4.1 and Table 1): predict the lower half of a binarized MNIST digit
from its upper half through stochastic layers, on the lab's runner.

The model. With :math:`x` the upper 392 pixels, :math:`y` the lower 392 and stochastic layers
:math:`h_1, \dots, h_L` (the paper: L = 2),

.. math:: p(y \mid x) = \sum_{h} p(h_1 \mid x) \prod_{l=2}^{L} p(h_l \mid h_{l-1})\;
          p(y \mid h_L),

every conditional a linear map of the layer below: Bernoulli layers of ``n_latent`` sigmoid units
(the paper's ``392-200-200-392``) or ``n_latent`` categorical variables of ``n_classes`` softmax
units (``392-(20x10)-(20x10)-392``), and independent Bernoulli pixels for :math:`y`. A Bernoulli
layer is handed to the estimators as two-class logits :math:`(\ell, 0)` (class 0 = unit on), as
in the VAE (:mod:`gumbel_softmax.lab.models`); the next layer reads ``z[..., 0]``.

The objective (importance-sampled with the prior as proposal):
:math:`\mathcal L_m = \log \frac1m \sum_{i=1}^m p(y \mid h^{(i)})`, :math:`h^{(i)} \sim p(h\mid x)`;
training minimises :math:`-\mathcal L_1 = -\log p(y \mid h)` with one sample, evaluation reports
:math:`-\mathcal L_{1000}` (nats per image, lower is better; :math:`\mathbb E[-\mathcal L_m]`
decreases to :math:`-\log p(y \mid x)` as m grows). Each layer's sample goes through the
registered estimator of that layer with :func:`gumbel_softmax.graph.stochastic_node`: the layers
are nested, so score-function layers get the cost downstream of them as learning signal and
pathwise layers pass their relaxed sample to the next layer. The evaluation draws exact one-hot
samples at every layer (Gumbel-Softmax discretised), whatever the estimator.

Variance normalisation (``normalize``; the paper's choice for SF, DARN and MuProp, after Mnih &
Gregor 2014, arXiv:1402.0030): the gradient reaching every layer's logits is divided by
:math:`\max(1, \sqrt{v})`, :math:`v` a running variance (momentum 0.8) of the per-example cost,
which is the learning signal of every layer here (the one cost is downstream of all of them).
The scale of a step is read before the step's samples, so the estimate stays unbiased for a
positive multiple of the gradient of the layers' parameters; the output layer is not scaled.
What it scales is the whole gradient of the logits, so for MuProp also its Taylor (mean-field)
term, and it divides by the spread of the cost, not of the residual after a control variate as
NVIL does (the estimators do not expose their residual): with a cost spread of about 28 nats the
layers of ``sf``, ``darn`` and ``muprop`` then learn at about 1/28 of the learning rate.
NVIL normalises its own signal (its ``normalize`` option) and reads, as its baseline's input,
the layer's input (``context``).

Temperature: fixed at ``tau0`` (the paper: 1) for every estimator with one, learned from it by
REBAR and RELAX, except where annealing is the method: slope-annealed ST (``annealed``, Jang et
al.'s "Annealed ST" row) raises its slope :math:`\alpha = 1/\tau` from ``1/tau0`` as Chung et al.
do, :math:`\alpha = \min(\alpha_{\max}, \alpha_0 + r\,\mathrm{epoch})` (``slope_max``,
``slope_rate``: 5 and 0.04 per epoch), at every layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gumbel_softmax import estimators, sample_categorical
from gumbel_softmax.graph import stochastic_node

from .config import SBNConfig
from .experiments import EXPERIMENTS
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

__all__ = [
    "HALF",
    "SBN",
    "SBNResult",
    "VarianceNormalizer",
    "build_estimators",
    "build_model",
    "load_splits",
    "main",
    "nll_bound",
    "sbn_objective",
    "split_halves",
]

HALF = 392  # 14 rows of 28 pixels
_RESUMABLE_KEYS = frozenset(
    {"epochs", "max_steps", "progress", "figures", "run_dir", "data_dir", "download"}
)
# Only the final evaluation (and the periodic validation) reads these: other values re-run
# the final evaluation of a finished run alone.
_FINAL_FIELDS = frozenset(EXPERIMENTS["sbn"].final_fields)


def split_halves(images: Tensor) -> tuple[Tensor, Tensor]:
    """``(n, 784)`` row-major images -> (upper 14 rows, lower 14 rows), ``(n, 392)`` each."""
    return images[..., :HALF], images[..., HALF:]


class SBN(nn.Module):
    r"""A stochastic network ``392 -> L stochastic layers -> 392`` with linear conditionals.

    Args:
        latent: ``"bernoulli"`` (N sigmoid units a layer) or ``"categorical"`` (N softmax
            variables of K classes a layer).
        n_latent: N; n_classes: K (2 for Bernoulli); layers: L >= 1.

    Shapes: ``layer_logits(l, h)``: ``h (*s, *batch, in_l)`` -> logits ``(*s, *batch, N, K)``
    (``in_0 = 392``, then ``units``); ``code(z)``: a sample ``(..., N, K)`` -> ``(..., units)``;
    ``nll(h, y)``: :math:`-\log p(y \mid h_L)` ``(*s, *batch)``.

    Raises:
        ValueError: an unknown ``latent``, a size below 1 (K below 2), Bernoulli with K != 2.
    """

    def __init__(
        self,
        *,
        latent: str = "bernoulli",
        n_latent: int = 200,
        n_classes: int = 2,
        layers: int = 2,
        in_features: int = HALF,
        out_features: int = HALF,
    ) -> None:
        super().__init__()
        if latent not in ("bernoulli", "categorical"):
            raise ValueError(f"latent must be 'bernoulli' or 'categorical', got {latent!r}")
        for name, v, low in (
            ("n_latent", n_latent, 1),
            ("n_classes", n_classes, 2),
            ("layers", layers, 1),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
        if latent == "bernoulli" and n_classes != 2:
            raise ValueError(f"a bernoulli layer has n_classes=2, got n_classes={n_classes}")
        self.latent, self.n_latent, self.n_classes = latent, n_latent, n_classes
        self.units = n_latent * (n_classes if latent == "categorical" else 1)
        sizes = [in_features] + [self.units] * layers
        self.stochastic = nn.ModuleList(nn.Linear(a, self.units) for a in sizes[:-1])
        self.output = nn.Linear(self.units, out_features)

    @property
    def layers(self) -> int:
        return len(self.stochastic)

    def in_features(self, layer: int) -> int:
        linear = self.stochastic[layer]
        assert isinstance(linear, nn.Linear)
        return linear.in_features

    def layer_logits(self, layer: int, h: Tensor) -> Tensor:
        out = self.stochastic[layer](h)
        if self.latent == "bernoulli":
            return torch.stack([out, torch.zeros_like(out)], -1)  # (ℓ, 0): class 0 = unit on
        return out.unflatten(-1, (self.n_latent, self.n_classes))

    def sample(self, logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        r"""An exact one-hot draw of a layer from its logits ``(..., N, K)``. Bernoulli layers
        compare one uniform per unit with :math:`\sigma(\ell)` (half the random numbers of
        Gumbel-max over two classes: the m = 1000 evaluation is most of a run's time)."""
        if self.latent == "bernoulli":
            p = torch.sigmoid(logits[..., 0] - logits[..., 1])
            on = (torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device) < p).to(
                p.dtype
            )
            return torch.stack([on, 1 - on], -1)
        return sample_categorical(logits, one_hot=True, generator=generator)

    def code(self, z: Tensor) -> Tensor:
        return z[..., 0] if self.latent == "bernoulli" else z.flatten(-2)

    def nll(self, h: Tensor, y: Tensor) -> Tensor:
        logits = self.output(h)
        return F.binary_cross_entropy_with_logits(
            logits, y.expand_as(logits), reduction="none"
        ).sum(-1)


class VarianceNormalizer(nn.Module):
    r"""A running variance :math:`v` of the learning signal and the scale
    :math:`s = 1/\max(1, \sqrt v)` (Mnih & Gregor 2014, arXiv:1402.0030, section 3.3):
    :math:`v \leftarrow \alpha v + (1 - \alpha)\,\widehat{\mathrm{Var}}[\text{batch}]`. Buffers, so
    a checkpoint resumes it; updated by :meth:`update` in training mode only."""

    variance: Tensor

    def __init__(self, momentum: float = 0.8) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("variance", torch.zeros((), dtype=torch.float64))

    @property
    def scale(self) -> float:
        return 1.0 / max(1.0, math.sqrt(float(self.variance)))

    @torch.no_grad()
    def update(self, signal: Tensor) -> None:
        if self.training and signal.numel() > 1:
            a = self.momentum
            self.variance.mul_(a).add_((1 - a) * signal.detach().double().var())


def sbn_objective(
    model: SBN,
    nodes: nn.ModuleList,
    x: Tensor,
    y: Tensor,
    *,
    generator: torch.Generator,
    scale: float = 1.0,
) -> Tensor:
    r"""The per-example training cost :math:`-\log p(y \mid h)` ``(B,)``, with one sample of
    :math:`h \sim p(h \mid x)` drawn layer by layer by ``nodes[l]`` (one estimator per layer);
    its gradient is the estimators' estimate of :math:`\nabla\,\mathbb E[-\log p(y \mid h)]`,
    the logits of every layer scaled by ``scale`` (variance normalisation, 1 = off)."""

    def node(layer: int, h: Tensor) -> Tensor:
        est = nodes[layer]
        assert isinstance(est, estimators.Estimator)
        logits = model.layer_logits(layer, h)
        if scale != 1.0:
            logits = estimators.scale_gradient(logits, scale)
        return stochastic_node(
            est,
            logits,
            downstream(layer),
            generator=generator,
            context=h if est.takes_context else None,
        )

    def downstream(layer: int) -> Callable[[Tensor], Tensor]:
        def cost(z: Tensor) -> Tensor:
            h = model.code(z)
            return model.nll(h, y) if layer + 1 == model.layers else node(layer + 1, h)

        return cost

    return node(0, x)


@torch.no_grad()
def nll_bound(
    model: SBN,
    x: Tensor,
    y: Tensor,
    *,
    m: int,
    chunk: int = 100,
    generator: torch.Generator | None = None,
) -> Tensor:
    r""":math:`-\mathcal L_m = -\log \frac1m \sum_{i=1}^m p(y \mid h^{(i)})`, :math:`h^{(i)}` exact
    one-hot draws of every layer, per image: ``x, y (B, 392)`` -> ``(B,)``; chunks of ``chunk``
    samples combined by a running log-sum-exp."""
    if m < 1 or chunk < 1:
        raise ValueError(f"m and chunk must be >= 1, got m={m}, chunk={chunk}")
    first = model.layer_logits(0, x)  # the same for every sample
    acc = torch.full(x.shape[:1], -math.inf, dtype=first.dtype, device=x.device)
    done = 0
    while done < m:
        c = min(chunk, m - done)
        z = model.sample(first.expand(c, *first.shape), generator=generator)
        for layer in range(1, model.layers):
            z = model.sample(model.layer_logits(layer, model.code(z)), generator=generator)
        log_p = -model.nll(model.code(z), y)  # (c, B)
        acc = torch.logaddexp(acc, torch.logsumexp(log_p, 0))
        done += c
    return -(acc - math.log(m))


def build_model(config: SBNConfig) -> SBN:
    """The model of ``config``, initialised from ``config.seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        return SBN(
            latent=config.latent,
            n_latent=config.n_latent,
            n_classes=config.n_classes,
            layers=config.layers,
        )


def build_estimators(config: SBNConfig) -> nn.ModuleList:
    """One estimator per layer, built from the registry by its declared capabilities: the
    temperature ``tau0`` for those with one (kept fixed but for ``annealed`` ones, which
    :meth:`SBNConfig.schedule` drives; REBAR and RELAX learn from it), the
    layer's input size as NVIL's context. Learned parts are initialised from ``config.seed``."""
    cls = estimators.estimator_class(config.estimator)
    options: dict[str, Any] = {}
    if cls.temperature_kind is not None:
        options["temperature"] = config.tau0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init", "estimator"))
        return nn.ModuleList(
            estimators.build(
                config.estimator,
                event_shape=(config.n_latent, config.n_classes),
                context_features=HALF if layer == 0 else config.units,
                **options,
            )
            for layer in range(config.layers)
        )


@dataclass(frozen=True)
class SBNResult:
    """The final NLL of a run (nats per image, m = ``eval_samples``) and where its record is."""

    step: int
    valid: dict[str, float]
    test: dict[str, float]
    run_dir: Path
    figures: list[Path]


def _images(a: Any, binarized: bool, seed: int, name: str, limit: int = 0) -> Tensor:
    x = torch.as_tensor(np.asarray(a, dtype=np.float32)).reshape(len(a), -1)
    if limit and limit < x.shape[0]:
        # A random subset, a function of the seed: the test split is sorted by digit class, so
        # its first images are all zeros.
        g = torch.Generator().manual_seed(derive_seed(seed, "subset", name))
        x = x[torch.randperm(x.shape[0], generator=g)[:limit].sort().values]
    if not binarized:  # grey-scale sets: one fixed binarization, a function of the seed
        g = torch.Generator().manual_seed(derive_seed(seed, "binarize", name))
        x = torch.bernoulli(x, generator=g)
    return x


def main(config: SBNConfig, *, splits: Any = None) -> SBNResult:
    """Train (or resume) the run ``config`` describes and return its final NLL.

    Raises:
        ConfigError: an invalid config, a run directory that is a file or holds another run, a
            dataset that is not where the config points.
        RunError: the device is not available, an optional package is missing, a corrupt data
            file.
        CheckpointError: every checkpoint of the run directory is corrupt.
        OSError: a file of the run record cannot be written (the error names it).
    """
    config.validate()
    run = RunDirectory(config.run_dir)
    run.check_config(
        config.to_dict(), resumable=_RESUMABLE_KEYS | _FINAL_FIELDS, defaults=SBNConfig().to_dict()
    )
    device = resolve_device(config.device)
    require_extras(progress=config.progress, figures=config.figures)
    from . import figures as figures_module

    model = build_model(config).to(device)
    nodes = build_estimators(config).to(device)
    normalizer = VarianceNormalizer().to(device)
    if splits is None:
        splits = load_data(config)
    train_x = _images(splits.train, splits.binarized, config.seed, "train").to(device)
    steps_per_epoch, batch = minibatches(train_x, config.batch_size, config.seed)
    valid = _images(splits.valid, splits.binarized, config.seed, "valid", config.eval_images)
    test = _images(splits.test, splits.binarized, config.seed, "test", config.test_images)
    valid, test = valid.to(device), test.to(device)
    from .experiment import build_optimizer  # the VAE's: SGD with momentum or Adam, fused

    optimizer = build_optimizer(config, [*model.parameters(), *nodes.parameters()])  # type: ignore[arg-type]
    sampler = torch.Generator(device=device).manual_seed(derive_seed(config.seed, "samples"))

    def step(images: Tensor) -> StepOutput:
        x, y = split_halves(images)
        scale = normalizer.scale if config.normalize else 1.0
        cost = sbn_objective(model, nodes, x, y, generator=sampler, scale=scale)
        normalizer.update(cost)
        return StepOutput(cost.mean(), {"loss": float(cost.detach().mean()), "scale": scale})

    def nll(data: Tensor, m: int, split: str, step: int, progress: Progress | None = None) -> float:
        g = torch.Generator(device=device).manual_seed(
            derive_seed(config.seed, "eval", split, step, m)
        )
        was = model.training
        model.eval()
        total = 0.0
        try:
            for start in range(0, data.shape[0], config.eval_batch_size):
                x, y = split_halves(data[start : start + config.eval_batch_size])
                total += float(
                    nll_bound(model, x, y, m=m, chunk=config.eval_chunk, generator=g).sum()
                )
                if progress is not None:
                    progress.update(1)
        finally:
            model.train(was)
        return total / data.shape[0]

    def validate(step: int) -> dict[str, float]:
        m = config.eval_samples_during
        return {"nll": nll(valid, m, "valid", step), "m": m}

    def final(step: int, progress: Progress) -> dict[str, Any]:
        progress.total = sum(-(-len(d) // config.eval_batch_size) for d in (valid, test))
        m = config.eval_samples
        return {
            name: {"nll": nll(data, m, name, step, progress), "n_images": data.shape[0]}
            for name, data in (("valid", valid), ("test", test))
        }

    result = train(
        run,
        Training(
            modules={"model": model, "estimator": nodes, "normalizer": normalizer},
            optimizer=optimizer,
            generator=sampler,
            batch=batch,
            step=step,
            evaluate=validate,
            final=final,
            final_key={"m": config.eval_samples},
            final_fields=_FINAL_FIELDS,
            estimator=tuple(nodes),  # type: ignore[arg-type]  # the first one's tau is logged
            # set only where it moves: a learned temperature (REBAR, RELAX) has no setter
            schedule=config.schedule(steps_per_epoch) if nodes[0].annealed else None,
        ),
        Cadence.of(config, steps_per_epoch),
        config=config.to_dict(),
        seed=config.seed,
        progress=config.progress,
        session={"dataset": splits.name, "steps_per_epoch": steps_per_epoch},
    )
    figures: list[Path] = []
    if config.figures:
        figures = figures_module.draw_sbn(
            model, read_metrics(run.metrics), test, run.figures, seed=config.seed
        )
    return SBNResult(
        step=result.step,
        valid=result.final["valid"],
        test=result.final["test"],
        run_dir=run.path,
        figures=figures,
    )
