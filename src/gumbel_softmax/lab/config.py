"""Typed experiment configuration: a dataclass, from TOML or a dict; an unknown key is an error.

Every field is documented in :data:`HELP`, which the CLI's ``--help`` prints verbatim, so the
options are explained in exactly one place.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, TypeVar

from gumbel_softmax.schedules import Constant, ExponentialAnneal, Schedule, SlopeAnneal

__all__ = [
    "GAN_HELP",
    "HELP",
    "MARGINAL",
    "SBN_HELP",
    "SEMISUP_HELP",
    "ConfigError",
    "GANConfig",
    "SBNConfig",
    "SemisupConfig",
    "VAEConfig",
    "describe_temperature",
    "estimator_for",
    "load_toml",
]


class ConfigError(ValueError):
    """A bad configuration value or key; the message names the key and the value."""


HELP: dict[str, str] = {
    "latent": "latent type: 'categorical' (N variables of K classes) or 'bernoulli' (N bits)",
    "n_latent": "number of latent variables N (with latent=bernoulli and no value given: 200)",
    "n_classes": "classes per categorical variable K (with latent=bernoulli and no value given: 2)",
    "hidden": "hidden-layer sizes of the encoder MLP, comma-separated (the decoder mirrors them; "
    "the paper's 512,256)",
    "estimator": "gradient estimator name from gumbel_softmax.estimators.available()",
    "normalize": "variance normalisation: divide the gradient reaching the encoder's logits by "
    "max(1, running std of the quantity normalize_by names) (the paper's choice for sf, darn "
    "and muprop)",
    "normalize_by": "what normalize divides by the running std of: 'cost' (the reconstruction "
    "cost f) or 'signal' (the estimator's own learning signal f - b, NVIL's definition; needs "
    "an estimator that declares reports_signal). The same for sf and sf-ema; "
    "where a baseline leaves a signal far narrower than f (darn's Taylor baseline), 'cost' "
    "shrinks the encoder's steps by that ratio",
    "prior": "'uniform' categorical prior, or 'learned' factorised categorical prior",
    "dataset": "dataset name: binarized-mnist-subset (shipped, offline), binarized-mnist, "
    "mnist, fashion-mnist (grey-scale sets are dynamically binarized each batch)",
    "data_dir": "directory holding the datasets (default: the loader's cache directory)",
    "download": "download a missing dataset (needs the internet)",
    "epochs": "number of passes over the training split",
    "max_steps": "stop after this many optimizer steps in total (0 = no limit); a later run with "
    "a larger value resumes",
    "batch_size": "training minibatch size",
    "optimizer": "'adam' or 'sgd' (SGD with momentum, as in the paper)",
    "lr": "learning rate",
    "momentum": "SGD momentum (ignored by adam)",
    "fused_optimizer": "use torch's fused optimizer kernel (one pass over all parameters; "
    "falls back to torch's default implementation on a device without one)",
    "lr_decay": "multiply the learning rate by this factor every lr_decay_every steps (1 = off)",
    "lr_decay_every": "steps between learning-rate decays",
    "temperature": "temperature mode of estimators whose temperature follows a schedule (gs, "
    "st-gs, st-annealed, gst, gumbel-rao, reinmax): 'constant' (tau0), 'anneal' "
    "(tau=max(tau_min, tau0*exp(-anneal_rate*t)) updated every anneal_every steps) or 'learned' "
    "(learned, starting at tau0: gs, st-gs). Plain st keeps tau0 throughout, rebar and relax "
    "learn theirs from tau0, estimators without a temperature ignore it",
    "tau0": "initial (or constant) temperature",
    "tau_min": "floor of the annealed temperature",
    "anneal_rate": "decay rate r per step of the annealed temperature",
    "anneal_every": "update interval N (steps) of the annealed temperature",
    "seed": "seed of the initial weights, the data order and every sample",
    "eval_every": "evaluate on the validation split every this many steps (0 = once per epoch)",
    "eval_samples": "m, samples of the importance-weighted bound in the final evaluation "
    "(the paper uses 1000)",
    "eval_samples_during": "m used for the periodic validation curves",
    "eval_images": "validation images for the curves and the final validation bound (0 = all)",
    "test_images": "test images for the final test bounds (0 = all)",
    "eval_batch_size": "images per evaluation batch",
    "eval_chunk": "importance samples per evaluation chunk (bounds the memory)",
    "checkpoint_every": "write the checkpoint every this many steps (and at the end)",
    "log_every": "write a training-metrics row every this many steps",
    "figures": "draw the figures at the end of the run",
    "progress": "show a progress bar",
    "device": "torch device to train on: 'cpu', 'cuda', 'cuda:1', ... (results are reproducible "
    "per device, not across devices)",
    "run_dir": "directory of the run record; running again with the same run_dir resumes",
}


_C = TypeVar("_C", bound="_Config")


class _Config:
    """What every experiment's config dataclass shares: built from a mapping (every key a field,
    every value of its type, then :meth:`validate`), copied with changes, written as a dict.
    A subclass fills in the defaults a choice implies in :meth:`_implied`."""

    @classmethod
    def _implied(cls, data: dict[str, Any]) -> dict[str, Any]:
        return data

    @classmethod
    def from_dict(cls: type[_C], data: dict[str, Any]) -> _C:
        """Build from a mapping; every key must be a field and every value of the field's type."""
        config: _C = _from_dict(cls, cls._implied(data))
        return config.validate()

    def replace(self: _C, **changes: Any) -> _C:
        """A copy with ``changes`` applied (checked like :meth:`from_dict`)."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def validate(self: _C) -> _C:
        raise NotImplementedError


@dataclass
class VAEConfig(_Config):
    """All options of a VAE run; see :data:`HELP` for each field.

    Raises:
        ConfigError: from :meth:`validate` (a value out of range, an unknown choice) and from
            :meth:`from_dict` (an unknown key, a value of the wrong type).
    """

    latent: str = "categorical"
    n_latent: int = 20
    n_classes: int = 10
    hidden: str = "512,256"
    estimator: str = "st-gs"
    normalize: bool = False
    normalize_by: str = "cost"
    prior: str = "uniform"
    dataset: str = "binarized-mnist-subset"
    data_dir: str = ""
    download: bool = False
    epochs: int = 10
    max_steps: int = 0
    batch_size: int = 100
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    fused_optimizer: bool = True
    lr_decay: float = 1.0
    lr_decay_every: int = 1000
    temperature: str = "anneal"
    tau0: float = 1.0
    tau_min: float = 0.5
    anneal_rate: float = 3e-5
    anneal_every: int = 1000
    seed: int = 0
    eval_every: int = 0
    eval_samples: int = 1000
    eval_samples_during: int = 10
    eval_images: int = 0
    test_images: int = 0
    eval_batch_size: int = 100
    eval_chunk: int = 100
    checkpoint_every: int = 500
    log_every: int = 10
    figures: bool = True
    progress: bool = True
    device: str = "cpu"
    run_dir: str = "runs/vae"

    # ------------------------------------------------------------------ construction
    @classmethod
    def _implied(cls, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("latent") == "bernoulli":
            # The paper's Bernoulli VAE: 200 bits, unless the caller says otherwise.
            return {"n_latent": 200, "n_classes": 2, **data}
        return data

    # ------------------------------------------------------------------ validation
    def validate(self) -> VAEConfig:
        """Check every value; return ``self`` or raise :class:`ConfigError` naming the key."""
        _check_shared(
            self,
            counts=("lr_decay_every", "anneal_every"),
            positive=("tau_min",),
        )
        _choice("prior", self.prior, ("uniform", "learned"))
        _choice("temperature", self.temperature, ("constant", "anneal", "learned"))
        _choice("normalize_by", self.normalize_by, ("cost", "signal"))
        _anneal_rate(self)
        if not (0 < self.lr_decay <= 1):
            raise ConfigError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")
        self.hidden_sizes()
        self._check_estimator()
        return self

    def hidden_sizes(self) -> tuple[int, ...]:
        """``hidden`` as a tuple of ints, e.g. ``"512,256"`` -> ``(512, 256)``.

        Raises:
            ConfigError: not a comma-separated list of positive ints.
        """
        try:
            sizes = tuple(int(part) for part in self.hidden.split(","))
        except ValueError:
            sizes = ()
        if not sizes or min(sizes) < 1:
            raise ConfigError(
                f"hidden must be comma-separated positive ints such as '512,256', got {self.hidden!r}"
            )
        return sizes

    def schedule(self) -> Schedule:
        """The temperature schedule of ``temperature``/``tau0``/... (a pure function of the
        step): the paper's annealing, or the constant ``tau0``."""
        if self.temperature == "anneal":
            return ExponentialAnneal(
                tau0=self.tau0, rate=self.anneal_rate, tau_min=self.tau_min, every=self.anneal_every
            )
        return Constant(self.tau0)

    def _check_estimator(self) -> None:
        """The estimator's declared capabilities against the rest of the config, so that a run
        that would fail later (a binary-only estimator on K > 2, more joint states than an
        enumerating estimator's ``max_states``, a schedule below the estimator's smallest
        temperature) fails here, before any work."""
        cls = estimator_for(self.estimator, n_classes=self.n_classes, n_latent=self.n_latent)
        if self.normalize_by == "signal":
            if not self.normalize:
                raise ConfigError("normalize_by='signal' needs normalize=true, got normalize=false")
            if not cls.reports_signal:
                raise ConfigError(
                    f"normalize_by='signal' needs an estimator that reports its learning signal "
                    f"(declares reports_signal); {self.estimator!r} does not (use one of "
                    + estimators_declaring(reports_signal=True)
                    + ", or normalize_by='cost')"
                )
        kind = cls.temperature_kind
        if self.temperature == "learned" and not (cls.learnable_temperature or kind == "learned"):
            raise ConfigError(
                f"temperature='learned' needs an estimator that can learn its temperature; "
                f"{self.estimator!r} cannot (use 'gs' or 'st-gs', or another mode)"
            )
        if kind is None:
            return
        lowest = self.schedule().lowest if kind == "scheduled" else self.tau0
        try:
            cls.check_temperature(self.tau0)
            cls.check_temperature(lowest)
        except ValueError as err:
            raise ConfigError(
                f"estimator {self.estimator!r} cannot run at the temperatures of this config "
                f"(temperature={self.temperature!r}, tau0={self.tau0}, tau_min={self.tau_min}, "
                f"lowest {lowest:g}): {err}"
            ) from None


