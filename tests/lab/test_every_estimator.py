"""Every registered estimator trains in every lab experiment, for every latent type it supports.

Two registries drive the cases, so that a new estimator or a new experiment is covered without
editing this file: ``estimators.available()`` with each class's declared capabilities
(``binary_only``, ``temperature_kind``, ``min_temperature``, ``max_states``), and the lab's
experiments, :data:`gumbel_softmax.lab.experiments.EXPERIMENTS`, each with its declared tiny
configuration (``tiny``: a tiny VAE with hidden 64-32, a tiny two-layer SBN, M2 with conv nets
of 2-4 channels, 16-unit LSTMs on the GAN's synthetic oracle), what it builds before its first
step (``initial``), the training metric that shows it learning (``learns``) and whether it anneals
the temperature (``anneals``). A case is an (experiment, estimator, latent) whose configuration
the experiment's own validation accepts: it refuses what does not apply (a binary-only estimator
with K = 10, a multi-sample bound in the SBN, an estimator that evaluates f more than once in the
GAN, a joint state space beyond the declared ``max_states``), and
:func:`test_the_cases_cover_the_registry` checks those refusals against the capabilities.
Latents: 4 categorical variables of K = 10 or 8 bits (4 bits for an estimator that evaluates
every state); the label (K = 10) in M2; a token sequence in the GAN.

Each case is a short run through the CLI (``cli.main([...])``), 24 steps, and checks that

* the loss is finite and falls (a one-sided two-sample z-test on the per-step losses of the
  first and last eight steps), or for ``learns_below`` ends below that value;
* every learnable parameter of the model and of the estimator is in the optimiser, received a
  gradient (Adam's first moment is non-zero) and changed (against the initial state that the
  same config builds);
* the temperature: follows the config's schedule (and is logged) for ``"scheduled"`` estimators
  where the experiment ``anneals`` and stays at ``tau0`` elsewhere (the SBN: the paper's fixed
  temperature), except for an estimator declaring ``annealed``, which follows the experiment's
  own schedule there (the SBN's slope annealing of slope-annealed ST), stays at ``tau0`` for ``"fixed"``, is learned from ``tau0`` for ``"learned"``, is
  absent otherwise;
* kill-and-resume is bit-identical: a run stopped at step 13, its last checkpoint lost (as if
  killed before writing it) and a metrics row half written, then run again, ends with the same
  metrics, final record and weights as an uninterrupted run.

Then one test per lab-side bug of issue 9, each of which the old lab fails.

Runs use one torch thread and read the subset once. On the shared two-core test machine, torch's
default two threads made these tiny runs 5 to 30 times slower than one thread; with one, each case
(three CLI sessions, 24 + 24 steps) takes about a second.
"""

from __future__ import annotations

import json
import math
import statistics
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.conftest import cli_argv

from gumbel_softmax import estimators
from gumbel_softmax.lab import cli, experiment, runner
from gumbel_softmax.lab.checkpoint import load_checkpoint
from gumbel_softmax.lab.config import ConfigError
from gumbel_softmax.lab.experiments import EXPERIMENTS
from gumbel_softmax.lab.records import read_metrics
from gumbel_softmax.testing import normal_quantile

STEPS = 24
KILLED_AT = 13  # stopped here; its checkpoint is deleted, so the resume starts from step 8
WINDOW = 8  # steps compared at the start and at the end
FALSE_ALARM = 1e-3
# the run's cadence: a row every step, two evaluations, checkpoints at 8, 16, 24 (and 13)
CADENCE = {
    "max_steps": STEPS, "log_every": 1, "eval_every": 12, "checkpoint_every": 8,
    "figures": False, "progress": False,
}  # fmt: skip


def _n_latent(name: str, latent: str) -> int:
    """N: 4 categorical variables (K = 10) or 8 bits; 4 bits for an estimator that evaluates
    every joint state (``draws = "every-state"``), whose step costs K**N decoder passes."""
    if latent == "categorical":
        return 4
    return 4 if estimators.estimator_class(name).draws == "every-state" else 8


