"""Sweeps: a grid of any lab experiment's configs, one run directory per point, one table.

``gumbel-softmax sweep SPEC.toml [--jobs N] [--engine local|ray] [--address ADDR]`` reads a spec::

    experiment = "vae"                 # a name of gumbel_softmax.lab.experiments.EXPERIMENTS
    title = "lr grid"                  # optional: the heading of the table
    root = "runs/lr-grid"              # run directories, relative to the spec's folder
                                       #   (default: runs/<spec name>)
    results = "lr-grid"                # results.json / .md path stem, relative to the spec's
                                       #   folder (default: <root>/results)
    seeds = [0, 1]                     # optional: every setting once per seed (the `seed` field)
    group_by = ["latent", "estimator"] # one selected setting per group
    select = "valid.neg_elbo"          # lowest wins; default: the experiment's
    report = ["test.neg_elbo", "test.iw_bound"]   # default: the experiment's

    [base]                             # config fields every point shares
    epochs = 100
    optimizer = "sgd"
    eval_samples = 10                  # phase 1: a cheap final evaluation at every point

    [final]                            # optional: phase 2, the selected points only
    eval_samples = 1000
    test_images = 0

    [[grid]]                           # a block: the product of its lists (a scalar: one value)
    estimator = ["sf", "darn"]
    normalize = true
    lr = [1e-3, 3e-4]

    [[grid]]                           # more blocks: the grid is their union
    estimator = ["gs", "st-gs"]
    anneal_rate = [1e-5, 1e-4]
    lr = [1e-3, 3e-4]

(one ``[grid]`` table is one block). Points run in the spec's order: blocks in order, within a
block the product with the last key varying fastest, seeds fastest of all, so a spec puts what
matters most first. Every point's config is built and validated by the experiment's own config
class before any run starts; a bad spec (an unknown key or experiment, a value the config
rejects) is a :class:`~gumbel_softmax.lab.config.ConfigError`.

A point's run directory is ``<root>/<key>=<value>,...`` over the keys of its grid block (and
``seed``), e.g. ``estimator=sf,normalize=true,lr=0.001,seed=0``. A run whose
``final.json`` exists under the same config is skipped; any other resumes from its checkpoint
(the runner's exact resume), so starting the same sweep again picks up where it stopped. Runs
are always quiet (``progress = false``); the sweep prints one progress line per finished run
(done / running / failed, ETA).

The table (``results.json`` and ``results.md``, both written atomically after every finished
run): every point's status, settings and metrics; and per group, the setting (the point without
its seed) with the lowest mean ``select`` over its seeds among the settings whose every seed
finished, its ``report`` metrics (means over the seeds), and how many of the group's points ran.

Two phases. With a ``[final]`` table, phase 1 runs every point as above and selects per group
on its ``select`` metric; phase 2 evaluates each selected point (every seed of the selected
setting) again with the ``[final]`` fields, on its trained weights. A group's phase 2 starts as
soon as its own points have all run (finished or failed) and goes ahead of the points still
waiting, so a long sweep completes its table cell by cell and one stopped part way leaves whole
cells. Its run directory ``<root>/final/<name>`` is branched from the point's
(:func:`.runner.branch`: its last checkpoint, no training step) and the experiment's ``main``
runs the final evaluation alone, so the record equals the point run with the ``[final]``
settings from the start, bit for bit. ``[final]`` takes only the experiment's declared
final-evaluation fields (:attr:`.experiments.Experiment.final_fields`, e.g. the VAE's
``eval_samples``, ``eval_images``, ``test_images``); any other key would change the training and is a
:class:`~gumbel_softmax.lab.config.ConfigError` naming it. The table then reports phase 2's
``report`` metrics (phase 1's under ``phase1``), selection stays on phase 1's ``select``.
Phase 2 resumes like phase 1 (an evaluated point whose record matches is skipped); a group
whose selection changes later (a failed point that runs and wins) has its new selection
evaluated in the next session.

Engines: ``local`` runs ``--jobs`` worker processes with ``cores // jobs`` torch threads each (so
they do not oversubscribe the cores; ``OMP_NUM_THREADS``, when set, caps it); ``ray`` runs each
point as a Ray task of that many CPUs on the cluster at ``--address`` (default: a local instance
with the CPUs of ``--jobs`` such tasks; the ``ray`` extra), as many at once as the cluster has
CPUs for.
A run's result is a function of its config, machine and thread count, not of the engine. A local
sweep that is killed takes its workers with it within a second (:func:`.runner.exit_with_parent`):
their runs stop where a killed run stops, and the sweep started again resumes them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from .config import ConfigError, load_toml
from .experiments import Experiment, get
from .records import write_atomic, write_json_atomic

__all__ = [
    "Point",
    "SweepError",
    "SweepResult",
    "SweepSpec",
    "add_arguments",
    "load_spec",
    "parse_spec",
    "point_name",
    "run_sweep",
    "table",
]

_SPEC_KEYS = ("experiment", "title", "root", "results", "seeds", "group_by", "select", "report")
_SPEC_TABLES = ("base", "grid", "final")
# Set by the sweep for every point: a sweep's runs are quiet and live under its root.
_OWNED = ("run_dir", "progress")
# Where a run reads its data or what it draws, not what it computes: a finished run whose
# config differs only here is still finished.
_NOT_RESULTS = (*_OWNED, "data_dir", "download", "figures")
# Phase 2's run directories, beside the points' (a point's name always holds "=" or is "base").
_FINAL_DIR = "final"


class SweepError(RuntimeError):
    """A sweep cannot run: its engine is missing or unreachable (the message says which)."""


@dataclass(frozen=True)
class Point:
    """One run of a sweep: ``name`` (its run directory under the root), ``settings`` (its values
    of the grid keys, ``seed`` last), ``config`` (the validated config as a dict) and ``final``
    (the config of its phase-2 evaluation, ``config`` with the spec's ``[final]`` fields and the
    run directory ``<root>/final/<name>``; ``None`` when the spec has no ``[final]``)."""

    name: str
    settings: Mapping[str, Any]
    config: Mapping[str, Any]
    final: Mapping[str, Any] | None = None

    @property
    def setting(self) -> tuple[tuple[str, Any], ...]:
        """The point without its seed: what selection compares."""
        return tuple((k, v) for k, v in self.settings.items() if k != "seed")


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, validated spec (see the module docstring)."""

    path: Path
    experiment: Experiment
    title: str
    root: Path
    results: Path
    keys: tuple[str, ...]
    group_by: tuple[str, ...]
    select: str
    report: tuple[str, ...]
    points: tuple[Point, ...]
    final: Mapping[str, Any] = field(default_factory=dict)