def _positive_finite(config: Any, *keys: str) -> None:
    for key in keys:
        v = getattr(config, key)
        if not (math.isfinite(v) and v > 0):
            raise ConfigError(f"{key} must be positive and finite, got {v!r}")


def _nonnegative(key: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{key} must be >= 0 and finite, got {value!r}")


def _anneal_rate(config: Any) -> None:
    _nonnegative("anneal_rate", config.anneal_rate)


def _device_and_run_dir(config: Any) -> None:
    """Every experiment's ``device`` (a torch device) and ``run_dir`` (a non-empty path)."""
    try:
        import torch

        torch.device(config.device)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"device must be a torch device such as 'cpu' or 'cuda', got {config.device!r}"
        ) from None
    if not config.run_dir:
        raise ConfigError("run_dir must be a non-empty path")


def _check_shared(config: Any, *, counts: tuple[str, ...], positive: tuple[str, ...]) -> None:
    """The checks every lab experiment's config shares (the fields of both :class:`VAEConfig`
    and :class:`SBNConfig`), plus its own ``counts`` (ints >= 1) and ``positive`` floats."""
    from .data import DATASETS

    c = config
    _choice("latent", c.latent, ("categorical", "bernoulli"))
    _choice("optimizer", c.optimizer, ("adam", "sgd"))
    _choice("dataset", c.dataset, DATASETS)
    if c.latent == "bernoulli" and c.n_classes != 2:
        raise ConfigError(
            f"n_classes must be 2 for latent='bernoulli', got {c.n_classes} (pass --n-classes 2)"
        )
    shared_counts = ("n_latent", "epochs", "batch_size", "eval_samples", "eval_samples_during")
    for key in (*shared_counts, "eval_batch_size", "eval_chunk", "checkpoint_every", "log_every"):
        _at_least(key, getattr(c, key), 1)
    for key in counts:
        _at_least(key, getattr(c, key), 1)
    _at_least("n_classes", c.n_classes, 2)
    for key in ("max_steps", "eval_every", "eval_images", "test_images", "seed"):
        _at_least(key, getattr(c, key), 0)
    _positive_finite(c, "lr", "tau0", *positive)
    if not (0 <= c.momentum < 1):
        raise ConfigError(f"momentum must be in [0, 1), got {c.momentum!r}")
    _device_and_run_dir(c)


