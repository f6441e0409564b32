r"""Semi-supervised classification with few labels (Jang, Gu & Poole 2017, arXiv:1611.01144,
section 4.3 and Table 2): Kingma et al.'s M2 model (arXiv:1406.5298) on MNIST with 100 labels,
the label of an unlabelled image summed over exactly or sampled by a registered estimator, on the
lab's runner.

The model. A label :math:`y \in \{1..K\}` (K = 10), a Gaussian latent :math:`z \in \mathbb R^d`
and binary pixels :math:`x`:

.. math:: p(y) = 1/K, \quad p(z) = \mathcal N(0, I), \quad
          p(x \mid y, z) = \prod_i \mathrm{Bernoulli}(x_i; \sigma(g(y, z))_i),

with the inference networks :math:`q(y \mid x) = \mathrm{Cat}(\mathrm{softmax}(c(x)))` and
:math:`q(z \mid x, y) = \mathcal N(\mu(x, y), \mathrm{diag}\,\sigma^2(x, y))`. Networks (the
paper's kinds and depths: a 3-layer convolutional q(y|x) and q(z|x,y), a 4-layer
transposed-convolutional p(x|y,z), ReLU; its layer sizes are in its Figure 7, an image we did
not read, so the sizes are ours, ``channels = c1,c2,c3``, default ``32,64,128``):
:math:`c` and the trunk of :math:`q(z \mid x, y)` are each three convolutions
``1 -> c1 (4x4, stride 2) -> c2 (4x4, stride 2) -> c3 (3x3, stride 2)`` (28 -> 14 -> 7 -> 4)
followed by a linear read-out (of the trunk's features, plus :math:`y` for :math:`q(z\mid x,y)`);
:math:`g` is four transposed convolutions
``(d + K) -> c3 (4x4, 1 -> 4) -> c2 (3x3, stride 2, -> 7) -> c1 (4x4, stride 2, -> 14) -> 1
(4x4, stride 2, -> 28)`` of :math:`(y, z)` as a 1x1 input. The trunk of :math:`q(z\mid x,y)`
reads only :math:`x`, so a batch is run through it once whatever the number of classes.

The bounds (nats per image; Kingma et al. eqs. 6-7). For a labelled pair

.. math:: \mathcal L(x, y) = \mathbb E_{q(z\mid x,y)}[\log p(x \mid y, z)]
          - \mathrm{KL}(q(z \mid x, y)\,\|\,p(z)) + \log p(y) \;\le\; \log p(x, y),

with the Gaussian KL in closed form and one reparameterised sample of :math:`z` in training;
for an unlabelled image

.. math:: \mathcal U(x) = \mathbb E_{q(y\mid x)}[\mathcal L(x, y)] + \mathcal H(q(y \mid x))
          \;\le\; \log p(x).

Training minimises, per step, with an unlabelled minibatch :math:`U` (``batch_size``) and a
labelled one :math:`L` (``labelled_batch_size``),

.. math:: J = \frac{1}{|U|}\sum_{x \in U} -\mathcal U(x)
          + \frac{1}{|L|}\sum_{(x,y) \in L} \Big[-\mathcal L(x, y)
          - \alpha\,\frac{N}{N_l}\,\log q(y \mid x)\Big],

:math:`N` the training images, :math:`N_l` the labelled ones: the classification loss is
weighted by :math:`\alpha N / N_l` against bounds of one image each (Kingma et al.'s scaling,
their code's ``alpha * n_total / n_labelled`` with :math:`\alpha = 0.1`; Jang et al.'s eq. 11
writes :math:`\alpha` without the data sizes and does not say how their sums were normalised).
With 50,000 images and 100 labels, :math:`\alpha = 0.1` weights the mean :math:`-\log q(y\mid x)`
by 50.

The label of an unlabelled image. ``estimator="marginal"`` sums over it exactly,
:math:`\mathbb E_{q(y\mid x)}[\mathcal L] = \sum_y q(y\mid x)\,\mathcal L(x, y)` (K decoder
passes); any other name is a registered estimator of one categorical variable of K classes
(:func:`gumbel_softmax.estimators.build` with ``event_shape=(1, K)``), which estimates the
gradient of :math:`\mathbb E_{q(y\mid x)}[-\mathcal L(x, y)]` from samples (one decoder pass per
sample); the entropy is analytic. A relaxed sample (Gumbel-Softmax) is fed to
:math:`q(z\mid x, y)` and :math:`g` as it is: both read :math:`y` as a vector. The temperature
follows :math:`\tau = \max(0.5, e^{-3\cdot10^{-5}t})` updated every 2000 steps (the paper's;
``tau0``, ``tau_min``, ``anneal_rate``, ``anneal_every``) for estimators whose temperature is
``"scheduled"``; fixed ones keep ``tau0``, learned ones start there.

Data. ``n_labelled`` training images (the same number per class) are drawn from the seed and
their indices written to ``run.json``; every training image is also an unlabelled one (the
labels of the rest are not read). Grey-scale sets are binarized dynamically, each minibatch with
a generator seeded by ``(seed, "binarize", purpose, step)``, so a resumed run draws the same
pixels; the validation and test images get one fixed binarization each. The shipped
``binarized-mnist-subset`` (the offline default) is already binary, so there the binarization is
the identity.

Metrics: the accuracy of :math:`\arg\max_y q(y \mid x)` and the mean :math:`\mathcal U(x)`
(``elbo``, nats, higher is better; the label summed over exactly, ``eval_samples`` draws of
:math:`z` per image and class), and the mean :math:`\mathcal L(x, y)` at the true label
(``elbo_labelled``), on the validation split during training and on validation and test at the
end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gumbel_softmax import estimators

from .config import MARGINAL, ConfigError, SemisupConfig
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
    "M2",
    "SemisupResult",
    "build_estimator",
    "build_model",
    "class_samples",
    "draw_labelled",
    "load_splits",
    "main",
    "neg_labelled_bound",
    "semisup_curves",
    "semisup_loss",
    "unlabelled_loss",
]

IMAGE_DIM = 784
_RESUMABLE_KEYS = frozenset(
    {"epochs", "max_steps", "progress", "figures", "run_dir", "data_dir", "download"}
)
# Only the final evaluation (and the periodic validation) reads these: other values re-run
# the final evaluation of a finished run alone.
_FINAL_FIELDS = frozenset(EXPERIMENTS["semisup"].final_fields)
_LOG_2PI = math.log(2 * math.pi)


def _trunk(channels: tuple[int, int, int]) -> nn.Sequential:
    c1, c2, c3 = channels
    return nn.Sequential(
        nn.Unflatten(-1, (1, 28, 28)),
        nn.Conv2d(1, c1, 4, stride=2, padding=1),  # 28 -> 14
        nn.ReLU(),
        nn.Conv2d(c1, c2, 4, stride=2, padding=1),  # 14 -> 7
        nn.ReLU(),
        nn.Conv2d(c2, c3, 3, stride=2, padding=1),  # 7 -> 4
        nn.ReLU(),
        nn.Flatten(),
    )


class M2(nn.Module):
    r"""Kingma et al.'s M2 with convolutional networks (see the module docstring).

    Args:
        n_classes: K >= 2; z_dim: d >= 1; channels: the three convolution widths.

    Shapes: ``classify(x)``: ``x (B, 784)`` -> logits of :math:`q(y\mid x)` ``(B, K)``;
    ``features(x)``: the trunk of :math:`q(z\mid x,y)` ``(B, F)``; ``posterior(h, y)``:
    ``h (*s, B, F)``, ``y (*s, B, K)`` -> ``(mu, log_var)`` ``(*s, B, d)`` each;
    ``decode(y, z)``: ``(*s, B, K)``, ``(*s, B, d)`` -> pixel logits ``(*s, B, 784)``.

    Raises:
        ValueError: a size below its minimum.
    """

    def __init__(
        self,
        *,
        n_classes: int = 10,
        z_dim: int = 50,
        channels: tuple[int, int, int] = (32, 64, 128),
    ) -> None:
        super().__init__()
        for name, v, low in (("n_classes", n_classes, 2), ("z_dim", z_dim, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
        if len(channels) != 3 or min(channels) < 1:
            raise ValueError(f"channels must be three positive ints, got {channels!r}")
        self.n_classes, self.z_dim = n_classes, z_dim
        c1, c2, c3 = channels
        features = c3 * 4 * 4
        self.classifier = nn.Sequential(_trunk(channels), nn.Linear(features, n_classes))
        self.encoder = _trunk(channels)
        self.posterior_head = nn.Linear(features + n_classes, 2 * z_dim)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(z_dim + n_classes, c3, 4),  # 1 -> 4
            nn.ReLU(),
            nn.ConvTranspose2d(c3, c2, 3, stride=2, padding=1),  # 4 -> 7
            nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1),  # 7 -> 14
            nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1),  # 14 -> 28
            nn.Flatten(),
        )

    def classify(self, x: Tensor) -> Tensor:
        out: Tensor = self.classifier(x)
        return out

    def features(self, x: Tensor) -> Tensor:
        out: Tensor = self.encoder(x)
        return out

    def posterior(self, h: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        h = h.expand(*y.shape[:-1], h.shape[-1])
        mu, log_var = self.posterior_head(torch.cat([h, y.to(h.dtype)], -1)).chunk(2, -1)
        return mu, log_var

    def decode(self, y: Tensor, z: Tensor) -> Tensor:
        lead = z.shape[:-1]
        inputs = torch.cat([y.to(z.dtype), z], -1).reshape(-1, y.shape[-1] + z.shape[-1], 1, 1)
        out: Tensor = self.decoder(inputs)
        return out.reshape(*lead, IMAGE_DIM)


def neg_labelled_bound(
    model: M2, h: Tensor, x: Tensor, y: Tensor, *, generator: torch.Generator | None
) -> Tensor:
    r""":math:`-\mathcal L(x, y)` with one reparameterised draw of :math:`z`, per pair:
    ``h`` the trunk's features ``(B, F)``, ``x (B, 784)`` binary, ``y (*s, B, K)`` one-hot or
    relaxed -> ``(*s, B)``.

    .. math:: -\mathcal L = -\log p(x\mid y, z) + \mathrm{KL}(\mathcal N(\mu,\sigma^2)\,\|\,
              \mathcal N(0, I)) + \log K,\quad
              \mathrm{KL} = \tfrac12\textstyle\sum_j (\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2).
    """
    mu, log_var = model.posterior(h, y)
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    z = mu + torch.exp(0.5 * log_var) * eps
    logits = model.decode(y, z)
    nll = F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
    kl = 0.5 * (mu.square() + log_var.exp() - 1 - log_var).sum(-1)
    return nll + kl + math.log(model.n_classes)


def _one_hots(k: int, batch: int, like: Tensor) -> Tensor:
    """Every class as a one-hot label for every image: ``(K, B, K)``."""
    eye = torch.eye(k, dtype=like.dtype, device=like.device)
    return eye[:, None, :].expand(k, batch, k)


def unlabelled_loss(
    model: M2,
    estimator: estimators.Estimator | None,
    x: Tensor,
    *,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    r"""``(surrogate, value)`` of :math:`-\mathcal U(x) = \mathbb E_{q(y\mid x)}[-\mathcal L(x,y)]
    - \mathcal H(q(y\mid x))` for ``x (B, 784)``, each ``(B,)``.

    ``estimator=None`` marginalises: :math:`\sum_y q(y\mid x)\,(-\mathcal L(x, y))`, one
    decoder pass per class, so ``surrogate`` is :math:`-\mathcal U` itself (its z-sample one).
    An estimator gets ``logits (B, 1, K)`` and ``f(z) = -L(x, z[..., 0, :])``; its surrogate
    carries the gradient and ``value`` its objective estimate. The entropy reads the logits
    through ``scale_gradient(logits, result.logits_scale)`` (NVIL's variance normalisation
    scales the classifier's whole learning signal); NVIL's baseline reads the image.
    """
    logits = model.classify(x)
    h = model.features(x)
    if estimator is None:
        neg = neg_labelled_bound(
            model, h, x, _one_hots(model.n_classes, x.shape[0], h), generator=generator
        )
        log_q = torch.log_softmax(logits, -1)
        neg_u = (log_q.exp() * (neg.T + log_q)).sum(-1)  # sum_y q (-L + log q) = E[-L] - H
        return neg_u, neg_u.detach()

    def f(z: Tensor) -> Tensor:
        return neg_labelled_bound(model, h, x, z[..., 0, :], generator=generator)

    result = estimator(
        logits[:, None, :],
        f,
        generator=generator,
        context=x if estimator.takes_context else None,
    )
    scaled = estimators.scale_gradient(logits, result.logits_scale)
    log_q = torch.log_softmax(scaled, -1)
    neg_entropy = (log_q.exp() * log_q).sum(-1)
    return result.surrogate + neg_entropy, result.objective().detach() + neg_entropy.detach()


def semisup_loss(
    model: M2,
    estimator: estimators.Estimator | None,
    unlabelled: Tensor,
    labelled: Tensor,
    labels: Tensor,
    *,
    weight: float,
    generator: torch.Generator,
) -> StepOutput:
    r"""One step's objective :math:`J` (module docstring) on an unlabelled minibatch
    ``(B, 784)`` and a labelled one ``(B_l, 784)`` with ``labels (B_l,)``; ``weight`` is
    :math:`\alpha N / N_l`. The stats are the loss's value and its three terms (nats)."""
    surrogate, neg_u = unlabelled_loss(model, estimator, unlabelled, generator=generator)
    hots = F.one_hot(labels, model.n_classes).to(labelled.dtype)
    neg_l = neg_labelled_bound(model, model.features(labelled), labelled, hots, generator=generator)
    ce = F.cross_entropy(model.classify(labelled), labels)
    loss = surrogate.mean() + neg_l.mean() + weight * ce
    stats = {
        "loss": float(neg_u.mean() + neg_l.detach().mean() + weight * ce.detach()),
        "neg_unlabelled_bound": float(neg_u.mean()),
        "neg_labelled_bound": float(neg_l.detach().mean()),
        "classification": float(ce.detach()),
    }
    return StepOutput(loss, stats)


def build_model(config: SemisupConfig) -> M2:
    """The model of ``config``, initialised from ``config.seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        return M2(n_classes=config.n_classes, z_dim=config.z_dim, channels=config.channel_sizes())


def build_estimator(config: SemisupConfig) -> estimators.Estimator | None:
    """The registry's estimator of the label (``None`` for ``marginal``), from its declared
    capabilities: one categorical variable of K classes (``event_shape=(1, K)``), the image as
    context (NVIL), the temperature ``schedule(0)`` when ``"scheduled"`` (then set at every step
    by the runner), else ``tau0``. Learned parts are initialised from ``config.seed``."""
    if config.estimator == MARGINAL:
        return None
    cls = estimators.estimator_class(config.estimator)
    options: dict[str, Any] = {}
    kind = cls.temperature_kind
    if kind is not None:
        options["temperature"] = config.schedule()(0) if kind == "scheduled" else config.tau0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init", "estimator"))
        return estimators.build(
            config.estimator,
            event_shape=(1, config.n_classes),
            context_features=IMAGE_DIM,
            **options,
        )


def draw_labelled(labels: Tensor, per_class: int, *, n_classes: int, seed: int) -> Tensor:
    """Indices of ``per_class`` images of each class, drawn without replacement by a generator
    seeded from ``(seed, "labelled")``; sorted. ``labels (n,)`` int64.

    Raises:
        ConfigError: a class has fewer than ``per_class`` images.
    """
    g = torch.Generator().manual_seed(derive_seed(seed, "labelled"))
    chosen = []
    for c in range(n_classes):
        (where,) = torch.nonzero(labels == c, as_tuple=True)
        if where.numel() < per_class:
            raise ConfigError(
                f"n_labelled asks for {per_class} images of class {c}; the training split has "
                f"{where.numel()}"
            )
        chosen.append(where[torch.randperm(where.numel(), generator=g)[:per_class]])
    return torch.cat(chosen).sort().values


@dataclass(frozen=True)
class SemisupResult:
    """The final metrics of a run (accuracy, ELBO in nats) and where its record is."""

    step: int
    valid: dict[str, float]
    test: dict[str, float]
    labelled: list[int]
    run_dir: Path
    figures: list[Path]


def _eval_split(
    images: Any, labels: Any, binarized: bool, seed: int, name: str, limit: int
) -> tuple[Tensor, Tensor]:
    """A split's images (one fixed binarization for grey-scale sets) and labels; a random
    subset fixed by the seed when ``limit`` (the test split is sorted by class)."""
    x = torch.as_tensor(images, dtype=torch.float32).reshape(len(images), -1)
    y = torch.as_tensor(labels, dtype=torch.int64)
    if limit and limit < x.shape[0]:
        g = torch.Generator().manual_seed(derive_seed(seed, "subset", name))
        keep = torch.randperm(x.shape[0], generator=g)[:limit].sort().values
        x, y = x[keep], y[keep]
    if not binarized:
        g = torch.Generator().manual_seed(derive_seed(seed, "binarize", name))
        x = torch.bernoulli(x, generator=g)
    return x, y


def _binarize(x: Tensor, binarized: bool, seed: int, purpose: str, step: int) -> Tensor:
    """Dynamic binarization of a minibatch from ``(seed, purpose, step)`` (identity on 0/1)."""
    if binarized:
        return x
    g = torch.Generator(device=x.device).manual_seed(derive_seed(seed, "binarize", purpose, step))
    return torch.bernoulli(x, generator=g)


@torch.no_grad()
def _evaluate(
    model: M2,
    x: Tensor,
    y: Tensor,
    *,
    samples: int,
    batch_size: int,
    generator: torch.Generator,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Accuracy of argmax q(y|x), mean U(x) (label summed exactly, ``samples`` z draws per
    image and class averaged inside L) and mean L(x, y_true), over ``x (n, 784)``."""
    was = model.training
    model.eval()
    correct, elbo, labelled = 0, 0.0, 0.0
    try:
        for start in range(0, x.shape[0], batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            logits = model.classify(xb)
            h = model.features(xb)
            hots = _one_hots(model.n_classes, xb.shape[0], h)
            neg = torch.stack(
                [
                    neg_labelled_bound(model, h, xb, hots, generator=generator)
                    for _ in range(samples)
                ]
            ).mean(0)  # (K, B)
            log_q = torch.log_softmax(logits, -1)
            elbo += float(-(log_q.exp() * (neg.T + log_q)).sum())
            labelled += float(-neg.T.gather(1, yb[:, None]).sum())
            correct += int((logits.argmax(-1) == yb).sum())
            if progress is not None:
                progress.update(1)
    finally:
        model.train(was)
    n = x.shape[0]
    # error = 1 - accuracy, so that a sweep selects on it by its lowest value, as on the others
    return {
        "accuracy": correct / n,
        "error": 1 - correct / n,
        "elbo": elbo / n,
        "elbo_labelled": labelled / n,
    }


def main(config: SemisupConfig, *, splits: Any = None) -> SemisupResult:
    """Train (or resume) the run ``config`` describes and return its final metrics.

    Raises:
        ConfigError: an invalid config, a run directory that is a file or holds another run, a
            dataset that is not where the config points or has no labels.
        RunError: the device is not available, an optional package is missing, a corrupt data
            file.
        CheckpointError: every checkpoint of the run directory is corrupt.
        OSError: a file of the run record cannot be written (the error names it).
    """
    config.validate()
    run = RunDirectory(config.run_dir)
    run.check_config(
        config.to_dict(),
        resumable=_RESUMABLE_KEYS | _FINAL_FIELDS,
        defaults=SemisupConfig().to_dict(),
    )
    device = resolve_device(config.device)
    require_extras(progress=config.progress, figures=config.figures)
    if splits is None:
        splits = load_data(config)
    if splits.labels_train is None or splits.labels_valid is None or splits.labels_test is None:
        raise ConfigError(
            f"dataset {config.dataset!r} has no labels here; use mnist, fashion-mnist or "
            "binarized-mnist-subset"
        )
    model = build_model(config).to(device)
    estimator = build_estimator(config)
    if estimator is not None:
        estimator = estimator.to(device)
    train_x = torch.as_tensor(splits.train, dtype=torch.float32).reshape(len(splits.train), -1)
    train_y = torch.as_tensor(splits.labels_train, dtype=torch.int64)
    labelled = draw_labelled(
        train_y, config.n_labelled // config.n_classes, n_classes=config.n_classes, seed=config.seed
    )
    labelled_x, labelled_y = train_x[labelled].to(device), train_y[labelled].to(device)
    train_x = train_x.to(device)
    steps_per_epoch, unlabelled_batch = minibatches(train_x, config.batch_size, config.seed)
    _, labelled_batch = minibatches(
        torch.arange(config.n_labelled, device=device),
        config.labelled_batch_size,
        derive_seed(config.seed, "labelled order"),
    )
    valid = _eval_split(
        splits.valid,
        splits.labels_valid,
        splits.binarized,
        config.seed,
        "valid",
        config.eval_images,
    )
    test = _eval_split(
        splits.test, splits.labels_test, splits.binarized, config.seed, "test", config.test_images
    )
    valid = (valid[0].to(device), valid[1].to(device))
    test = (test[0].to(device), test[1].to(device))
    from .experiment import build_optimizer  # the VAE's: SGD with momentum or Adam, fused

    params = [*model.parameters(), *(estimator.parameters() if estimator is not None else [])]
    optimizer = build_optimizer(config, params)  # type: ignore[arg-type]
    sampler = torch.Generator(device=device).manual_seed(derive_seed(config.seed, "samples"))
    weight = config.alpha * train_x.shape[0] / config.n_labelled

    def batch(step: int) -> tuple[Tensor, Tensor, Tensor]:
        xu = _binarize(unlabelled_batch(step), splits.binarized, config.seed, "unlabelled", step)
        index = labelled_batch(step)
        xl = _binarize(labelled_x[index], splits.binarized, config.seed, "labelled", step)
        return xu, xl, labelled_y[index]

    def step(data: tuple[Tensor, Tensor, Tensor]) -> StepOutput:
        return semisup_loss(model, estimator, *data, weight=weight, generator=sampler)

    def metrics(data: tuple[Tensor, Tensor], m: int, split: str, step: int, bar: Any = None) -> Any:
        g = torch.Generator(device=device).manual_seed(
            derive_seed(config.seed, "eval", split, step, m)
        )
        out = _evaluate(
            model, *data, samples=m, batch_size=config.eval_batch_size, generator=g, progress=bar
        )
        return {**out, "n_images": data[0].shape[0]}

    def validate(step: int) -> dict[str, float]:
        m = config.eval_samples_during
        return {**metrics(valid, m, "valid", step), "m": m}

    def final(step: int, progress: Progress) -> dict[str, Any]:
        progress.total = sum(-(-len(d[0]) // config.eval_batch_size) for d in (valid, test))
        m = config.eval_samples
        return {
            name: metrics(data, m, name, step, progress)
            for name, data in (("valid", valid), ("test", test))
        }

    schedule = None
    if estimator is not None and estimator.temperature_kind == "scheduled":
        schedule = config.schedule()
    result = train(
        run,
        Training(
            modules={"model": model, **({"estimator": estimator} if estimator is not None else {})},
            optimizer=optimizer,
            generator=sampler,
            batch=batch,
            step=step,
            evaluate=validate,
            final=final,
            final_key={"m": config.eval_samples, "test_images": config.test_images},
            final_fields=_FINAL_FIELDS,
            estimator=estimator,
            schedule=schedule,
        ),
        Cadence.of(config, steps_per_epoch),
        config=config.to_dict(),
        seed=config.seed,
        progress=config.progress,
        session={
            "dataset": splits.name,
            "steps_per_epoch": steps_per_epoch,
            "labelled_indices": labelled.tolist(),
        },
    )
    figures: list[Path] = []
    if config.figures:
        run.figures.mkdir(parents=True, exist_ok=True)
        figures = [
            semisup_curves(read_metrics(run.metrics), run.figures / "curves.png"),
            class_samples(model, run.figures / "class_samples.png", seed=config.seed),
        ]
    return SemisupResult(
        step=result.step,
        valid=result.final["valid"],
        test=result.final["test"],
        labelled=labelled.tolist(),
        run_dir=run.path,
        figures=figures,
    )


# ------------------------------------------------------------------------------- figures
def semisup_curves(metrics: list[dict[str, Any]], path: Path) -> Path:
    """Validation accuracy (left) and validation ELBO (right, nats) against the step."""
    from .figures import _finish, _plt

    plt = _plt()
    evals = [r for r in metrics if r.get("kind") == "eval"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    steps = [r["step"] for r in evals]
    left.plot(steps, [100 * r["accuracy"] for r in evals], "o-", ms=3)
    left.set_ylabel("validation accuracy of argmax q(y|x) (%)")
    right.plot(steps, [r["elbo"] for r in evals], "o-", ms=3)
    right.set_ylabel("validation ELBO U(x) (nats)")
    for ax in (left, right):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    return _finish(fig, path)


@torch.no_grad()
def class_samples(model: M2, path: Path, *, columns: int = 10, seed: int = 0) -> Path:
    """Pixel means of :math:`p(x \\mid y, z)`: row = class :math:`y`, column = one
    :math:`z \\sim \\mathcal N(0, I)` shared by every row."""
    from .figures import _finish, _grid, _plt

    was = model.training
    model.eval()
    try:
        p = next(model.parameters())
        g = torch.Generator(device=p.device).manual_seed(derive_seed(seed, "figure", "samples"))
        k = model.n_classes
        z = torch.randn(1, columns, model.z_dim, generator=g, device=p.device).expand(k, -1, -1)
        y = torch.eye(k, device=p.device)[:, None, :].expand(k, columns, k)
        means = torch.sigmoid(model.decode(y, z)).reshape(-1, IMAGE_DIM)
    finally:
        model.train(was)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(3.0, columns / 2), max(3.0, k / 2) + 0.4))
    ax.imshow(_grid(means, k, columns).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title("class-conditional samples (means of p(x|y,z))", fontsize=9)
    ax.set_yticks([28 * c + 14 for c in range(k)], [str(c) for c in range(k)])
    ax.set_xticks([28 * c + 14 for c in range(columns)], [str(c + 1) for c in range(columns)])
    ax.set_ylabel("class y")
    ax.set_xlabel("z drawn from the prior (one per column, shared by the rows)")
    return _finish(fig, Path(path))