def load_spec(path: str | Path, *, overrides: Sequence[str] = ()) -> SweepSpec:
    """Read and validate the spec file ``path``; ``overrides`` are ``KEY=VALUE`` settings of
    the base config (a TOML value, or else a bare string), e.g. ``max_steps=1000`` to train
    every point that far now and further later (``max_steps`` is not part of a run's name).

    Raises:
        ConfigError: the file is missing or not TOML, an override is not ``KEY=VALUE``, or the
            spec is bad (see :func:`parse_spec`).
    """
    p = Path(path)
    data = dict(load_toml(p, table="sweep"))
    if overrides:
        data["base"] = {**_table(data.get("base", {}), "base", str(p)), **_parse_sets(overrides)}
    return parse_spec(data, path=p)


def _parse_sets(overrides: Sequence[str]) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # a bare string such as a path
        out[key.strip()] = value
    return out


def parse_spec(data: Mapping[str, Any], *, path: Path) -> SweepSpec:
    """Validate the spec ``data`` (read from ``path``, against whose folder its paths resolve)
    and build every point's config with the experiment's config class.

    Raises:
        ConfigError: an unknown spec key or experiment, a grid key that is not a config field,
            an empty list, ``run_dir``/``progress`` in the spec, a ``[final]`` key that is not
            one of the experiment's final-evaluation fields (it would change the training), a
            point the config rejects (the message names the point), or group/metric names the
            experiment does not have.
    """
    where = f"sweep spec {str(path)!r}"
    unknown = sorted(set(data) - set(_SPEC_KEYS) - set(_SPEC_TABLES))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}; known: {sorted((*_SPEC_KEYS, *_SPEC_TABLES))}"
        )
    if "experiment" not in data:
        raise ConfigError(f"{where}: experiment is missing (one of the registered experiments)")
    exp = get(data["experiment"])
    fields = list(exp.config().to_dict())
    base = _table(data.get("base", {}), "base", where)
    raw_grid = data.get("grid", {})
    blocks = [raw_grid] if isinstance(raw_grid, dict) else raw_grid
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise ConfigError(f"{where}: grid must be a table or an array of tables, got {raw_grid!r}")
    blocks = [{k: v if isinstance(v, list) else [v] for k, v in b.items()} for b in blocks] or [{}]
    seeds = data.get("seeds")
    final = _table(data.get("final", {}), "final", where)
    for name, table_ in (("base", base), *((f"grid[{i}]", b) for i, b in enumerate(blocks))):
        bad = sorted(set(table_) - set(fields))
        if bad:
            raise ConfigError(f"{where}: {name} has unknown config key(s) {bad}; known: {fields}")
        owned = sorted(set(table_) & set(_OWNED))
        if owned:
            raise ConfigError(f"{where}: {name} sets {owned}, which the sweep sets for each point")
    unknown = sorted(set(final) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: final has unknown config key(s) {unknown}; known: {fields}")
    training = sorted(set(final) - set(exp.final_fields))
    if training:
        raise ConfigError(
            f"{where}: [final] sets {training}, which would change the training; [final] takes "
            f"only {exp.name}'s final-evaluation fields {list(exp.final_fields)}"
        )
    for i, b in enumerate(blocks):
        empty = [k for k, v in b.items() if not v]
        if empty:
            raise ConfigError(f"{where}: grid[{i}] has empty value lists for {empty}")
    if seeds is not None:
        if not isinstance(seeds, list) or not seeds:
            raise ConfigError(f"{where}: seeds must be a non-empty list of ints, got {seeds!r}")
        if any("seed" in b for b in blocks) or "seed" in base:
            raise ConfigError(f"{where}: give the seed either as seeds or in base/grid, not both")
    keys = tuple(dict.fromkeys(k for b in blocks for k in b))
    if seeds is not None:
        keys = (*[k for k in keys if k != "seed"], "seed")
    spec_dir = path.parent
    root = spec_dir / _string(data.get("root", f"runs/{path.stem}"), "root", where)
    results = data.get("results")
    results_path = (
        root / "results" if results is None else spec_dir / _string(results, "results", where)
    )
    group_by = tuple(_strings(data.get("group_by", []), "group_by", where))
    bad = sorted(set(group_by) - set(fields))
    if bad:
        raise ConfigError(f"{where}: group_by has unknown config key(s) {bad}; known: {fields}")
    select = _string(data.get("select", exp.select), "select", where)
    report = tuple(_strings(data.get("report", list(exp.report)), "report", where))
    for metric in (select, *report):
        if metric not in exp.metrics:
            raise ConfigError(
                f"{where}: metric {metric!r} is not one of {exp.name}'s {list(exp.metrics)}"
            )
    points: dict[str, Point] = {}
    for block in blocks:
        names = list(block)
        own = (*names, *(["seed"] if seeds else []))
        for values in itertools.product(*block.values()):
            for seed in [None] if seeds is None else seeds:
                given = {**base, **dict(zip(names, values, strict=True))}
                if seed is not None:
                    given["seed"] = seed
                point = _point(exp, given, own, root, where, final)
                old = points.setdefault(point.name, point)
                if old.config != point.config:
                    raise ConfigError(
                        f"{where}: two different points share the run name {point.name!r} "
                        "(a name holds the keys of the point's own grid block); give the "
                        "blocks keys that tell their points apart"
                    )
    title = _string(data.get("title", path.stem), "title", where)
    return SweepSpec(
        path=path,
        experiment=exp,
        title=title,
        root=root,
        results=results_path,
        keys=keys,
        group_by=group_by,
        select=select,
        report=report,
        points=tuple(points.values()),
        final=final,
    )


def _point(
    exp: Experiment,
    given: dict[str, Any],
    keys: Sequence[str],
    root: Path,
    where: str,
    final: Mapping[str, Any],
) -> Point:
    probe = {**given, "run_dir": str(root / "_"), "progress": False}
    shown = ", ".join(f"{k}={v!r}" for k, v in given.items())
    try:
        config = exp.config.from_dict(probe).to_dict()
    except ConfigError as err:
        raise ConfigError(f"{where}: the point ({shown}) is not a valid config: {err}") from None
    settings = {k: config[k] for k in keys}
    name = point_name(settings)
    config["run_dir"] = str(root / name)
    if not final:
        return Point(name=name, settings=settings, config=config)
    # phase 2 draws no figures: the point's own run directory has them
    probe = {**config, **final, "run_dir": str(root / _FINAL_DIR / name), "figures": False}
    try:
        evaluation = exp.config.from_dict(probe).to_dict()
    except ConfigError as err:
        raise ConfigError(
            f"{where}: the point ({shown}) with [final] is not a valid config: {err}"
        ) from None
    return Point(name=name, settings=settings, config=config, final=evaluation)


def point_name(settings: Mapping[str, Any]) -> str:
    """The run directory's name of a point: ``key=value`` joined by commas, in the keys' order
    (``true``/``false``, the shortest float that reads back, other characters than letters,
    digits and ``.+-_`` in strings replaced by ``_``)."""
    return ",".join(f"{k}={_show(v)}" for k, v in settings.items()) or "base"


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", str(v))


def _table(v: Any, name: str, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ConfigError(f"{where}: {name} must be a table, got {v!r}")
    return dict(v)


def _string(v: Any, name: str, where: str) -> str:
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{where}: {name} must be a non-empty string, got {v!r}")
    return v


def _strings(v: Any, name: str, where: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise ConfigError(f"{where}: {name} must be a list of strings, got {v!r}")
    return v


# ------------------------------------------------------------------------------------ running
def _run_point(
    experiment: str, config: dict[str, Any], threads: int, source: str | None = None
) -> dict[str, Any]:
    """Run one point in a worker (a process of the pool, or a Ray task): its final record and
    its own wall time, or the error that stopped it. With ``source`` (phase 2), ``config``'s
    run directory is first branched from the trained run there (:func:`.runner.branch`), so
    the run is its final evaluation alone."""
    import torch

    from .runner import branch

    torch.set_num_threads(threads)
    exp = get(experiment)
    t0 = time.perf_counter()
    try:
        if source is not None:
            branch(source, config)
        exp.main(exp.config.from_dict(config))
    except Exception as err:  # a failed point is a row of the table, not the end of the sweep
        return {"error": f"{type(err).__name__}: {err}", "wall_s": time.perf_counter() - t0}
    final = json.loads((Path(config["run_dir"]) / "final.json").read_text())
    return {"final": final, "wall_s": time.perf_counter() - t0}


def _finished(
    config: Mapping[str, Any], experiment: Experiment, *, step: int | None = None
) -> dict[str, Any] | None:
    """The final record of the run directory of ``config`` if it finished under the same config
    (its final-evaluation fields compared with those its ``final.json`` was computed under, as
    the runner does) and, when given, at ``step``. A key the stored config lacks (an option
    added since the run) has its default, which is the behaviour the run had, as the runner
    reads it."""
    run = Path(config["run_dir"])
    final_fields = experiment.final_fields
    try:
        stored = json.loads((run / "config.json").read_text())
        final: dict[str, Any] = json.loads((run / "final.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    stored = {**experiment.config().to_dict(), **stored}
    ignored = {*_NOT_RESULTS, *final_fields}
    same = {k: v for k, v in stored.items() if k not in ignored} == {
        k: v for k, v in config.items() if k not in ignored
    }
    recorded = {**{f: stored.get(f) for f in final_fields}, **final}
    same = same and all(recorded.get(f) == config[f] for f in final_fields)
    if step is not None:
        same = same and final.get("step") == step
    return final if same else None


@dataclass
class SweepResult:
    """What a sweep did this session and where its table is: ``done``/``skipped``/``failed``
    count phase 1's points, ``final_*`` phase 2's selected points (a spec with ``[final]``);
    ``wall_s`` is the whole session's wall time, ``runs_wall_s``/``final_runs_wall_s`` the sum
    of each phase's runs' own times, ``final_wall_s`` the wall time during which at least one
    phase-2 evaluation ran (the phases interleave: see :func:`run_sweep`)."""

    spec: SweepSpec
    done: int = 0
    skipped: int = 0
    failed: int = 0
    final_done: int = 0
    final_skipped: int = 0
    final_failed: int = 0
    wall_s: float = 0.0
    runs_wall_s: float = 0.0
    final_wall_s: float = 0.0
    final_runs_wall_s: float = 0.0
    tables: tuple[Path, Path] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False
    rendered: bool = False

    def summary(self) -> str:
        n = len(self.spec.points)
        ran = self.done + self.failed
        if self.rendered:
            return (
                f"sweep {self.spec.title!r}: the table of {self.skipped} of {n} finished points"
                + (f" and {self.final_skipped} phase-2 evaluation(s)" if self.spec.final else "")
                + f", nothing run\ntable: {self.tables[1] if self.tables else '-'}"
            )
        lines = [
            f"sweep {self.spec.title!r}: {self.done + self.skipped} of {n} points finished "
            f"({self.skipped} already, {self.done} now), {self.failed} failed",
        ]
        if ran:
            lines.append(
                f"wall {self.wall_s:.1f} s in all; the runs' own time "
                f"{self.runs_wall_s:.1f} s ({ran} run(s))"
            )
        if self.spec.final and not self.dry_run:
            selected = self.final_done + self.final_skipped + self.final_failed
            lines.append(
                f"phase 2 ([final] {_overrides(self.spec)}): {self.final_done + self.final_skipped}"
                f" of {selected} selected points evaluated ({self.final_skipped} already, "
                f"{self.final_done} now), {self.final_failed} failed"
                + (
                    f"; the runs' own time {self.final_runs_wall_s:.1f} s, "
                    f"{self.final_wall_s:.1f} s of wall time with one running"
                    if self.final_done + self.final_failed
                    else ""
                )
            )
        if self.tables is not None:
            lines.append(f"table: {self.tables[1]} (and {self.tables[0].name})")
        return "\n".join(lines)


def _overrides(spec: SweepSpec) -> str:
    return ", ".join(f"{k}={_show(v)}" for k, v in spec.final.items())


def run_sweep(
    spec: SweepSpec,
    *,
    jobs: int = 1,
    engine: str = "local",
    address: str | None = None,
    dry_run: bool = False,
    render: bool = False,
    stream: TextIO | None = None,
) -> SweepResult:
    """Run every point of ``spec`` not finished yet on ``engine`` and write the table; with a
    ``[final]`` table, also evaluate each group's selected points again with it (phase 2), as
    soon as that group's own points have all finished or failed: its evaluations go ahead of
    the phase-1 runs still waiting, and those of groups finished in earlier sessions go first.

    Args:
        jobs: runs at once (worker processes, or the CPUs of a local Ray instance).
        engine: ``"local"`` (a process pool) or ``"ray"``.
        address: a Ray cluster to join (default: start a local instance).
        dry_run: list the points of both phases and what would run; run nothing, write nothing.
        render: write the table from the runs on disk (both phases) and run nothing: e.g. for
            a sweep stopped part way, or run from another copy of the spec that shares ``root``.
        stream: the progress lines (default ``sys.stderr``).

    Raises:
        ConfigError: ``jobs`` < 1, an unknown engine, ``address`` without ``engine="ray"``.
        SweepError: Ray is not installed or its cluster cannot be reached.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be an int >= 1, got {jobs!r}")
    if engine not in ("local", "ray"):
        raise ConfigError(f"engine must be 'local' or 'ray', got {engine!r}")
    if address is not None and engine != "ray":
        raise ConfigError(f"address={address!r} needs engine='ray', got engine={engine!r}")
    out = stream if stream is not None else sys.stderr
    result = SweepResult(spec=spec, dry_run=dry_run)
    finals: dict[str, dict[str, Any]] = {}
    todo: list[Point] = []
    for point in spec.points:
        final = _finished(point.config, spec.experiment)
        if final is None:
            todo.append(point)
        else:
            finals[point.name] = final
    result.skipped = len(finals)
    previous, previous_final = _previous_walls(spec)
    # phase 2's outcomes by point: {"final": record} or {"error": message}, and "wall_s"
    evaluated = _evaluated(spec, finals, previous_final)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, (cores or 1) // jobs)
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # the user's cap, e.g. a shared machine
        threads = max(1, min(threads, int(os.environ["OMP_NUM_THREADS"])))
    print(
        f"gumbel-softmax: sweep {spec.title!r}: {len(spec.points)} points, {len(finals)} finished "
        f"already, {len(todo)} to run on {engine} with {jobs} job(s) of {threads} thread(s)",
        file=out,
        flush=True,
    )
    if render and not dry_run:
        result.tables = write_tables(spec, finals, {}, previous, evaluated=evaluated)
        result.rows = _rows(spec, finals, {}, previous, evaluated)
        result.final_skipped = len(evaluated)
        result.rendered = True
        return result
    if dry_run:
        for point in spec.points:
            state = "finished" if point.name in finals else "to run"
            print(f"  {point.name}: {state}", file=out)
        if spec.final:
            _print_phase2(spec, finals, evaluated, out)
        return result
    walls: dict[str, float] = {}
    errors: dict[str, str] = {}
    walls2: dict[str, float] = {}
    queue = _Queue()
    groups = _groups(spec)
    settled: set[tuple[Any, ...]] = set()
    todo2: list[Point] = []

    def tables(session: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
        return write_tables(
            spec, finals, errors, {**previous, **walls}, evaluated=evaluated, session=session
        )

    def settle() -> None:
        """Queue phase 2 for every group whose points have all finished or failed and that
        has not been queued yet: a cell of the table completes as soon as its own points ran,
        not after the whole grid, and a sweep stopped part way leaves whole cells behind."""
        if not spec.final:
            return
        ready = [
            (key, names)
            for key, names in groups.items()
            if key not in settled and all(n in finals or n in errors for n in names)
        ]
        if not ready:
            return
        selected = {p.name for p in _selected(spec, finals, errors)}
        on_disk = _evaluated(spec, finals, previous_final)  # phase 1 may have run some again
        for key, names in ready:
            settled.add(key)
            for name in names:
                evaluated.pop(name, None)
                if name in on_disk:
                    evaluated[name] = on_disk[name]
                if name in selected:
                    if name in evaluated:
                        result.final_skipped += 1
                    else:
                        point = by_name[name]
                        todo2.append(point)
                        args = (spec.experiment.name, dict(point.final or {}), threads,
                                point.config["run_dir"])  # fmt: skip
                        queue.first.append(_Task(point, args, 2))

    def finish(point: Point, outcome: dict[str, Any], running: int) -> None:
        walls[point.name] = outcome["wall_s"]
        if "error" in outcome:
            errors[point.name] = outcome["error"]
            result.failed += 1
            print(f"gumbel-softmax: sweep: {point.name} failed: {outcome['error']}", file=out)
        else:
            finals[point.name] = outcome["final"]
            result.done += 1
        result.tables = tables()
        left = len(todo) - result.done - result.failed
        per_run = sum(walls.values()) / len(walls)
        eta = _duration(per_run * left / jobs) if left else "0 s"
        print(
            f"gumbel-softmax: sweep: {len(finals)}/{len(spec.points)} done, {running} running, "
            f"{result.failed} failed; ETA {eta}",
            file=out,
            flush=True,
        )
        settle()

    def finish2(point: Point, outcome: dict[str, Any], running: int) -> None:
        walls2[point.name] = outcome["wall_s"]
        evaluated[point.name] = outcome
        if "error" in outcome:
            result.final_failed += 1
            print(
                f"gumbel-softmax: sweep: phase 2: {point.name} failed: {outcome['error']}",
                file=out,
            )
        else:
            result.final_done += 1
        result.tables = tables()
        waiting = len(groups) - len(settled)
        print(
            f"gumbel-softmax: sweep: phase 2: {result.final_done + result.final_skipped}/"
            f"{result.final_skipped + len(todo2)} done, {running} running, "
            f"{result.final_failed} failed"
            + (f"; {waiting} group(s) still in phase 1" if waiting else ""),
            file=out,
            flush=True,
        )

    by_name = {p.name: p for p in spec.points}
    t0 = time.perf_counter()
    settle()  # the groups finished in earlier sessions: their phase 2 first
    if spec.final and queue.first:
        print(
            f"gumbel-softmax: sweep: phase 2: {len(queue.first)} selected point(s) of finished "
            f"groups to evaluate again with [final] {_overrides(spec)} on their trained weights",
            file=out,
            flush=True,
        )
    queue.rest.extend(_Task(p, (spec.experiment.name, dict(p.config), threads), 1) for p in todo)

    def ended(task: _Task, outcome: dict[str, Any], running: int) -> None:
        queue.clock.stop(task.phase)
        (finish if task.phase == 1 else finish2)(task.point, outcome, running)

    runs = _Engine(engine, jobs, threads, address)
    try:
        runs.run(queue, ended)
    finally:
        runs.close()
    result.wall_s = time.perf_counter() - t0
    result.runs_wall_s = sum(walls.values())
    result.final_runs_wall_s = sum(walls2.values())
    result.final_wall_s = queue.clock.spent[2]
    session: dict[str, Any] = {
        "engine": engine,
        "jobs": jobs,
        "threads": threads,
        "runs": len(walls),
        "wall_s": round(result.wall_s, 2),
        "runs_wall_s": round(result.runs_wall_s, 2),
    }
    if spec.final:
        session.update(
            phase1_wall_s=round(queue.clock.spent[1], 2),
            phase2_wall_s=round(queue.clock.spent[2], 2),
            phase2_runs=result.final_done + result.final_failed,
            phase2_runs_wall_s=round(result.final_runs_wall_s, 2),
        )
    result.tables = tables(session)
    result.rows = _rows(spec, finals, errors, {**previous, **walls}, evaluated)
    return result


def _groups(spec: SweepSpec) -> dict[tuple[Any, ...], list[str]]:
    """The names of each group's points (grouped as :func:`table` groups them), in order."""
    out: dict[tuple[Any, ...], list[str]] = {}
    for p in spec.points:
        key = tuple(p.settings.get(k, p.config[k]) for k in spec.group_by)
        out.setdefault(key, []).append(p.name)
    return out


class _Task(NamedTuple):
    """A run for the engine: ``_run_point(*args)`` for ``point`` in ``phase`` 1 or 2."""

    point: Point
    args: tuple[Any, ...]
    phase: int


class _PhaseClock:
    """The wall time during which at least one task of each phase ran (tasks are handed out
    only as workers free up, so a task runs from its start here to its end)."""

    def __init__(self) -> None:
        self.spent = {1: 0.0, 2: 0.0}
        self._running = {1: 0, 2: 0}
        self._since = {1: 0.0, 2: 0.0}

    def start(self, phase: int) -> None:
        if self._running[phase] == 0:
            self._since[phase] = time.perf_counter()
        self._running[phase] += 1

    def stop(self, phase: int) -> None:
        self._running[phase] -= 1
        if self._running[phase] == 0:
            self.spent[phase] += time.perf_counter() - self._since[phase]


@dataclass
class _Queue:
    """The tasks not yet handed to the engine: phase 2's first (short, and each completes a cell
    of the table), then phase 1's in the spec's order. A task leaves it when a worker is free to
    run it, so ``clock`` sees each task's run from its start to its end."""

    first: deque[_Task] = field(default_factory=deque)
    rest: deque[_Task] = field(default_factory=deque)
    clock: _PhaseClock = field(default_factory=_PhaseClock)

    def __len__(self) -> int:
        return len(self.first) + len(self.rest)

    def pop(self) -> _Task:
        task = (self.first or self.rest).popleft()
        self.clock.start(task.phase)
        return task


def _evaluated(
    spec: SweepSpec, finals: Mapping[str, Mapping[str, Any]], walls: Mapping[str, float]
) -> dict[str, dict[str, Any]]:
    """Phase 2's finished evaluations on disk: of the points whose phase 1 finished, those
    whose phase-2 run directory holds the final record of their ``final`` config at the step
    phase 1 reached."""
    out: dict[str, dict[str, Any]] = {}
    if not spec.final:
        return out
    for p in spec.points:
        if p.name in finals and p.final is not None:
            final = _finished(p.final, spec.experiment, step=finals[p.name]["step"])
            if final is not None:
                out[p.name] = {"final": final, "wall_s": walls.get(p.name)}
    return out


def _selected(
    spec: SweepSpec, finals: Mapping[str, Mapping[str, Any]], errors: Mapping[str, str]
) -> list[Point]:
    """The points of each group's selected setting (every seed), in the spec's order."""
    names = {n for g in table(spec, _rows(spec, finals, errors, {})) for n in g.get("runs", [])}
    return [p for p in spec.points if p.name in names]


def _print_phase2(
    spec: SweepSpec,
    finals: Mapping[str, Mapping[str, Any]],
    evaluated: Mapping[str, Any],
    out: TextIO,
) -> None:
    print(f"  phase 2: the selected points again with [final] {_overrides(spec)}:", file=out)
    for g in table(spec, _rows(spec, finals, {}, {})):
        group = ", ".join(f"{k}={_show(v)}" for k, v in g["group"].items()) or "all points"
        left = g["points"] - g["done"]
        if left:
            print(
                f"  {_FINAL_DIR}/ ({group}): once its own points have run ({left} to run)",
                file=out,
            )
            continue
        for name in g.get("runs", []):
            state = "finished" if name in evaluated else "to run"
            print(f"  {_FINAL_DIR}/{name}: {state}", file=out)


class _Engine:
    """Runs the tasks of a :class:`_Queue`, handing one out whenever a worker is free (so a
    phase-2 task queued while phase 1 runs goes next) and calling ``finish(task, outcome,
    running)`` as each ends. The process pool or the Ray instance starts with the first task."""

    def __init__(self, engine: str, jobs: int, threads: int, address: str | None) -> None:
        self.engine, self.jobs, self.threads, self.address = engine, jobs, threads, address
        self.pool: Any = None
        self.ray: Any = None
        self.ray_started = False

    def run(self, queue: _Queue, finish: Any) -> None:
        if not queue:
            return
        submit, ready, slots = self._local() if self.engine == "local" else self._ray()
        pending: dict[Any, _Task] = {}
        while True:
            while queue and len(pending) < slots:
                task = queue.pop()
                pending[submit(task.args)] = task
            if not pending:
                return
            for handle, outcome in ready(pending):
                task = pending.pop(handle)
                finish(task, outcome, min(slots, len(pending) + len(queue)))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
        if self.ray_started:
            self.ray.shutdown()

    def _local(self) -> tuple[Any, Any, int]:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        from .runner import exit_with_parent

        if self.pool is None:
            # spawn: a fresh interpreter per worker (forking a process that has started torch's
            # thread pools can hang).
            context = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=context, initializer=exit_with_parent
            )

        def ready(pending: Mapping[Any, _Task]) -> list[tuple[Any, Any]]:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            return [(f, f.result()) for f in done]

        return (lambda args: self.pool.submit(_run_point, *args)), ready, self.jobs

    def _ray(self) -> tuple[Any, Any, int]:
        if self.ray is None:
            self._start_ray()
        ray = self.ray
        remote = ray.remote(num_cpus=self.threads)(_run_point)

        def ready(pending: Mapping[Any, _Task]) -> list[tuple[Any, Any]]:
            done, _ = ray.wait(list(pending), num_returns=1)
            return [(ref, ray.get(ref)) for ref in done]

        # As many at once as the cluster has room for (a local instance: --jobs).
        cpus = int(ray.cluster_resources().get("CPU", self.jobs * self.threads))
        return (lambda args: remote.remote(*args)), ready, max(1, cpus // self.threads)

    def _start_ray(self) -> None:
        try:
            import ray
        except ImportError:
            raise SweepError(
                "engine 'ray' needs the ray package: pip install 'gumbel-softmax[ray]'"
            ) from None
        address = self.address
        if address is not None:
            _check_reachable(address)
        if not ray.is_initialized():
            try:
                if address is None:
                    cpus = self.jobs * self.threads
                    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise SweepError(
                    f"cannot start or reach Ray (address={address!r}): {err}"
                ) from None
            self.ray_started = True
        self.ray = ray


def _check_reachable(address: str) -> None:
    """A ``host:port`` (or ``ray://host:port``) address must accept a connection within 10 s;
    Ray itself retries an unreachable one for minutes before it gives up."""
    import socket

    m = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)", address)
    if m is None:  # "auto", or a form Ray resolves itself
        return
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=10).close()
    except OSError as err:
        raise SweepError(
            f"cannot reach the Ray cluster at address={address!r}: {err.strerror or err}"
        ) from None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# -------------------------------------------------------------------------------------- tables
def _metric(final: Mapping[str, Any], path: str) -> float | None:
    v: Any = final
    for part in path.split("."):
        if not isinstance(v, Mapping) or part not in v:
            return None
        v = v[part]
    return float(v) if isinstance(v, int | float) else None


def _previous_walls(spec: SweepSpec) -> tuple[dict[str, float], dict[str, float]]:
    """The wall times of the points' runs in both phases, as the last table recorded them."""
    try:
        old = json.loads(spec.results.with_suffix(".json").read_text())
        walls = {r["name"]: r["wall_s"] for r in old["points"] if r.get("wall_s") is not None}
        walls2 = {
            r["name"]: r["phase2"]["wall_s"]
            for r in old["points"]
            if r.get("phase2", {}).get("wall_s") is not None
        }
        return walls, walls2
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return {}, {}


def _rows(
    spec: SweepSpec,
    finals: Mapping[str, Mapping[str, Any]],
    errors: Mapping[str, str],
    walls: Mapping[str, float],
    evaluated: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    rows = []
    metrics = (spec.select, *spec.report)
    for p in spec.points:
        final = finals.get(p.name)
        status = "done" if final is not None else "failed" if p.name in errors else "pending"
        row: dict[str, Any] = {"name": p.name, "status": status, "settings": dict(p.settings)}
        if final is not None:
            row["step"] = final.get("step")
            row["metrics"] = {m: _metric(final, m) for m in metrics}
        else:
            trained = _trained_step(Path(p.config["run_dir"]))
            if trained:
                row["trained_step"] = trained  # how far an unfinished run got
        if p.name in errors:
            row["error"] = errors[p.name]
        row["wall_s"] = round(walls[p.name], 2) if p.name in walls else None
        outcome = (evaluated or {}).get(p.name)
        if outcome is not None:  # phase 2
            wall = outcome.get("wall_s")
            row["phase2"] = {
                "status": "failed" if "error" in outcome else "done",
                "wall_s": None if wall is None else round(wall, 2),
            }
            if "error" in outcome:
                row["phase2"]["error"] = outcome["error"]
            else:
                row["phase2"]["metrics"] = {m: _metric(outcome["final"], m) for m in metrics}
        rows.append(row)
    return rows


def _trained_step(run: Path) -> int | None:
    """The step of the last row of an unfinished run's ``metrics.jsonl`` (none: ``None``)."""
    try:
        with open(run / "metrics.jsonl", "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            last = fh.read().splitlines()[-1]
        return int(json.loads(last)["step"])
    except (OSError, IndexError, ValueError, KeyError, TypeError):
        return None


def table(spec: SweepSpec, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per group (the values of ``group_by``, in the order of the points): the setting (shown by
    the keys that vary within the group) with the
    lowest mean ``select`` over its seeds among those whose every seed finished, the names of
    its points (``runs``), its mean ``report`` metrics, and the counts of the group's points
    (total, done, failed). With a ``[final]`` table the ``report`` metrics are phase 2's (means
    over the selected setting's seeds once each has its phase-2 row, else ``None``), phase 1's
    are under ``phase1``, and ``phase2_done`` counts the selected points evaluated."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        key = tuple(row["settings"].get(k, _base(spec, row, k)) for k in spec.group_by)
        groups.setdefault(key, []).append(row)
    out = []
    for key, members in groups.items():
        settings: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
        for row in members:
            s = tuple((k, v) for k, v in row["settings"].items() if k != "seed")
            settings.setdefault(s, []).append(row)
        best: tuple[float, tuple[Any, ...], list[Mapping[str, Any]]] | None = None
        for s, runs in settings.items():
            scores = [r.get("metrics", {}).get(spec.select) for r in runs]
            if any(r["status"] != "done" for r in runs) or None in scores:
                continue
            score = sum(scores) / len(scores)  # type: ignore[arg-type]
            if math.isfinite(score) and (best is None or score < best[0]):
                best = (score, s, runs)
        entry: dict[str, Any] = {
            "group": dict(zip(spec.group_by, key, strict=True)),
            "points": len(members),
            "done": sum(r["status"] == "done" for r in members),
            "failed": sum(r["status"] == "failed" for r in members),
            "settings_complete": sum(
                all(r["status"] == "done" for r in runs) for runs in settings.values()
            ),
            "settings": len(settings),
        }
        if best is not None:
            score, s, runs = best
            varying = {k for k, _ in s if len({dict(t).get(k) for t in settings}) > 1}
            entry["selected"] = {k: v for k, v in s if k in varying}
            entry["runs"] = [r["name"] for r in runs]
            entry["seeds"] = len(runs)
            entry["step"] = min(r.get("step") or 0 for r in runs)
            entry[spec.select] = score
            means = {m: _mean([r["metrics"][m] for r in runs]) for m in spec.report}
            if spec.final:
                phase2 = [r.get("phase2", {}) for r in runs]
                done = [e for e in phase2 if e.get("status") == "done"]
                entry["phase2_done"] = len(done)
                entry["phase1"] = means
                means = {
                    m: _mean([e["metrics"][m] for e in done]) if len(done) == len(runs) else None
                    for m in spec.report
                }
            entry.update(means)
        out.append(entry)
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    return None if None in values else sum(values) / len(values)  # type: ignore[arg-type]


def _base(spec: SweepSpec, row: Mapping[str, Any], key: str) -> Any:
    point = next(p for p in spec.points if p.name == row["name"])
    return point.config[key]


def write_tables(
    spec: SweepSpec,
    finals: Mapping[str, Mapping[str, Any]],
    errors: Mapping[str, str],
    walls: Mapping[str, float],
    *,
    evaluated: Mapping[str, Mapping[str, Any]] | None = None,
    session: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``<results>.json`` and ``<results>.md`` (atomically) from the runs' final records;
    ``evaluated``: phase 2's outcome per point name (``{"final": record}`` or ``{"error":
    message}``, and ``"wall_s"``); ``session``: the last session's engine, jobs, and wall time
    against its runs' own."""
    rows = _rows(spec, finals, errors, walls, evaluated)
    groups = table(spec, rows)
    doc = {
        "title": spec.title,
        "experiment": spec.experiment.name,
        "spec": str(spec.path),
        "group_by": list(spec.group_by),
        "select": spec.select,
        "report": list(spec.report),
        "final": dict(spec.final),
        "points_total": len(rows),
        "points_done": sum(r["status"] == "done" for r in rows),
        "points_failed": sum(r["status"] == "failed" for r in rows),
        "groups": groups,
        "points": rows,
    }
    if session is not None:
        doc["last_session"] = dict(session)
    json_path = spec.results.with_suffix(".json")
    md_path = spec.results.with_suffix(".md")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(doc, json_path)
    write_atomic(md_path, render_markdown(spec, doc))
    return json_path, md_path


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) >= 0.01 else f"{v:.3g}"
    return str(v)


def render_markdown(spec: SweepSpec, doc: Mapping[str, Any]) -> str:
    """The table of ``doc`` (what :func:`write_tables` writes to JSON) as markdown."""
    metrics = [spec.select, *spec.report]
    two = bool(spec.final)
    intro = (
        f"Sweep of `{spec.experiment.name}` from `{spec.path.name}`: "
        f"{doc['points_done']} of {doc['points_total']} grid points run"
        + (f", {doc['points_failed']} failed" if doc["points_failed"] else "")
        + f". Per group the setting with the lowest `{spec.select}` (mean over its seeds) among "
        "the settings whose runs all finished; `points run` counts the group's finished points."
    )
    if two:
        first = spec.points[0].config if spec.points else {}
        cheap = ", ".join(f"{k}={_show(first.get(k))}" for k in spec.final)
        intro += (
            f" Two phases: phase 1 ran every point with its own final evaluation ({cheap}) and "
            f"selected on its `{spec.select}`; phase 2 evaluated each selected point again on "
            f"its trained weights with [final] {_overrides(spec)} (run directories "
            f"`{_FINAL_DIR}/<run>`), and the reported "
            + ", ".join(f"`{m}`" for m in spec.report)
            + " are phase 2's; `phase 2` counts the selected points evaluated."
        )
    head = [*spec.group_by, "selected", f"{spec.select} (phase 1)" if two else spec.select]
    head += [f"{m} (phase 2)" if two else m for m in spec.report]
    head += ["points run", *(["phase 2"] if two else [])]
    lines = [
        f"# {spec.title}",
        "",
        intro,
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for g in doc["groups"]:
        sel = g.get("selected")
        shown = (
            "—"
            if sel is None
            else ", ".join(f"{k}={_show(v)}" for k, v in sel.items()) or "the only one"
        )
        cells = [*(_fmt(v) for v in g["group"].values()), shown]
        cells += [_fmt(g.get(m)) for m in metrics]
        cells.append(
            f"{g['done']}/{g['points']}" + (f" ({g['failed']} failed)" if g["failed"] else "")
        )
        if two:
            cells.append("—" if sel is None else f"{g['phase2_done']}/{g['seeds']}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Every point", "", "| run | status | " + " | ".join(metrics) + " | wall (s) |"]
    lines.append("|" + "---|" * (len(metrics) + 3))
    for r in doc["points"]:
        values = r.get("metrics", {})
        status = r["status"]
        if "trained_step" in r:
            status += f" (trained to step {r['trained_step']})"
        cells = [f"`{r['name']}`", status, *(_fmt(values.get(m)) for m in metrics)]
        cells.append(_fmt(r["wall_s"]))
        lines.append("| " + " | ".join(cells) + " |")
    evaluated = [r for r in doc["points"] if "phase2" in r]
    if two and evaluated:
        lines += ["", f"## Phase 2 ([final] {_overrides(spec)})", ""]
        lines.append("| run | status | " + " | ".join(metrics) + " | wall (s) |")
        lines.append("|" + "---|" * (len(metrics) + 3))
        for r in evaluated:
            e = r["phase2"]
            values = e.get("metrics", {})
            cells = [f"`{_FINAL_DIR}/{r['name']}`", e["status"]]
            cells += [_fmt(values.get(m)) for m in metrics] + [_fmt(e.get("wall_s"))]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``gumbel-softmax sweep``."""
    parser.add_argument(
        "spec", metavar="SPEC.toml", help="the sweep spec (format: gumbel_softmax.lab.sweep)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="runs at once: local worker processes, each with cores // N torch threads (default: 1)",
    )
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="'local' worker processes, or tasks on a Ray cluster (the ray extra) (default: local)",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="with --engine ray: the cluster to join, e.g. 'auto' or 'ray://host:10001' "
        "(default: start a local instance with N * threads CPUs)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a base config field for every point (repeatable), e.g. --set "
        "max_steps=1000 --set data_dir=/data",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="list the points and which are finished; run nothing, write nothing",
    )
    mode.add_argument(
        "--render",
        action="store_true",
        help="write the table from the finished runs on disk; run nothing",
    )