def estimators_declaring(**capabilities: bool) -> str:
    """The registered estimators whose declared capabilities have these values, for an error
    message that says which to use (read from the registry, so it never goes stale)."""
    from gumbel_softmax import estimators

    return ", ".join(
        name
        for name in estimators.available()
        if all(getattr(estimators.estimator_class(name), k) == v for k, v in capabilities.items())
    )


def estimator_for(estimator: str, *, n_classes: int, n_latent: int) -> Any:
    """The registered class of ``estimator`` if it can draw ``n_latent`` variables of
    ``n_classes`` (a binary-only estimator needs K = 2, an enumerating one at most its declared
    ``max_states`` joint states); else a ConfigError that names the key and says why."""
    from gumbel_softmax import estimators

    try:
        cls = estimators.estimator_class(estimator)
    except ValueError:
        raise ConfigError(
            f"estimator must be one of {estimators.available()}, got {estimator!r}"
        ) from None
    if cls.binary_only and n_classes != 2:
        raise ConfigError(
            f"estimator {estimator!r} handles binary variables only; use "
            f"latent='bernoulli' (n_classes=2), got n_classes={n_classes}"
        )
    if cls.max_states is not None and n_classes**n_latent > cls.max_states:
        raise ConfigError(
            f"estimator {estimator!r} enumerates the joint states of the latents: "
            f"n_classes**n_latent = {n_classes}**{n_latent} exceeds its "
            f"max_states = {cls.max_states}; use fewer latents or another estimator"
        )
    return cls


def describe_temperature(estimator: str, settings: Mapping[str, Any]) -> str:
    """What a run's temperature was, in words, by the estimator's declared ``temperature_kind``:
    plain ST keeps ``tau0`` whatever the schedule settings say, and estimators without a
    temperature ignore them. ``settings`` holds the config keys ``temperature``, ``tau0``,
    ``tau_min``, ``anneal_rate`` and optionally ``anneal_every`` (a :meth:`VAEConfig.to_dict` or a benchmark row's settings)."""
    from gumbel_softmax import estimators

    kind = estimators.estimator_class(estimator).temperature_kind
    s = settings
    if kind is None:
        return "no temperature"
    if kind == "fixed":
        return f"fixed τ={s['tau0']:g}"
    if kind == "learned" or s["temperature"] == "learned":
        return f"learned from τ0={s['tau0']:g}"
    if s["temperature"] == "constant" or s["tau0"] == s["tau_min"]:
        return f"constant τ={s['tau0']:g}"
    every = f" every {s['anneal_every']} steps" if "anneal_every" in s else ""
    return f"annealed from {s['tau0']:g} (r={s['anneal_rate']:g}{every}, floor {s['tau_min']:g})"


