"""The experiment runner: a run directory and the one training loop every lab experiment uses.

An experiment (the discrete VAE, :mod:`.experiment`; SBN structured prediction, :mod:`.sbn`;
semi-supervised M2 and a sequence GAN next) builds its model(s), estimator, optimiser and data, and hands :func:`train` a
:class:`Training`: what to checkpoint, how to draw the batch of a step, one step's loss, the
periodic evaluation and the final one. The runner owns everything else, the same for every
experiment: the cadence of metrics rows, evaluations and checkpoints, resuming, the progress bar,
the temperature schedule that drives ``estimator.temperature``, the metrics file and the cache of
the final evaluation.

A run directory (:class:`RunDirectory`) holds::

    config.json        the experiment's config, written when the run starts
    run.json           provenance, one entry per session: time, argv, seed, git revision,
                       thread count, package versions (torch, numba, ...), the sampler backend
    metrics.jsonl      one JSON row per log / evaluation step
    tensorboard/       the same scalars as TensorBoard events
    figures/           what the experiment draws
    checkpoints/       checkpoint-<step>.pt: the last two, each verified when written
    .lock              held (``flock``) by the process training the run, so that a second
                       process on the same directory stops with an error instead of
                       interleaving its checkpoints and metrics with the first's
    final.json         the final evaluation, reused when a finished run is run again under the
                       same final key (the step, ``Training.final_key`` and the values of the
                       experiment's final-evaluation fields); under another key it is re-run

Exact resume. The checkpoint holds every module's state, the optimiser and learning-rate schedule,
the sampling generator, the running log window and the step; the temperature is a pure function
of the step (or a learned parameter in a module's state); anything else random must be recreated
by the experiment from a seed that is a pure function of ``(seed, purpose, step-or-epoch)``. Rows
are written at a fixed cadence, never where a session stops, and rows after the checkpoint are
dropped on resume, so a run killed at any moment and started again ends with the same metrics and
weights, bit for bit, as an uninterrupted run (same machine, thread count and sampler backend).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO, cast

import torch
from torch import Tensor, nn

from gumbel_softmax import backends
from gumbel_softmax.estimators import Estimator
from gumbel_softmax.schedules import Schedule

from . import records
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError

__all__ = [
    "BackendChangedWarning",
    "Cadence",
    "CheckpointFallbackWarning",
    "Progress",
    "RunDirectory",
    "RunError",
    "StepOutput",
    "TrainResult",
    "Training",
    "branch",
    "exit_with_parent",
    "load_data",
    "load_splits",
    "minibatches",
    "require_extras",
    "resolve_device",
    "sampler_backend",
    "train",
]

_KEEP_CHECKPOINTS = 2
# The optional packages of the `lab` extra and what needs each.
_EXTRAS = {"tensorboard": "the run record's TensorBoard events", "tqdm": "--progress"}


class RunError(RuntimeError):
    """A run cannot start or go on: a device that is not there, a missing optional package, an
    unreadable data set. The message names the option, package or path."""


class BackendChangedWarning(RuntimeWarning):
    """A resumed run samples with another backend than it started with (another random stream)."""


class CheckpointFallbackWarning(RuntimeWarning):
    """The newest checkpoint was unreadable and an older one is used."""


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, checked to exist here (its index within the devices present, and
    an empty tensor allocated on it).

    Raises:
        RunError: naming ``device`` and the reason (e.g. a torch build without CUDA).
    """
    device = torch.device(name)
    if device.type == "cuda" and torch.cuda.is_available():
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise RunError(f"device {name!r} is not available here: {count} CUDA device(s) found")
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError, NotImplementedError) as err:
        # torch asserts "Torch not compiled with CUDA enabled"; other backends raise
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunError(f"device {name!r} is not available here: {reason}") from None
    return device


def load_splits(config: Any) -> Any:
    """Load ``config.dataset`` through :func:`gumbel_softmax.lab.data.load_dataset` (from
    ``config.data_dir``, downloading if ``config.download``): the ``Splits`` of any experiment
    whose config has those three fields."""
    from .data import load_dataset  # imported here so the models run without the data module

    return load_dataset(config.dataset, data_dir=config.data_dir or None, download=config.download)