def _temperatures(name: str) -> tuple[float, float]:
    """(tau0, tau_min) the estimator accepts: the floor at its smallest temperature (or 0.5)."""
    low = max(0.5, estimators.estimator_class(name).min_temperature)
    return 2 * low, low


def _fields(exp: str, name: str, latent: str | None) -> dict[str, Any]:
    """The config fields of a case: the experiment's tiny configuration, the estimator with its
    temperatures, the latent (where the experiment has a choice of latent) and the cadence."""
    tau0, tau_min = _temperatures(name)
    fields: dict[str, Any] = {**EXPERIMENTS[exp].tiny, "estimator": name, "tau0": tau0}
    if EXPERIMENTS[exp].anneals:
        fields["tau_min"] = tau_min
    if latent is not None:
        fields.update(latent=latent, n_latent=_n_latent(name, latent))
    return {**fields, **CADENCE}


def _latents(exp: str) -> tuple[str | None, ...]:
    return EXPERIMENTS[exp].choices.get("latent", (None,))


def _applies(exp: str, name: str, latent: str | None) -> bool:
    """Whether the experiment's own validation accepts the case."""
    try:
        EXPERIMENTS[exp].config.from_dict(_fields(exp, name, latent))
    except ConfigError:
        return False
    return True


CASES = [
    (exp, name, latent)
    for exp in EXPERIMENTS
    for name in estimators.available()
    for latent in _latents(exp)
    if _applies(exp, name, latent)
]


def _argv(name: str, latent: str | None, run_dir: Path, *more: str, exp: str = "vae") -> list[str]:
    """The command line of a case: ``gumbel-softmax <exp> --field value ...``."""
    return [*cli_argv(exp, {**_fields(exp, name, latent), "run_dir": run_dir}), *more]


def _config(argv: list[str]):
    return cli.config_from_args(cli.build_parser().parse_args(argv))


@pytest.fixture(scope="module", autouse=True)
def _one_thread_and_the_subset_read_once():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    read = cache(lambda dataset: runner.load_splits(experiment.VAEConfig(dataset=dataset)))
    read(EXPERIMENTS["vae"].tiny["dataset"])
    with pytest.MonkeyPatch.context() as mp:  # every experiment loads through the runner's
        mp.setattr(runner, "load_splits", lambda config: read(config.dataset))
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return _Runs(tmp_path_factory.mktemp("every-estimator"))


class _Runs:
    """The runs of each case, made once and shared by the tests that read them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: set[tuple[str, str, str | None, str]] = set()

    def whole(self, name: str, latent: str | None, exp: str = "vae") -> Path:
        run = self.root / f"{_id(exp, name, latent)}-whole"
        if (exp, name, latent, "whole") not in self.done:
            assert cli.main(_argv(name, latent, run, exp=exp)) == 0
            self.done.add((exp, name, latent, "whole"))
        return run

    def resumed(self, name: str, latent: str | None, exp: str = "vae") -> Path:
        run = self.root / f"{_id(exp, name, latent)}-resumed"
        if (exp, name, latent, "resumed") not in self.done:
            more = ("--max-steps", str(KILLED_AT))
            assert cli.main(_argv(name, latent, run, *more, exp=exp)) == 0
            # Killed after step 13's rows were written but before its checkpoint and the final
            # evaluation were: only checkpoint-8 survives, plus a row cut mid-line.
            (run / "checkpoints" / f"checkpoint-{KILLED_AT}.pt").unlink()
            (run / "final.json").unlink()
            with open(run / "metrics.jsonl", "a") as fh:
                fh.write('{"kind": "train", "step": 14, "lo')
            assert cli.main(_argv(name, latent, run, exp=exp)) == 0
            self.done.add((exp, name, latent, "resumed"))
        return run


def _id(exp: str, name: str, latent: str | None) -> str:
    return f"{exp}-{name}" + (f"-{latent}" if latent else "")


def _metric(final: dict, name: str) -> Any:
    """``final.json``'s entry ``"split.metric"`` (or a flat ``"metric"``), None if absent."""
    for key in name.split("."):
        final = final.get(key) if isinstance(final, dict) else None
    return final