def _from_dict(cls: Any, data: dict[str, Any]) -> Any:
    """``cls(**data)``: every key a field of the dataclass ``cls``, every value of its type."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
    return cls(**{key: _coerce(key, known[key].type, value) for key, value in data.items()})


def _choice(key: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{key} must be one of {list(options)}, got {value!r}")


def _at_least(key: str, value: int, low: int) -> None:
    if value < low:
        raise ConfigError(f"{key} must be >= {low}, got {value!r}")


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _coerce(key: str, type_name: Any, value: Any) -> Any:
    want = _TYPES[type_name if isinstance(type_name, str) else type_name.__name__]
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is int and isinstance(value, bool):
        raise ConfigError(f"{key} must be an int, got {value!r}")
    if not isinstance(value, want):
        article = "an" if want is int else "a"
        raise ConfigError(f"{key} must be {article} {want.__name__}, got {value!r}")
    return value


def load_toml(path: str | Path, *, table: str = "vae") -> dict[str, Any]:
    """Read a TOML file into a dict (``tomllib`` on Python 3.11+, ``tomli`` before): flat keys,
    or one ``[table]`` (``[vae]``, ``[sbn]``) holding them.

    Raises:
        ConfigError: the file is missing, a directory, unreadable or not valid TOML.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(p)!r} is a directory, not a TOML file") from None
    except OSError as err:
        raise ConfigError(f"config file {str(p)!r} cannot be read: {err.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {err}") from None
    # Accept both a flat file and one with a [vae] (or [sbn]) table.
    if set(data) == {table} and isinstance(data[table], dict):
        data = data[table]
    return data


# ------------------------------------------------------------------------------------- SBN
SBN_HELP: dict[str, str] = {
    "latent": "stochastic units: 'bernoulli' (n_latent sigmoid units per layer) or "
    "'categorical' (n_latent softmax variables of n_classes per layer)",
    "n_latent": "variables per stochastic layer (default: 200 for bernoulli, 20 for categorical)",
    "n_classes": "classes per categorical variable (default: 2 for bernoulli, 10 for categorical)",
    "layers": "number of stochastic layers (the paper: 2)",
    "estimator": "gradient estimator at every layer, from gumbel_softmax.estimators.available()",
    "normalize": "variance normalisation: divide each layer's learning signal by "
    "max(1, running std of the cost) (the paper's choice for sf, darn and muprop)",
    "dataset": "dataset name: binarized-mnist-subset (shipped, offline), binarized-mnist (the "
    "paper's fixed binarization), mnist, fashion-mnist (grey-scale sets get one fixed "
    "binarization per split, a function of the seed)",
    "data_dir": HELP["data_dir"],
    "download": HELP["download"],
    "epochs": HELP["epochs"],
    "max_steps": HELP["max_steps"],
    "batch_size": HELP["batch_size"],
    "optimizer": "'sgd' (SGD with momentum, as in the paper) or 'adam'",
    "lr": "learning rate (the paper chose it per estimator from 3e-5, 1e-5, 3e-4, 1e-4, 3e-3, "
    "1e-3 on validation)",
    "momentum": HELP["momentum"],
    "fused_optimizer": HELP["fused_optimizer"],
    "tau0": "the temperature, fixed throughout (the paper: 1, no annealing) except for "
    "st-annealed, whose slope 1/tau starts at 1/tau0; rebar and relax learn theirs from it; "
    "estimators without a temperature ignore it",
    "slope_rate": "st-annealed only (the estimators declaring `annealed`): the slope 1/tau "
    "added per epoch, rising at every step (Chung et al.: 0.04)",
    "slope_max": "st-annealed only: the largest slope 1/tau (Chung et al.: 5, reached at epoch "
    "100 with slope_rate 0.04)",
    "seed": HELP["seed"],
    "eval_every": HELP["eval_every"],
    "eval_samples": "m, samples of the importance-sampled NLL in the final evaluation (the "
    "paper: 1000)",
    "eval_samples_during": "m of the periodic validation NLL (the learning curves)",
    "eval_images": "validation images for the curves and the final validation NLL, a random "
    "subset fixed by the seed (0 = all)",
    "test_images": "test images for the final test NLL, a random subset fixed by the seed (the "
    "test split is sorted by digit; 0 = all)",
    "eval_batch_size": HELP["eval_batch_size"],
    "eval_chunk": HELP["eval_chunk"],
    "checkpoint_every": HELP["checkpoint_every"],
    "log_every": HELP["log_every"],
    "figures": "draw the figures (learning curves, completions) at the end of the run",
    "progress": HELP["progress"],
    "device": HELP["device"],
    "run_dir": HELP["run_dir"],
}