def load_data(config: Any) -> Any:
    """:func:`load_splits`, its failures explained: data not where the config points is a
    :class:`ConfigError`, a corrupt or undownloadable file a :class:`RunError` naming the data
    set (both messages name the file)."""
    from .data import DownloadError

    try:
        return load_splits(config)
    except FileNotFoundError as err:
        raise ConfigError(str(err)) from None
    except (ValueError, DownloadError) as err:
        raise RunError(f"dataset {config.dataset!r}: {err}") from None


def require_extras(*, progress: bool, figures: bool) -> None:
    """Import the optional packages this run needs now, before any work.

    Raises:
        RunError: naming each missing package and the ``lab`` extra that installs it.
    """
    needed = dict(_EXTRAS)
    if not progress:
        needed.pop("tqdm")
    if figures:
        needed["matplotlib"] = "--figures"
    missing = []
    for module, why in needed.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(f"{module} (for {why})")
    if missing:
        raise RunError(
            f"missing optional package(s): {', '.join(missing)}; install the lab extra: "
            "pip install 'gumbel-softmax[lab]'"
        )


def sampler_backend(device: torch.device) -> str:
    """The backend :func:`gumbel_softmax.gumbel_softmax` takes for float32 tensors on ``device``
    with ``backend=None`` (``GUMBEL_SOFTMAX_BACKEND`` included). Asking prepares the fused
    kernels: numba compiles them here at their first use on a machine (then caches them)."""
    kernels = backends.resolve_backend(None, torch.empty(1, device=device))
    return "reference" if kernels is None else kernels.name


# ---------------------------------------------------------------------------- worker processes
# How often a worker looks whether its parent is still alive (see exit_with_parent).
_PARENT_POLL_S = 0.5


def exit_with_parent() -> None:
    """Make this worker process stop when the process that started it ends: a pool initializer.

    A process pool's workers outlive a parent that is killed (``kill -9``, an out-of-memory
    kill, a closed terminal) and go on training their runs, so a sweep started again would find
    those runs busy (:meth:`RunDirectory.lock`) and two sweeps' worth of processes would share
    the cores. A daemon thread compares ``os.getppid()`` with the parent's pid every
    ``_PARENT_POLL_S`` seconds (a process whose parent ends is re-parented, on every POSIX
    system) and, once it differs, ends this process at once (``os._exit``, status 1): its run
    is then where a killed run is, resumable from its last checkpoint. The parent is the one
    multiprocessing names, so a parent already gone when this is called ends the process at
    the first poll too.
    """
    import multiprocessing
    import threading

    known = multiprocessing.parent_process()
    parent = known.pid if known is not None and known.pid is not None else os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