def _numbers(record: Any) -> list[float]:
    """Every number in a JSON record."""
    if isinstance(record, dict):
        return [x for v in record.values() for x in _numbers(v)]
    if isinstance(record, list):
        return [x for v in record for x in _numbers(v)]
    return [float(record)] if isinstance(record, (int, float)) and record is not True else []


def _final_checkpoint(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / f"checkpoint-{STEPS}.pt")


def _train_rows(run: Path) -> list[dict]:
    return [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]


def _assert_same_tensors(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


# --------------------------------------------------------------------------- the registry
@pytest.mark.parametrize(("exp", "name", "latent"), CASES, ids=[_id(*c) for c in CASES])
def test_every_estimator_trains_on_every_latent_it_supports(runs, exp, name, latent):
    cls = estimators.estimator_class(name)
    run = runs.whole(name, latent, exp)
    rows = _train_rows(run)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))

    # The loss is finite and falls. H0: the first and last WINDOW steps' losses have one mean;
    # reject it one-sided at FALSE_ALARM with Welch's statistic. The fall inside the first
    # window inflates its spread, which only makes the test stricter. Measured: z >= 13 for
    # every case (the loss falls from about 525 to 260-310 nats), so a working estimator passes
    # with all but negligible probability, and one that does not train fails.
    spec = EXPERIMENTS[exp]
    losses = [r[spec.learns] for r in rows]
    assert all(math.isfinite(v) for v in losses), losses
    first, last = losses[:WINDOW], losses[-WINDOW:]
    if spec.learns_below is not None:
        # E.g. a GAN: the sum of the players' losses need not fall; the discriminator learns
        # instead. Every logit d has softplus(-d) + softplus(d) >= log 4, so a discriminator
        # whose outputs do not depend on real vs fake has an expected loss >= log 4 (H0); reject
        # it one-sided at FALSE_ALARM with the last WINDOW steps' mean and spread. Measured:
        # z >= 14 for every GAN case.
        bound = spec.learns_below
        z = (bound - statistics.mean(last)) / (statistics.stdev(last) / math.sqrt(WINDOW))
    else:
        z = (statistics.mean(first) - statistics.mean(last)) / math.sqrt(
            (statistics.variance(first) + statistics.variance(last)) / WINDOW
        )
    assert z > normal_quantile(1 - FALSE_ALARM), (z, first, last)
    final = json.loads((run / "final.json").read_text())
    assert all(math.isfinite(v) for v in _numbers(final)), final
    assert _metric(final, spec.select) is not None  # what a sweep selects on is there

    # Every learnable parameter is trained: in the optimiser, with a gradient, and moved.
    config = _config(_argv(name, latent, run, exp=exp))
    model0, estimator0 = spec.initial(config)
    named = [("model", k, p) for k, p in model0.named_parameters()]
    named += [("estimator", k, p) for k, p in estimator0.named_parameters()]
    ck = _final_checkpoint(run)
    assert ck["step"] == STEPS
    indices = [i for group in ck["optimizer"]["param_groups"] for i in group["params"]]
    assert len(indices) == len(named)  # nothing learnable left out of the optimiser
    for index, (owner, key, initial) in zip(indices, named, strict=True):
        moment = ck["optimizer"]["state"][index]["exp_avg"]
        assert moment.abs().sum() > 0, f"{owner}.{key} received no gradient"
        assert not torch.equal(ck["modules"][owner][key], initial), f"{owner}.{key} did not change"

    # The temperature, per the declared kind.
    logged = [r["temperature"] for r in rows]
    tau0, _ = _temperatures(name)
    if cls.temperature_kind == "scheduled" and not spec.anneals and cls.annealed:
        # the SBN anneals slope-annealed ST alone, by its own schedule of the run's epochs
        schedule = config.schedule(json.loads((run / "run.json").read_text())["steps_per_epoch"])
        assert logged == [schedule(s - 1) for s in range(1, STEPS + 1)]
        assert logged[0] == tau0 and len(set(logged)) == STEPS  # it rises at every step
    elif cls.temperature_kind == "scheduled" and not spec.anneals:
        assert logged == [tau0] * STEPS  # e.g. the paper's SBN keeps tau fixed
    elif cls.temperature_kind == "scheduled":
        schedule = config.schedule()
        assert logged == [schedule(s - 1) for s in range(1, STEPS + 1)]  # the step's value
        assert len(set(logged)) >= 3  # it anneals: 2 tau_min -> tau_min in this run
    elif cls.temperature_kind == "fixed":
        assert logged == [tau0] * STEPS
    elif cls.temperature_kind == "learned":
        assert logged[0] == pytest.approx(tau0, rel=1e-6) and len(set(logged)) > 1
    else:
        assert logged == [None] * STEPS

    # Kill and resume: the same rows, bounds and weights as the uninterrupted run, bit for bit.
    resumed = runs.resumed(name, latent, exp)
    sessions = json.loads((resumed / "run.json").read_text())["sessions"]
    assert [s["resumed_from_step"] for s in sessions] == [0, 8]
    assert read_metrics(resumed / "metrics.jsonl") == read_metrics(run / "metrics.jsonl")
    assert json.loads((resumed / "final.json").read_text()) == final
    again = _final_checkpoint(resumed)
    for part in ("modules", "optimizer", "generator", "window", "lr_schedule"):
        _assert_same_tensors(again[part], ck[part], part)