@dataclass
class SBNConfig(_Config):
    """All options of an SBN structured-prediction run; see :data:`SBN_HELP` for each field.

    Raises:
        ConfigError: from :meth:`validate` and :meth:`from_dict`, naming the key.
    """

    latent: str = "bernoulli"
    n_latent: int = 200
    n_classes: int = 2
    layers: int = 2
    estimator: str = "st-gs"
    normalize: bool = False
    dataset: str = "binarized-mnist-subset"
    data_dir: str = ""
    download: bool = False
    epochs: int = 100
    max_steps: int = 0
    batch_size: int = 100
    optimizer: str = "sgd"
    lr: float = 3e-3
    momentum: float = 0.9
    fused_optimizer: bool = True
    tau0: float = 1.0
    slope_rate: float = 0.04
    slope_max: float = 5.0
    seed: int = 0
    eval_every: int = 0
    eval_samples: int = 1000
    eval_samples_during: int = 100
    eval_images: int = 0
    test_images: int = 0
    eval_batch_size: int = 100
    eval_chunk: int = 100
    checkpoint_every: int = 500
    log_every: int = 50
    figures: bool = True
    progress: bool = True
    device: str = "cpu"
    run_dir: str = "runs/sbn"

    @classmethod
    def _implied(cls, data: dict[str, Any]) -> dict[str, Any]:
        # latent='categorical' defaults to the paper's 20 variables of 10 classes
        if data.get("latent") == "categorical":
            return {"n_latent": 20, "n_classes": 10, **data}
        return data

    @property
    def units(self) -> int:
        """Width of a stochastic layer as the next layer reads it: N (Bernoulli) or N*K."""
        return self.n_latent * (self.n_classes if self.latent == "categorical" else 1)

    def validate(self) -> SBNConfig:
        """Check every value; return ``self`` or raise :class:`ConfigError` naming the key."""
        _check_shared(self, counts=("layers",), positive=())
        cls = estimator_for(self.estimator, n_classes=self.n_classes, n_latent=self.n_latent)
        if cls.multi_sample_bound:
            raise ConfigError(
                f"estimator {self.estimator!r} optimises a multi-sample bound of one stochastic "
                "layer (its f returns per-sample log-weights); the SBN's layers are nested "
                "nodes whose costs are single-sample, so it does not apply here (use 'rloo' for "
                "a multi-sample score-function estimator)"
            )
        if cls.temperature_kind is not None:
            try:
                cls.check_temperature(self.tau0)
            except ValueError as err:
                raise ConfigError(
                    f"estimator {self.estimator!r} cannot run at tau0={self.tau0}: {err}"
                ) from None
        if cls.annealed:
            _nonnegative("slope_rate", self.slope_rate)
            _positive_finite(self, "slope_max")
            if self.slope_max < 1 / self.tau0:
                raise ConfigError(
                    f"slope_max must be >= the first slope 1/tau0 = {1 / self.tau0:g}, got "
                    f"{self.slope_max!r}"
                )
            try:
                cls.check_temperature(self.schedule(1).lowest)
            except ValueError as err:
                raise ConfigError(
                    f"estimator {self.estimator!r} cannot run at slope_max={self.slope_max}: {err}"
                ) from None
        return self

    def schedule(self, steps_per_epoch: int) -> Schedule:
        r"""The temperature of every layer's estimator at each step: ``tau0`` throughout (the
        paper's SBN), except for an estimator declaring ``annealed`` (slope-annealed ST), whose
        slope :math:`1/\tau` follows Chung et al.'s
        :class:`~gumbel_softmax.schedules.SlopeAnneal` from ``1/tau0``."""
        if estimator_for(self.estimator, n_classes=self.n_classes, n_latent=self.n_latent).annealed:
            return SlopeAnneal(
                slope0=1 / self.tau0,
                rate=self.slope_rate,
                slope_max=self.slope_max,
                steps_per_epoch=steps_per_epoch,
            )
        return Constant(self.tau0)