# --------------------------------------------------------------------------- the run directory
class RunDirectory:
    """The files of one run (see the module docstring for the layout).

    Raises:
        ConfigError: ``path`` is a file (or its parent is), or holds a run with another config.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        for p in (self.path, *self.path.parents):
            if p.exists() and not p.is_dir():
                raise ConfigError(
                    f"run_dir {str(self.path)!r}: {str(p)!r} is a file, not a directory"
                )
        self.config = self.path / "config.json"
        self.run = self.path / "run.json"
        self.metrics = self.path / "metrics.jsonl"
        self.final = self.path / "final.json"
        self.tensorboard = self.path / "tensorboard"
        self.figures = self.path / "figures"
        self.checkpoints = self.path / "checkpoints"

    # ---- config
    def stored_config(self) -> dict[str, Any] | None:
        """The config the run started with, or ``None`` for a new run directory."""
        try:
            stored: dict[str, Any] = json.loads(self.config.read_text())
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{self.config} is not valid JSON: {err}") from None
        return stored

    def check_config(
        self,
        config: Mapping[str, Any],
        *,
        resumable: frozenset[str],
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        """Refuse to continue a run whose stored config differs from ``config`` outside the
        ``resumable`` keys (a key the stored config lacks counts as its entry in ``defaults``).

        Raises:
            ConfigError: naming each differing key with both values.
        """
        stored = self.stored_config()
        if stored is None:
            return
        old = {**(defaults or {}), **stored}
        diff = sorted(k for k, v in config.items() if k not in resumable and old.get(k) != v)
        if diff:
            detail = ", ".join(f"{k}: {old.get(k)!r} -> {config[k]!r}" for k in diff)
            raise ConfigError(
                f"run_dir {str(self.path)!r} holds a run with a different config ({detail}); "
                "use a new run_dir, or the same options to resume"
            )

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory for this process while the block runs.

        An exclusive ``flock`` on ``.lock``: the operating system releases it when the process
        ends, however it ends, so a killed run leaves no stale lock. Two processes training one
        run (e.g. a sweep's worker left running after its parent was killed, and the sweep
        started again) would otherwise both resume from the same checkpoint and write the same
        files. Where ``fcntl`` does not exist (Windows) nothing is locked.

        Raises:
            RunError: another process holds the directory (its pid is named).
        """
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "unknown"
                raise RunError(
                    f"run_dir {str(self.path)!r} is in use by another process (pid {holder}); "
                    "wait for it to finish or stop it, then start this run again"
                ) from None
            f.truncate(0)
            f.write(str(os.getpid()))
            f.flush()
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def start(self, config: Mapping[str, Any]) -> None:
        """Create the directory and write ``config.json`` (a new run)."""
        self.path.mkdir(parents=True, exist_ok=True)
        records.write_json_atomic(dict(config), self.config)

    def remove_strays(self) -> None:
        """Delete the temporary files that killed writes left (never read by anything)."""
        for folder in (self.path, self.checkpoints):
            for stray in folder.glob(f".*{records.TEMP_SUFFIX}"):
                stray.unlink()

    # ---- provenance
    def record_session(self, *, seed: int, backend: str, step: int, **extra: Any) -> None:
        """Append this session's provenance to ``run.json``; warn if the sampler backend is not
        the one the run started with (:class:`BackendChangedWarning`)."""
        try:
            info = json.loads(self.run.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            info = {"sessions": []}
        first = next(
            (s["sampler_backend"] for s in info["sessions"] if "sampler_backend" in s), None
        )
        if step > 0 and first is not None and first != backend:
            warnings.warn(
                f"{self.path} started on the {first!r} sampler backend and resumes on "
                f"{backend!r}: the random stream changes, so the result will differ from an "
                f"uninterrupted run (set GUMBEL_SOFTMAX_BACKEND={first} to keep it)",
                BackendChangedWarning,
                stacklevel=3,
            )
        session = {
            **records.provenance(seed),
            "sampler_backend": backend,
            "resumed_from_step": step,
        }
        info["sessions"].append(session)
        info.update(seed=seed, **extra)
        records.write_json_atomic(info, self.run)

    # ---- checkpoints
    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"checkpoint-{step}.pt"

    def checkpoint_files(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of the checkpoints, newest first (a pre-runner ``checkpoint.pt``
        last: its step is inside it)."""
        found = []
        for p in self.checkpoints.glob("checkpoint-*.pt"):
            stem = p.stem.removeprefix("checkpoint-")
            if stem.isdigit():
                found.append((int(stem), p))
        found.sort(reverse=True)
        legacy = self.path / "checkpoint.pt"
        if legacy.exists():
            found.append((-1, legacy))
        return found

    def save_checkpoint(self, state: dict[str, Any], step: int) -> Path:
        """Write and verify ``checkpoint-<step>.pt``, then delete all but the newest two."""
        path = self.checkpoint_path(step)
        save_checkpoint(state, path)
        for _, old in self.checkpoint_files()[_KEEP_CHECKPOINTS:]:
            old.unlink()
        return path

    def load_checkpoint(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest checkpoint that verifies, as ``(path, state)``; ``None`` when there is none.

        A corrupt newer one is renamed ``*.corrupt`` (kept, never read again) with a
        :class:`CheckpointFallbackWarning` naming it and the file used instead.

        Raises:
            CheckpointError: every checkpoint is corrupt (the message names each file).
        """
        failures: list[str] = []
        for _, path in self.checkpoint_files():
            try:
                state = load_checkpoint(path)
            except CheckpointError as err:
                failures.append(str(err))
                continue
            if state is None:
                continue
            for message in failures:
                warnings.warn(
                    f"{message}; resuming from {path} instead",
                    CheckpointFallbackWarning,
                    stacklevel=3,
                )
            self._set_aside_newer_than(path)
            return path, state
        if failures:
            raise CheckpointError(
                f"no readable checkpoint in {self.path}: {'; '.join(failures)}. Delete the "
                "checkpoints folder to train this run again from step 0, or use a new run_dir"
            )
        return None

    def _set_aside_newer_than(self, used: Path) -> None:
        # Files listed before `used` failed to load; renaming them keeps their bytes for a look
        # and stops the pruning of the last two from keeping one of them instead of a good one.
        for _, path in self.checkpoint_files():
            if path == used:
                return
            path.replace(path.with_name(path.name + ".corrupt"))

    # ---- final evaluation
    def read_final(self) -> dict[str, Any] | None:
        try:
            final: dict[str, Any] = json.loads(self.final.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return final


# --------------------------------------------------------------------------- the training loop
class Progress(Protocol):
    """What :func:`train` and the final evaluation call on a progress bar (tqdm's interface)."""

    total: int | float | None

    def update(self, n: int = 1) -> Any: ...
    def set_postfix(self, **kw: Any) -> Any: ...
    def close(self) -> Any: ...


@dataclass(frozen=True)
class StepOutput:
    """One step's result: ``loss`` (a scalar tensor, the runner calls ``backward`` on it) and
    ``stats`` (floats averaged over each log window, e.g. the loss value and the KL)."""

    loss: Tensor
    stats: Mapping[str, float]


@dataclass
class Training:
    """What an experiment gives :func:`train`.

    Attributes:
        modules: every module whose ``state_dict`` the checkpoint holds, by name.
        optimizer: steps every trained parameter after ``loss.backward()``.
        batch: ``step -> batch``; may draw from ``generator`` (whose state is checkpointed).
        step: ``batch -> StepOutput`` (the forward pass of one step, in training mode).
        evaluate: ``step -> metrics`` of the periodic validation (a dict of floats).
        final: ``(step, progress) -> record`` of the final evaluation (JSON-able); it may
            set ``progress.total`` and call ``progress.update()``.
        final_key: entries of the final record that must match for a cached one to be reused
            (besides the step), e.g. the number of importance samples.
        final_fields: the config fields only the final evaluation (and the periodic
            validation) reads (the registry's ``Experiment.final_fields``): their values in
            :func:`train`'s ``config`` join ``final_key`` under their names, so a finished run
            asked for other values re-runs its final evaluation alone.
        generator: the sampling generator of the training steps.
        lr_schedule: stepped after every optimiser step, if given.
        estimator: the gradient estimator, whose temperature is logged (when it has one) ...
            or several (one per stochastic layer), the first one's logged ...
        schedule: ... and set to ``schedule(step)`` before every step (on each), when given.
    """

    modules: Mapping[str, nn.Module]
    optimizer: torch.optim.Optimizer
    batch: Callable[[int], Any]
    step: Callable[[Any], StepOutput]
    evaluate: Callable[[int], Mapping[str, float]]
    final: Callable[[int, Progress], dict[str, Any]]
    generator: torch.Generator
    final_key: Mapping[str, Any] = field(default_factory=dict)
    final_fields: Collection[str] = ()
    lr_schedule: torch.optim.lr_scheduler.LRScheduler | None = None
    estimator: Estimator | Sequence[Estimator] | None = None
    schedule: Schedule | None = None


@dataclass(frozen=True)
class Cadence:
    """When rows, evaluations and checkpoints happen.

    Attributes:
        steps_per_epoch: steps of one pass over the training set.
        epochs: passes; ``epochs * steps_per_epoch`` is the natural end, where a row and an
            evaluation are always written.
        max_steps: stop this session at this step (0: the natural end); a later session with a
            larger value resumes.
        log_every, eval_every, checkpoint_every: steps between training rows, evaluations and
            checkpoints (``eval_every=0``: once per epoch); a checkpoint is also written where
            the session stops.
    """

    steps_per_epoch: int
    epochs: int
    log_every: int
    eval_every: int
    checkpoint_every: int
    max_steps: int = 0

    @classmethod
    def of(cls, config: Any, steps_per_epoch: int) -> Cadence:
        """The cadence an experiment's config asks for (its ``epochs``, ``log_every``,
        ``eval_every``, ``checkpoint_every`` and ``max_steps``)."""
        return cls(
            steps_per_epoch=steps_per_epoch,
            epochs=config.epochs,
            log_every=config.log_every,
            eval_every=config.eval_every,
            checkpoint_every=config.checkpoint_every,
            max_steps=config.max_steps,
        )

    @property
    def end(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def stop(self) -> int:
        return min(self.end, self.max_steps) if self.max_steps else self.end


def minibatches(data: Tensor, batch_size: int, seed: int) -> tuple[int, Callable[[int], Tensor]]:
    """``(steps_per_epoch, batch)``: ``batch(step)`` is the step's minibatch of ``data`` (rows),
    in an order that is a pure function of ``(seed, epoch)``, so a resumed run draws the same
    minibatches; the last ``len(data) % batch_size`` rows of each shuffled epoch are left out.

    Raises:
        ConfigError: ``batch_size`` exceeds the number of rows.
    """
    steps_per_epoch = data.shape[0] // batch_size
    if steps_per_epoch < 1:
        raise ConfigError(f"batch_size={batch_size} exceeds the {data.shape[0]} training images")
    order: dict[int, Tensor] = {}

    def batch(step: int) -> Tensor:
        epoch, i = divmod(step, steps_per_epoch)
        if epoch not in order:
            g = torch.Generator().manual_seed(records.derive_seed(seed, "order", epoch))
            order.clear()
            order[epoch] = torch.randperm(data.shape[0], generator=g).to(data.device)
        return data[order[epoch][i * batch_size : (i + 1) * batch_size]]

    return steps_per_epoch, batch


@dataclass(frozen=True)
class TrainResult:
    """Where training stopped and the final evaluation record there."""

    step: int
    final: dict[str, Any]


def train(
    run: RunDirectory,
    spec: Training,
    cadence: Cadence,
    *,
    config: Mapping[str, Any],
    seed: int,
    progress: bool = True,
    session: Mapping[str, Any] | None = None,
    stream: TextIO | None = None,
) -> TrainResult:
    """Train (or resume) the run in ``run`` to ``cadence.stop`` and evaluate it there.

    Args:
        run: the run directory (its config already checked with
            :meth:`RunDirectory.check_config`).
        spec: the experiment's parts.
        cadence: rows, evaluations, checkpoints and the end.
        config: written to ``config.json`` when the run starts, kept in each checkpoint.
        seed: recorded in ``run.json``.
        progress: show a progress bar and the notes on slow phases on ``stream``.
        session: more entries for ``run.json`` (e.g. the dataset).
        stream: where notes go (default ``sys.stderr``).

    The run directory is held (:meth:`RunDirectory.lock`) until it returns.

    Raises:
        RunError: another process is training the same run directory.
        CheckpointError: every checkpoint of the run is corrupt.
        OSError: a file cannot be written (the error names it).
    """
    with run.lock():
        return _train(
            run, spec, cadence, config=config, seed=seed, progress=progress,
            session=session, stream=stream,
        )  # fmt: skip


def _train(
    run: RunDirectory,
    spec: Training,
    cadence: Cadence,
    *,
    config: Mapping[str, Any],
    seed: int,
    progress: bool,
    session: Mapping[str, Any] | None,
    stream: TextIO | None,
) -> TrainResult:
    out = stream if stream is not None else sys.stderr

    def note(message: str) -> None:
        print(f"gumbel-softmax: {message}", file=out, flush=True)

    device = spec.generator.device
    run.remove_strays()
    found = run.load_checkpoint()
    step = 0
    window: dict[str, Any] = {"n": 0, "sums": {}}
    if found is None:
        run.start(config)
    else:
        path, state = found
        try:
            step, window = _restore(spec, state)
        except (KeyError, RuntimeError, ValueError) as err:  # e.g. a state_dict of other shapes
            raise CheckpointError(
                f"{path} does not fit this run's model, estimator or optimiser: {err}"
            ) from None
        note(
            f"run already finished at step {step}"
            if step >= cadence.stop
            else f"resuming from step {step} ({path})"
        )
    records.truncate_metrics(run.metrics, step)
    if progress and step < cadence.stop:
        note("preparing the sampler kernels (numba compiles them at their first use) ...")
    t0 = time.perf_counter()
    backend = sampler_backend(device)
    if progress and step < cadence.stop:
        note(f"sampler backend {backend!r} ready ({time.perf_counter() - t0:.1f} s)")
    run.record_session(seed=seed, backend=backend, step=step, **dict(session or {}))

    def checkpoint() -> None:
        run.save_checkpoint(
            {
                "step": step,
                "modules": {name: m.state_dict() for name, m in spec.modules.items()},
                "optimizer": spec.optimizer.state_dict(),
                "lr_schedule": None if spec.lr_schedule is None else spec.lr_schedule.state_dict(),
                "generator": spec.generator.get_state(),
                "window": window,
                "config": dict(config),
            },
            step,
        )

    scheduled = (
        () if spec.estimator is None
        else (spec.estimator,) if isinstance(spec.estimator, Estimator)
        else tuple(spec.estimator)
    )  # fmt: skip
    estimator = scheduled[0] if scheduled else None
    has_temperature = estimator is not None and estimator.temperature_kind is not None
    eval_every = cadence.eval_every or cadence.steps_per_epoch
    if step < cadence.stop:
        from torch.utils.tensorboard import SummaryWriter

        log = _MetricsLog(run.metrics, SummaryWriter(str(run.tensorboard), purge_step=step or None))
        bar = _progress_bar(progress, total=cadence.stop, initial=step, unit="step")
        try:
            while step < cadence.stop:
                if spec.schedule is not None:
                    for each in scheduled:
                        cast(Any, each).temperature = spec.schedule(step)  # declared settable
                tau = _temperature(estimator) if has_temperature else None
                batch = spec.batch(step)
                result = spec.step(batch)
                spec.optimizer.zero_grad(set_to_none=True)
                result.loss.backward()
                spec.optimizer.step()
                if spec.lr_schedule is not None:
                    spec.lr_schedule.step()
                step += 1
                window["n"] += 1
                for k, v in result.stats.items():
                    window["sums"][k] = window["sums"].get(k, 0.0) + float(v)
                at_end = step == cadence.end
                epoch = step / cadence.steps_per_epoch
                if step % cadence.log_every == 0 or at_end:
                    means = {k: v / window["n"] for k, v in window["sums"].items()}
                    row = {"kind": "train", "step": step, "epoch": epoch, **means}
                    row["temperature"] = tau
                    row["lr"] = float(spec.optimizer.param_groups[0]["lr"])
                    log.write(row)
                    bar.set_postfix(
                        loss=f"{means.get('loss', float('nan')):.2f}",
                        tau="n/a" if tau is None else f"{tau:.3f}",
                    )
                    window = {"n": 0, "sums": {}}
                if step % eval_every == 0 or at_end:
                    metrics = dict(spec.evaluate(step))
                    log.write(
                        {"kind": "eval", "split": "valid", "step": step, "epoch": epoch, **metrics}
                    )
                if step % cadence.checkpoint_every == 0 or step == cadence.stop:
                    checkpoint()
                bar.update(1)
        finally:
            bar.close()
            log.close()

    final = run.read_final()
    key = {"step": step, **spec.final_key, **{f: config[f] for f in spec.final_fields}}
    if final is not None:
        # A record written before its fields joined the key was computed under the stored
        # config's values: those fields were not resumable then.
        stored = run.stored_config() or {}
        final = {**{f: stored[f] for f in spec.final_fields if f in stored}, **final}
    if final is None or any(final.get(k) != v for k, v in key.items()):
        if progress:
            note(f"final evaluation at step {step} ({_describe(spec.final_key)}) ...")
        t0 = time.perf_counter()
        bar = _progress_bar(progress, total=None, initial=0, unit="batch", desc="final evaluation")
        try:
            final = {**spec.final(step, bar), **key}
        finally:
            bar.close()
        records.write_json_atomic(final, run.final)
        if progress:
            note(f"final evaluation done ({time.perf_counter() - t0:.1f} s)")
    return TrainResult(step=step, final=final)


def branch(source: str | Path, config: Mapping[str, Any]) -> RunDirectory:
    """Start the run directory ``config["run_dir"]`` from the newest checkpoint of the run in
    ``source``, to re-run its final evaluation elsewhere under other final-evaluation fields.

    The new directory gets ``config.json`` (``config``), a hard link to (or, across file
    systems, a copy of) the source's newest checkpoint, and ``branched_from`` in ``run.json``
    (the source and the checkpoint); earlier checkpoints and any ``final.json`` of an earlier
    branch are removed. Running the experiment on ``config`` then resumes from that checkpoint:
    when ``config`` differs from the source's only in final-evaluation fields it trains no
    further and runs its final evaluation alone, so the result equals the run trained with
    ``config`` from the start. Training rows stay in the source (the new ``metrics.jsonl`` is
    empty).

    Raises:
        RunError: ``source`` has no checkpoint.
        ConfigError: ``config["run_dir"]`` is a file (or its parent is).
        OSError: a file cannot be written (the error names it).
    """
    found = RunDirectory(source).checkpoint_files()
    if not found:
        raise RunError(f"{str(source)!r} has no checkpoint to branch from")
    _, newest = found[0]
    target = RunDirectory(config["run_dir"])
    target.path.mkdir(parents=True, exist_ok=True)
    target.checkpoints.mkdir(exist_ok=True)
    for _, old in target.checkpoint_files():
        old.unlink()
    target.final.unlink(missing_ok=True)
    linked = (
        target.checkpoints / newest.name
        if newest.parent.name == "checkpoints"
        else target.path / newest.name  # a pre-runner checkpoint.pt
    )
    try:
        linked.hardlink_to(newest)
    except OSError:  # another file system, or links not allowed there: a copy, atomically
        import shutil

        with records.atomic_path(linked) as part:
            shutil.copyfile(newest, part)
    records.write_json_atomic(dict(config), target.config)
    records.write_json_atomic(
        {"sessions": [], "branched_from": {"run_dir": str(source), "checkpoint": str(newest)}},
        target.run,
    )
    return target


def _restore(spec: Training, state: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Load ``state`` into the experiment's parts; the step and the log window."""
    if "modules" not in state:  # a checkpoint.pt of the VAE before the runner
        state = {
            **state,
            "modules": {name: state[name] for name in spec.modules},
            "generator": state["sampler"],
            "window": {
                "n": state["window"]["n"],
                "sums": {k: v for k, v in state["window"].items() if k != "n"},
            },
        }
    for name, module in spec.modules.items():
        module.load_state_dict(state["modules"][name])
    spec.optimizer.load_state_dict(state["optimizer"])
    if spec.lr_schedule is not None:
        spec.lr_schedule.load_state_dict(state["lr_schedule"])
    spec.generator.set_state(state["generator"])
    window = {"n": int(state["window"]["n"]), "sums": dict(state["window"]["sums"])}
    return int(state["step"]), window


def _temperature(estimator: Any) -> float:
    t = estimator.temperature
    return float(t.detach() if isinstance(t, Tensor) else t)


def _describe(key: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items()) or "no options"


class _MetricsLog:
    """Rows appended to the JSONL file (flushed per row) and mirrored to TensorBoard."""

    def __init__(self, path: Path, tb: Any) -> None:
        self.path = path
        self.tb = tb
        self.fh = open(path, "a")

    def write(self, row: dict[str, Any]) -> None:
        try:
            self.fh.write(records.metrics_line(row))
            self.fh.flush()
        except OSError as err:
            err.filename = err.filename or str(self.path)
            raise
        for k, v in row.items():
            if isinstance(v, float):
                self.tb.add_scalar(f"{row['kind']}/{row.get('split', 'train')}/{k}", v, row["step"])

    def close(self) -> None:
        self.fh.close()
        self.tb.close()


class _NoBar:
    total: int | float | None = None

    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kw: Any) -> None: ...
    def close(self) -> None: ...


def _progress_bar(enabled: bool, **kw: Any) -> Progress:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    bar: Progress = tqdm(dynamic_ncols=True, **kw)
    return bar