def test_the_cases_cover_the_registry():
    """The experiments' validation refuses exactly what the estimators' declarations rule out:
    each registered estimator has a Bernoulli case in the VAE and the SBN, and a categorical one
    unless binary-only, each where its state space fits the declared ``max_states``, none in the
    SBN for a ``multi_sample_bound`` estimator; in the GAN every ``single_evaluation`` one that is
    not binary-only. Every experiment has cases and is a command of the CLI."""
    names = estimators.available()
    assert {n for _, n, _ in CASES} == set(names) and len(names) >= 17
    commands = cli.build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(EXPERIMENTS) == set(commands) - {"data", "sweep"}
    for exp in EXPERIMENTS:
        assert sum(e == exp for e, _, _ in CASES) >= 5, exp  # a tiny config that validates

    def fits(name: str, latent: str) -> bool:
        limit = estimators.estimator_class(name).max_states
        k = 10 if latent == "categorical" else 2
        return limit is None or k ** _n_latent(name, latent) <= limit

    for n in names:
        cls = estimators.estimator_class(n)
        for exp in ("vae", "sbn"):
            applies = not (exp == "sbn" and cls.multi_sample_bound)
            assert ((exp, n, "bernoulli") in CASES) == (applies and fits(n, "bernoulli"))
            categorical = applies and not cls.binary_only and fits(n, "categorical")
            assert ((exp, n, "categorical") in CASES) == categorical
        sequential = cls.single_evaluation and not cls.binary_only
        assert (("gan", n, None) in CASES) == sequential, n
    semi = {n for e, n, _ in CASES if e == "semisup"}
    assert semi == set(names) - {"arm", "disarm", "vimco"} and "exact" in semi
    assert ("vae", "exact", "bernoulli") in CASES and ("vae", "exact", "categorical") not in CASES
    assert ("vae", "vimco", "categorical") in CASES and ("sbn", "vimco", "bernoulli") not in CASES
    assert {n for e, n, _ in CASES if e == "gan"} >= {"gs", "st-gs", "sf", "sf-ema", "nvil"}