# ------------------------------------------------------------------------------------- GAN
GAN_HELP: dict[str, str] = {
    "objective": "'gan' (the adversarial generator, its gradient from --estimator) or 'mle' "
    "(the maximum-likelihood baseline: the same generator trained by teacher forcing)",
    "estimator": "the generator's gradient estimator (objective='gan'), one that declares "
    "single_evaluation: gs, st-gs, st, gst, reinmax, gumbel-rao, decoupled-st-gs, sf, sf-ema, "
    "nvil, ...",
    "task": "'grammar' (arithmetic expressions over x and y, at most 15 tokens; training and "
    "held-out strings drawn from a PCFG with the seed) or 'oracle' (SeqGAN's synthetic oracle: "
    "sequences drawn from a random LSTM seeded by the seed; reports NLL_oracle and NLL_gen)",
    "oracle_vocab": "tokens of the synthetic oracle (task='oracle')",
    "oracle_hidden": "LSTM units of the synthetic oracle (task='oracle')",
    "oracle_length": "tokens of each oracle sequence (task='oracle')",
    "n_train": "training strings (drawn from the PCFG with the seed)",
    "n_held_out": "held-out strings (for the held-out NLL and the novelty reference)",
    "hidden": "LSTM units of the generator (and of the MLE baseline)",
    "embed": "size of the generator's input embedding of the (relaxed) one-hot token",
    "disc_hidden": "LSTM units of the discriminator",
    "epochs": "passes over the training strings",
    "max_steps": HELP["max_steps"],
    "batch_size": "training strings (and generated strings) per step",
    "lr": "Adam learning rate of the generator (and of the estimator's learned parts)",
    "lr_d": "Adam learning rate of the discriminator",
    "pretrain_steps": "steps of maximum-likelihood pre-training of the generator before the "
    "adversarial steps (objective='gan'; the discriminator waits)",
    "reward": "the learning signal of each token's score-function term (estimators that declare "
    "learning_signal, e.g. sf, sf-ema, nvil): 'sequence' (the cost of the whole sequence) or "
    "'rollout' (SeqGAN's per-token reward: the mean cost of --rollouts completions of the "
    "prefix through the token, drawn from the current generator)",
    "rollouts": "completions per prefix of the rollout reward (reward='rollout'; SeqGAN used 16)",
    "d_steps": "discriminator updates per generator update: d_steps - 1 discriminator-only "
    "updates on fresh fakes and real batches, then the simultaneous step of both players "
    "(1: only the simultaneous step)",
    "temperature": "temperature of estimators that follow a schedule: 'constant' (tau0), "
    "'anneal' (tau=max(tau_min, tau0*exp(-anneal_rate*t)), every anneal_every steps) or "
    "'inverse' (RelGAN: 1/tau rises from 1 to beta_max over beta_steps steps, by beta_kind); "
    "t counts adversarial steps. Plain st keeps tau0; estimators without one ignore it",
    "tau0": "initial (or constant) temperature",
    "tau_min": "floor of the annealed temperature",
    "anneal_rate": "decay rate r per step of the annealed temperature",
    "anneal_every": "update interval (steps) of the annealed temperature",
    "beta_max": "RelGAN's largest inverse temperature (temperature='inverse')",
    "beta_steps": "steps over which 1/tau rises to beta_max (temperature='inverse')",
    "beta_kind": "RelGAN's shape of the rise: 'exp', 'lin', 'log', 'quad' or 'sigmoid'",
    "sample_temperatures": "sampling temperatures of the evaluation's quality-diversity "
    "metrics, comma-separated (the generator's logits divided by each)",
    "eval_strings": "strings generated per evaluation (parse rate, unique, novelty)",
    "seed": "seed of the data, the initial weights, the data order and every sample",
    "eval_every": HELP["eval_every"],
    "checkpoint_every": HELP["checkpoint_every"],
    "log_every": HELP["log_every"],
    "figures": "draw the figures (losses, parse rate, temperature against steps) at the end",
    "progress": HELP["progress"],
    "device": HELP["device"],
    "run_dir": HELP["run_dir"],
}


@dataclass
class GANConfig(_Config):
    """All options of a sequence-GAN run (:mod:`gumbel_softmax.lab.gan`); see :data:`GAN_HELP`.

    Raises:
        ConfigError: from :meth:`validate` and :meth:`from_dict`, naming the key.
    """

    objective: str = "gan"
    estimator: str = "gs"
    task: str = "grammar"
    oracle_vocab: int = 16
    oracle_hidden: int = 32
    oracle_length: int = 16
    n_train: int = 10_000
    n_held_out: int = 1_000
    hidden: int = 64
    embed: int = 16
    disc_hidden: int = 64
    epochs: int = 20
    max_steps: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    lr_d: float = 1e-3
    pretrain_steps: int = 0
    reward: str = "sequence"
    rollouts: int = 4
    d_steps: int = 1
    temperature: str = "inverse"
    tau0: float = 1.0
    tau_min: float = 0.1
    anneal_rate: float = 1e-3
    anneal_every: int = 100
    beta_max: float = 100.0
    beta_steps: int = 3000
    beta_kind: str = "exp"
    sample_temperatures: str = "0.5,0.75,1,1.5"
    eval_strings: int = 1000
    seed: int = 0
    eval_every: int = 0
    checkpoint_every: int = 500
    log_every: int = 25
    figures: bool = True
    progress: bool = True
    device: str = "cpu"
    run_dir: str = "runs/gan"

    def temperatures(self) -> tuple[float, ...]:
        """``sample_temperatures`` as floats.

        Raises:
            ConfigError: not a comma-separated list of positive finite numbers.
        """
        try:
            values = tuple(float(v) for v in self.sample_temperatures.split(","))
        except ValueError:
            values = ()
        if not values or not all(math.isfinite(v) and v > 0 for v in values):
            raise ConfigError(
                "sample_temperatures must be comma-separated positive numbers such as "
                f"'0.5,1', got {self.sample_temperatures!r}"
            )
        return values

    def schedule(self) -> Schedule:
        """The temperature schedule of the adversarial steps (step 0 = the first of them)."""
        from gumbel_softmax.schedules import InverseTemperatureAnneal

        if self.temperature == "anneal":
            return ExponentialAnneal(
                tau0=self.tau0, rate=self.anneal_rate, tau_min=self.tau_min, every=self.anneal_every
            )
        if self.temperature == "inverse":
            return InverseTemperatureAnneal(
                beta_max=self.beta_max, steps=self.beta_steps, kind=self.beta_kind
            )
        return Constant(self.tau0)

    def validate(self) -> GANConfig:
        """Check every value; return ``self`` or raise :class:`ConfigError` naming the key."""
        _choice("objective", self.objective, ("gan", "mle"))
        _choice("task", self.task, ("grammar", "oracle"))
        _choice("temperature", self.temperature, ("constant", "anneal", "inverse"))
        _choice("beta_kind", self.beta_kind, ("exp", "lin", "log", "quad", "sigmoid"))
        _choice("reward", self.reward, ("sequence", "rollout"))
        for key in ("n_train", "n_held_out", "hidden", "embed", "disc_hidden", "epochs"):
            _at_least(key, getattr(self, key), 1)
        for key in ("oracle_hidden", "oracle_length"):
            _at_least(key, getattr(self, key), 1)
        _at_least("oracle_vocab", self.oracle_vocab, 2)
        for key in ("batch_size", "anneal_every", "beta_steps", "eval_strings"):
            _at_least(key, getattr(self, key), 1)
        for key in ("checkpoint_every", "log_every", "rollouts", "d_steps"):
            _at_least(key, getattr(self, key), 1)
        for key in ("max_steps", "pretrain_steps", "eval_every", "seed"):
            _at_least(key, getattr(self, key), 0)
        _positive_finite(self, "lr", "lr_d", "tau0", "tau_min")
        _anneal_rate(self)
        if not (math.isfinite(self.beta_max) and self.beta_max >= 1):
            raise ConfigError(f"beta_max must be >= 1 and finite, got {self.beta_max!r}")
        self.temperatures()
        _device_and_run_dir(self)
        self._check_estimator()
        return self

    def _check_estimator(self) -> None:
        """The estimator must draw one token at a time with feedback at a cost linear in the
        length (declared ``single_evaluation``) and run at the schedule's temperatures."""
        from .grammar import VOCAB

        vocab = VOCAB if self.task == "grammar" else self.oracle_vocab
        cls = estimator_for(self.estimator, n_classes=vocab, n_latent=1)
        if not cls.single_evaluation:
            raise ConfigError(
                f"estimator {self.estimator!r} evaluates f at several points per call (it does "
                "not declare single_evaluation); a sequence of T nested tokens would cost "
                "M**T generator passes; use one of "
                + estimators_declaring(single_evaluation=True, binary_only=False)
            )
        if self.reward == "rollout" and not cls.learning_signal:
            raise ConfigError(
                f"reward='rollout' needs an estimator whose gradient is a score-function term "
                f"weighted by the cost's value (declared learning_signal); {self.estimator!r} "
                "does not declare it; use one of "
                + estimators_declaring(single_evaluation=True, learning_signal=True)
            )
        kind = cls.temperature_kind
        if kind is None or self.objective == "mle":
            return
        lowest = self.schedule().lowest if kind == "scheduled" else self.tau0
        try:
            cls.check_temperature(self.schedule()(0) if kind == "scheduled" else self.tau0)
            cls.check_temperature(lowest)
        except ValueError as err:
            raise ConfigError(
                f"estimator {self.estimator!r} cannot run at the temperatures of this config "
                f"(temperature={self.temperature!r}, lowest {lowest:g}): {err}"
            ) from None


# ------------------------------------------------------------------------- semi-supervised M2
#: The spelling of exact marginalisation of the label (not a registered estimator: no sampling).
MARGINAL = "marginal"

SEMISUP_HELP: dict[str, str] = {
    "estimator": f"how the label of an unlabelled image is handled: {MARGINAL!r} (exact "
    "marginalisation, one decoder pass per class) or a registered estimator of one categorical "
    "variable of 10 classes (one decoder pass per sample)",
    "n_labelled": "labelled training images, the same number per class, drawn from the seed "
    "(the paper: 100); every training image is also used unlabelled",
    "alpha": "weight of the classification loss: the labelled minibatch's mean -log q(y|x) "
    "enters the per-image loss times alpha * n_train / n_labelled (Kingma et al.'s scaling; the "
    "paper's grid 0.1, 0.2, 0.3, 0.8, 1.0)",
    "labelled_batch_size": "labelled images per step (drawn in an order fixed by the seed)",
    "z_dim": "size of the Gaussian latent z",
    "channels": "channels of the three convolutions of q(y|x) and of q(z|x,y), comma-separated; "
    "p(x|y,z) uses them in reverse in its four transposed convolutions",
    "dataset": "dataset name: binarized-mnist-subset (shipped, offline, already binarized, with "
    "derived labels), mnist (grey-scale, the paper's dynamic binarization per minibatch), "
    "fashion-mnist, binarized-mnist (needs its derived labels)",
    "data_dir": HELP["data_dir"],
    "download": HELP["download"],
    "epochs": "passes over the unlabelled training images",
    "max_steps": HELP["max_steps"],
    "batch_size": "unlabelled images per step",
    "optimizer": HELP["optimizer"],
    "lr": "learning rate",
    "momentum": HELP["momentum"],
    "fused_optimizer": HELP["fused_optimizer"],
    "tau0": "initial temperature of estimators with one (the paper: 1)",
    "tau_min": "floor of the annealed temperature (the paper: 0.5)",
    "anneal_rate": "decay rate r per step of tau = max(tau_min, tau0*exp(-r t)) (the paper: 3e-5)",
    "anneal_every": "steps between temperature updates (the paper: 2000)",
    "seed": "seed of the labelled subset, the initial weights, the data order, the "
    "binarizations and every sample",
    "eval_every": HELP["eval_every"],
    "eval_samples": "z samples per (image, class) of the test and validation ELBO in the final "
    "evaluation (the label is summed over exactly)",
    "eval_samples_during": "z samples of the periodic validation ELBO",
    "eval_images": "validation images for the curves and the final validation metrics, a "
    "random subset fixed by the seed (0 = all)",
    "test_images": "test images of the final test metrics, a random subset fixed by the seed "
    "(0 = all)",
    "eval_batch_size": HELP["eval_batch_size"],
    "checkpoint_every": HELP["checkpoint_every"],
    "log_every": HELP["log_every"],
    "figures": "draw the figures (accuracy and ELBO curves, class-conditional samples)",
    "progress": HELP["progress"],
    "device": HELP["device"],
    "run_dir": HELP["run_dir"],
}