# --------------------------------------------------------------------------- issue 9's lab bugs
def test_st_annealed_follows_the_schedule_and_st_keeps_its_temperature(runs):
    # The old lab never annealed st-annealed (its slope stayed 1) and annealed plain st.
    config = _config(_argv("st-annealed", "categorical", runs.root))
    annealed = [r["temperature"] for r in _train_rows(runs.whole("st-annealed", "categorical"))]
    plain = [r["temperature"] for r in _train_rows(runs.whole("st", "categorical"))]
    assert annealed == [config.schedule()(s) for s in range(STEPS)]
    assert annealed[0] == 1.0 and annealed[-1] == 0.5
    assert plain == [1.0] * STEPS


@pytest.mark.parametrize("name", ["nvil", "relax"])
def test_the_networks_of_nvil_and_relax_are_trained(runs, name):
    # The old lab built them lazily, after the optimiser: their output weights stayed 0.
    run = runs.whole(name, "categorical")
    config = _config(_argv(name, "categorical", run))
    initial = experiment.build_estimator(config).state_dict()
    trained = _final_checkpoint(run)["modules"]["estimator"]
    weights = [
        k for k, v in initial.items() if k.endswith("weight") and isinstance(v, torch.Tensor)
    ]
    assert weights  # the networks exist before the first step
    for k in weights:
        assert not torch.equal(trained[k], initial[k]), k


@pytest.mark.parametrize("name", ["nvil", "relax"])
def test_nvil_and_relax_resume(runs, name):
    # The old lab crashed: Unexpected key(s) in state_dict: "baseline.hidden.weight".
    resumed = runs.resumed(name, "categorical")
    whole = runs.whole(name, "categorical")
    assert json.loads((resumed / "final.json").read_text()) == json.loads(
        (whole / "final.json").read_text()
    )
    _assert_same_tensors(
        _final_checkpoint(resumed)["modules"], _final_checkpoint(whole)["modules"], "modules"
    )


def test_reinmax_with_the_default_annealing_is_refused_before_any_file_is_written(tmp_path, capsys):
    # The old lab accepted it and raised mid-run, when the schedule went below 1.
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["vae", "--estimator", "reinmax", "--run-dir", str(run), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "gumbel-softmax: error: " in err and "'reinmax'" in err and "temperature" in err
    assert "tau_min=0.5" in err and "Traceback" not in err
    assert not run.exists()


def test_nvil_scales_the_kl_gradient_to_the_logits_by_its_normalisation(runs):
    # The old lab scaled only NVIL's score-function term, so the analytic KL dominated the
    # encoder's gradient and the posterior collapsed. One step of the trained run, checked
    # directly: the KL's gradient to the logits is logits_scale times the plain one.
    run = runs.whole("nvil", "categorical")
    config = _config(_argv("nvil", "categorical", run))
    model, estimator = experiment.build_model(config), experiment.build_estimator(config)
    state = _final_checkpoint(run)["modules"]
    model.load_state_dict(state["model"])
    estimator.load_state_dict(state["estimator"])
    x = torch.as_tensor(experiment.load_splits(config).train[:50], dtype=torch.float32)
    logits = model.encode(x).detach().requires_grad_()
    model.encode = lambda x: logits  # type: ignore[method-assign]
    g = torch.Generator().manual_seed(1)
    loss, kl, result = experiment.vae_objective(model, estimator, x, generator=g)
    assert 0 < result.logits_scale < 0.5  # the normalisation is on, and it matters
    (through_kl,) = torch.autograd.grad(kl.mean(), logits, retain_graph=True)
    (unscaled,) = torch.autograd.grad(model.kl(logits).mean(), logits)
    torch.testing.assert_close(through_kl, result.logits_scale * unscaled, rtol=1e-6, atol=0)
    assert torch.equal(kl.detach(), model.kl(logits).detach())  # its value is unchanged
    assert torch.isfinite(loss)