@dataclass
class SemisupConfig(_Config):
    """All options of a semi-supervised M2 run; see :data:`SEMISUP_HELP` for each field.

    Raises:
        ConfigError: from :meth:`validate` and :meth:`from_dict`, naming the key.
    """

    estimator: str = "gs"
    n_labelled: int = 100
    alpha: float = 0.1
    labelled_batch_size: int = 20
    z_dim: int = 50
    channels: str = "32,64,128"
    dataset: str = "binarized-mnist-subset"
    data_dir: str = ""
    download: bool = False
    epochs: int = 10
    max_steps: int = 0
    batch_size: int = 100
    optimizer: str = "adam"
    lr: float = 3e-4
    momentum: float = 0.9
    fused_optimizer: bool = True
    tau0: float = 1.0
    tau_min: float = 0.5
    anneal_rate: float = 3e-5
    anneal_every: int = 2000
    seed: int = 0
    eval_every: int = 0
    eval_samples: int = 1
    eval_samples_during: int = 1
    eval_images: int = 1000
    test_images: int = 0
    eval_batch_size: int = 100
    checkpoint_every: int = 500
    log_every: int = 50
    figures: bool = True
    progress: bool = True
    device: str = "cpu"
    run_dir: str = "runs/semisup"

    #: Classes of the label: the ten digits (or clothes) of the data sets.
    n_classes: ClassVar[int] = 10

    def channel_sizes(self) -> tuple[int, int, int]:
        """``channels`` as three ints, e.g. ``"32,64,128"`` -> ``(32, 64, 128)``.

        Raises:
            ConfigError: not three comma-separated positive ints.
        """
        try:
            sizes = tuple(int(part) for part in self.channels.split(","))
        except ValueError:
            sizes = ()
        if len(sizes) != 3 or min(sizes) < 1:
            raise ConfigError(
                f"channels must be three comma-separated positive ints such as '32,64,128', "
                f"got {self.channels!r}"
            )
        return sizes  # type: ignore[return-value]

    def schedule(self) -> Schedule:
        """The paper's temperature, :math:`\\tau_t = \\max(\\tau_{\\min}, \\tau_0 e^{-r t})`
        updated every ``anneal_every`` steps (a pure function of the step)."""
        return ExponentialAnneal(
            tau0=self.tau0, rate=self.anneal_rate, tau_min=self.tau_min, every=self.anneal_every
        )

    def validate(self) -> SemisupConfig:
        """Check every value; return ``self`` or raise :class:`ConfigError` naming the key."""
        # The shared checks, with the label as the one categorical latent of n_classes classes.
        view = SimpleNamespace(
            **self.to_dict(), latent="categorical", n_latent=1, n_classes=self.n_classes
        )
        view.eval_chunk = 1  # no importance-sample chunks here
        _check_shared(
            view,
            counts=("n_labelled", "labelled_batch_size", "z_dim", "anneal_every"),
            positive=("tau_min", "alpha"),
        )
        _anneal_rate(self)
        if self.n_labelled % self.n_classes:
            raise ConfigError(
                f"n_labelled must be a multiple of the {self.n_classes} classes (the same "
                f"number per class), got {self.n_labelled}"
            )
        if self.labelled_batch_size > self.n_labelled:
            raise ConfigError(
                f"labelled_batch_size={self.labelled_batch_size} exceeds "
                f"n_labelled={self.n_labelled}"
            )
        self.channel_sizes()
        if self.estimator == MARGINAL:
            return self
        cls = estimator_for(self.estimator, n_classes=self.n_classes, n_latent=1)
        if cls.multi_sample_bound:
            raise ConfigError(
                f"estimator {self.estimator!r} optimises a multi-sample bound; the unlabelled "
                "term needs E_q(y|x)[-L(x, y)] (use 'rloo' for a multi-sample score-function "
                f"estimator, or {MARGINAL!r})"
            )
        kind = cls.temperature_kind
        if kind is not None:
            lowest = self.schedule().lowest if kind == "scheduled" else self.tau0
            try:
                cls.check_temperature(self.tau0)
                cls.check_temperature(lowest)
            except ValueError as err:
                raise ConfigError(
                    f"estimator {self.estimator!r} cannot run at the temperatures of this "
                    f"config (tau0={self.tau0}, tau_min={self.tau_min}, lowest {lowest:g}): {err}"
                ) from None
        return self
