"""``gumbel-softmax sweep``: the spec and its errors, the run names, the selection table, and
sweeps that run (worker processes and Ray) to the same results as the runs alone."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import torch

from gumbel_softmax.lab import cli, experiment, sweep
from gumbel_softmax.lab.config import ConfigError, VAEConfig
from gumbel_softmax.lab.experiments import EXPERIMENTS

# A tiny VAE on the shipped subset: a few steps and a cheap evaluation.
TINY = {
    "hidden": "8",
    "n_latent": 3,
    "n_classes": 4,
    "max_steps": 4,
    "batch_size": 50,
    "eval_samples": 2,
    "eval_samples_during": 2,
    "eval_images": 20,
    "test_images": 20,
    "eval_every": 2,
    "checkpoint_every": 2,
    "figures": False,
}


def _spec(tmp_path: Path, body: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def _base() -> str:
    return "[base]\n" + "".join(f"{k} = {json.dumps(v).lower()}\n" for k, v in TINY.items())


def test_the_grid_is_the_union_of_its_blocks_in_order_and_names_are_readable(tmp_path):
    path = _spec(
        tmp_path,
        'experiment = "vae"\nseeds = [0, 1]\n'
        + _base()
        + '[[grid]]\nestimator = ["sf", "darn"]\nnormalize = true\nlr = [1e-3, 3e-4]\n'
        + '[[grid]]\nestimator = "gs"\nanneal_rate = [1e-4]\n'
        + '[[grid]]\nestimator = "sf"\nnormalize = true\nlr = 1e-3\n',  # a duplicate point
    )
    spec = sweep.load_spec(path)
    names = [p.name for p in spec.points]
    assert names[:3] == [
        "estimator=sf,normalize=true,lr=0.001,seed=0",
        "estimator=sf,normalize=true,lr=0.001,seed=1",
        "estimator=sf,normalize=true,lr=0.0003,seed=0",
    ]
    assert names[-2:] == [
        "estimator=gs,anneal_rate=0.0001,seed=0",
        "estimator=gs,anneal_rate=0.0001,seed=1",
    ]
    assert len(names) == len(set(names)) == 2 * 2 * 2 + 2  # the duplicate counted once
    first = spec.points[0]
    assert first.config["run_dir"] == str(tmp_path / "runs" / "s" / first.name)
    assert first.config["progress"] is False and first.config["hidden"] == "8"
    assert first.setting == (("estimator", "sf"), ("normalize", True), ("lr", 0.001))
    assert spec.select == "valid.neg_elbo" and spec.report == ("test.neg_elbo", "test.iw_bound")
    # --set overrides the base for every point, a TOML value or a bare string
    more = sweep.load_spec(path, overrides=["max_steps=7", "data_dir=/some/where"])
    assert {p.config["max_steps"] for p in more.points} == {7}
    assert more.points[0].config["data_dir"] == "/some/where"
    # a Bernoulli point takes the config's own defaults (200 bits) unless the spec says otherwise
    bern = sweep.parse_spec({"experiment": "vae", "grid": {"latent": "bernoulli"}}, path=path)
    assert bern.points[0].config["n_latent"] == 200


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('experiment = "vae"\nepochs = 3\n', r"unknown key\(s\) \['epochs'\]"),
        ('experiment = "gan9"\n', r"experiment must be one of \[('\w+', )+'\w+'\], got 'gan9'"),
        ("[base]\nlr = 1e-3\n", "experiment is missing"),
        (
            'experiment = "vae"\n[base]\nhiden = "8"\n',
            r"base has unknown config key\(s\) \['hiden'\]",
        ),
        (
            'experiment = "vae"\n[grid]\nlr = [1e-3, -1.0]\n',
            r"point \(lr=-1.0\).*lr must be positive",
        ),
        ('experiment = "vae"\n[grid]\nestimator = ["gs", "nope"]\n', r"estimator must be one of"),
        ('experiment = "vae"\n[grid]\nrun_dir = ["a"]\n', r"sets \['run_dir'\]"),
        ('experiment = "vae"\n[grid]\nlr = []\n', r"empty value lists for \['lr'\]"),
        ('experiment = "vae"\nselect = "valid.nll"\n', r"metric 'valid.nll' is not one of vae's"),
        ('experiment = "vae"\ngroup_by = ["estimatr"]\n', r"group_by has unknown config key"),
        (
            'experiment = "vae"\nseeds = [0]\n[grid]\nseed = [1]\n',
            "either as seeds or in base/grid",
        ),
        ('experiment = "vae"\nseeds = []\n', "seeds must be a non-empty list"),
        ('experiment = "sbn"\n[grid]\nestimator = "vimco"\n', "multi-sample bound"),
    ],
)
def test_a_bad_spec_is_a_config_error_naming_the_culprit(tmp_path, body, match):
    with pytest.raises(ConfigError, match=match):
        sweep.load_spec(_spec(tmp_path, body))


def test_a_bad_spec_or_option_exits_2_before_any_run(tmp_path, capsys):
    path = _spec(tmp_path, 'experiment = "vae"\n[grid]\nlr = [1e-3, 0.0]\n')
    for argv in (["sweep", str(path)], ["sweep", str(tmp_path / "missing.toml")]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        assert "gumbel-softmax: error: " in capsys.readouterr().err
    good = _spec(tmp_path, 'experiment = "vae"\n', "good.toml")
    for argv, match in (
        (["--jobs", "0"], "jobs must be an int >= 1, got 0"),
        (["--address", "auto"], "needs engine='ray'"),
        (["--set", "lr"], "--set takes KEY=VALUE"),
    ):
        with pytest.raises(SystemExit):
            cli.main(["sweep", str(good), *argv])
        assert match in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def _row(name, settings, status="done", valid=None, test=None):
    row = {"name": name, "status": status, "settings": settings}
    if status == "done":
        row["metrics"] = {"valid.neg_elbo": valid, "test.neg_elbo": test, "test.iw_bound": test}
    return row


def test_selection_takes_the_lowest_mean_over_seeds_of_complete_settings(tmp_path):
    path = _spec(tmp_path, "")
    spec = sweep.parse_spec(
        {
            "experiment": "vae",
            "seeds": [0, 1],
            "group_by": ["estimator"],
            "grid": {"estimator": ["gs"], "lr": [1e-3, 3e-4, 1e-4]},
        },
        path=path,
    )
    rows = [
        _row("a0", {"estimator": "gs", "lr": 1e-3, "seed": 0}, valid=100.0, test=99.0),
        _row("a1", {"estimator": "gs", "lr": 1e-3, "seed": 1}, valid=104.0, test=103.0),  # mean 102
        _row("b0", {"estimator": "gs", "lr": 3e-4, "seed": 0}, valid=101.0, test=98.0),
        _row("b1", {"estimator": "gs", "lr": 3e-4, "seed": 1}, valid=102.0, test=97.0),  # 101.5
        _row("c0", {"estimator": "gs", "lr": 1e-4, "seed": 0}, valid=90.0, test=90.0),  # lowest,
        _row("c1", {"estimator": "gs", "lr": 1e-4, "seed": 1}, status="failed"),  # incomplete
    ]
    for r, p in zip(rows, spec.points, strict=True):
        r["name"] = p.name
    (group,) = sweep.table(spec, rows)
    assert group["group"] == {"estimator": "gs"} and group["selected"] == {"lr": 3e-4}
    assert group["valid.neg_elbo"] == 101.5 and group["test.neg_elbo"] == 97.5
    assert (group["points"], group["done"], group["failed"], group["seeds"]) == (6, 5, 1, 2)
    assert group["settings_complete"] == 2 and group["settings"] == 3


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """A three-point sweep on two worker processes: two runs, and one whose run directory is a
    file (it fails, and the others go on); then phase 2 evaluates the two again with m = 3."""
    tmp = tmp_path_factory.mktemp("sweep")
    path = _spec(
        tmp,
        'experiment = "vae"\ngroup_by = ["estimator"]\n'
        + _base()
        + "[final]\neval_samples = 3\n"
        + '[[grid]]\nestimator = ["gs", "st"]\nlr = [1e-3]\n[[grid]]\nestimator = "sf"\n',
    )
    spec = sweep.load_spec(path)
    blocked = Path(spec.points[2].config["run_dir"])
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a run directory")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")  # one thread per run, as in the runs alone below
        result = sweep.run_sweep(spec, jobs=2, stream=out)
    return spec, result, out.getvalue()


def _finals(spec, phase=1):
    return {
        p.name: json.loads(
            (Path((p.config if phase == 1 else p.final)["run_dir"]) / "final.json").read_text()
        )
        for p in spec.points[:2]
    }


def test_a_local_sweep_runs_each_point_as_the_run_alone_and_tabulates_it(local_sweep, tmp_path):
    spec, result, log = local_sweep
    assert (result.done, result.failed, result.skipped) == (2, 1, 0)
    assert (result.final_done, result.final_failed) == (2, 0)  # the groups of the two runs
    # the last run's line (a group's phase 2 may be running beside it)
    assert re.search(r"2/3 done, [01] running, 1 failed; ETA 0 s", log)
    doc = json.loads(spec.results.with_suffix(".json").read_text())
    assert [r["status"] for r in doc["points"]] == ["done", "done", "failed"]
    assert "is a file, not a directory" in doc["points"][2]["error"]
    assert (doc["points_total"], doc["points_done"], doc["points_failed"]) == (3, 2, 1)
    md = spec.results.with_suffix(".md").read_text()
    assert "| gs | the only one |" in md and "0/1 (1 failed)" in md
    # each point is the run alone, to the bit: same config, one thread, this machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        point = spec.points[0]
        alone = experiment.main(
            VAEConfig.from_dict({**point.config, "run_dir": str(tmp_path / "alone")})
        )
    finally:
        torch.set_num_threads(threads)
    final = _finals(spec)[point.name]
    assert final["test"] == alone.test and final["valid"] == alone.valid
    assert doc["points"][0]["metrics"]["test.neg_elbo"] == alone.test["neg_elbo"]
    # the overhead the sweep adds: its wall time against its runs' own (two jobs at once)
    assert 0 < result.runs_wall_s and 0 < result.wall_s


def test_the_command_again_skips_finished_runs_resumes_the_rest_and_exits_1_on_failures(
    local_sweep, capsys, monkeypatch
):
    spec, _, _ = local_sweep
    before, before2 = _finals(spec), _finals(spec, 2)
    interrupted = Path(spec.points[1].config["run_dir"])
    (interrupted / "final.json").unlink()  # killed before its final evaluation was written
    json_path, md_path = sweep.write_tables(
        spec, {spec.points[0].name: before[spec.points[0].name]}, {}, {}
    )
    row = json.loads(json_path.read_text())["points"][1]
    assert row["status"] == "pending" and row["trained_step"] == 4  # how far it got
    assert "pending (trained to step 4)" in md_path.read_text()
    assert cli.main(["sweep", str(spec.path), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert f"{spec.points[0].name}: finished" in err and f"{spec.points[1].name}: to run" in err
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cli.main(["sweep", str(spec.path)]) == 1  # the blocked point fails again
    out = capsys.readouterr().out
    assert "2 of 3 points finished (1 already, 1 now), 1 failed" in out and "results.md" in out
    assert _finals(spec) == before  # resumed from its last checkpoint to the same result
    assert _finals(spec, 2) == before2 and "2 of 2 selected points evaluated (2 already" in out


def test_render_writes_the_table_from_the_runs_on_disk_and_runs_nothing(local_sweep, capsys):
    """``--render`` rebuilds both tables from the run directories alone (the table of a sweep
    stopped part way, or run from another spec sharing ``root``): the same groups and points,
    both phases, and no run starts."""
    spec, _, _ = local_sweep
    json_path = spec.results.with_suffix(".json")
    before = json.loads(json_path.read_text())
    json_path.unlink()
    spec.results.with_suffix(".md").unlink()
    runs = {p.name: sorted(Path(p.config["run_dir"]).rglob("*")) for p in spec.points[:2]}
    assert cli.main(["sweep", str(spec.path), "--render"]) == 0
    out = capsys.readouterr().out
    assert "the table of 2 of 3 finished points and 2 phase-2 evaluation(s), nothing run" in out
    after = json.loads(json_path.read_text())
    assert after["groups"][:2] == before["groups"][:2]  # the third: the failed point's group
    for old, new in zip(before["points"][:2], after["points"][:2], strict=True):
        assert (new["status"], new["metrics"], new["phase2"]["metrics"]) == (
            old["status"],
            old["metrics"],
            old["phase2"]["metrics"],
        )
    assert after["points"][2]["status"] == "pending"  # its error was this session's, not on disk
    assert {p.name: sorted(Path(p.config["run_dir"]).rglob("*")) for p in spec.points[:2]} == runs
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sweep", str(spec.path), "--render", "--dry-run"])
    assert exit_.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_a_ray_sweep_gives_the_local_results(local_sweep, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (make test installs it)")
    spec, _, _ = local_sweep
    copy = tmp_path / spec.path.name
    copy.write_text(spec.path.read_text())
    ray_spec = sweep.load_spec(copy)
    assert [p.name for p in ray_spec.points] == [p.name for p in spec.points]
    Path(ray_spec.points[2].config["run_dir"]).parent.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        result = sweep.run_sweep(ray_spec, jobs=2, engine="ray", stream=io.StringIO())
    assert (result.done, result.failed) == (3, 0)  # here the third run directory is free
    assert _finals(ray_spec) == _finals(spec)
    assert result.final_done == 3 and _finals(ray_spec, 2) == _finals(spec, 2)  # phase 2 too


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie nobody has reaped yet does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_killed_sweep_takes_its_workers_with_it(tmp_path):
    """``kill -9`` of the sweep ends the worker that is training its point within a second or
    two (runner.exit_with_parent); before, the worker trained on alone and a sweep started again
    found the run busy. The worker's pid is the one its run directory's lock names."""
    import os
    import signal
    import subprocess
    import sys
    import time

    fields = {**TINY, "max_steps": 100_000, "eval_every": 100_000, "checkpoint_every": 100_000}
    body = "[base]\n" + "".join(f"{k} = {json.dumps(v).lower()}\n" for k, v in fields.items())
    path = _spec(tmp_path, 'experiment = "vae"\n' + body + '[[grid]]\nestimator = "gs"\n')
    lock = Path(sweep.load_spec(path).points[0].config["run_dir"]) / ".lock"
    parent = subprocess.Popen(
        [sys.executable, "-m", "gumbel_softmax.lab.cli", "sweep", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text().strip()):  # the worker is training
            assert parent.poll() is None and time.monotonic() < deadline, "the run never started"
            time.sleep(0.1)
        worker = int(lock.read_text())
        assert worker != parent.pid and _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10  # 20 polls of the parent; the run itself needs hours
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the worker outlived its killed sweep"
    finally:
        parent.kill()
        if "worker" in locals() and _alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_every_registered_experiment_can_be_swept(tmp_path):
    for name, exp in EXPERIMENTS.items():
        spec = sweep.parse_spec({"experiment": name}, path=tmp_path / "x.toml")
        assert spec.select in exp.metrics and set(spec.report) <= set(exp.metrics)
        assert isinstance(spec.points[0].config, dict) and exp.config.from_dict(
            spec.points[0].config
        )


@pytest.mark.parametrize(
    ("path", "points", "first"),
    [
        (
            "benchmarks/vae/protocol.toml",
            336,
            "latent=categorical,estimator=darn,normalize=true,lr=0.003",
        ),
        (
            "benchmarks/sbn/protocol.toml",
            144,
            "latent=bernoulli,estimator=sf-ema,normalize=true,lr=0.003",
        ),
    ],
)
def test_the_committed_protocols_are_valid_specs(path, points, first):
    spec = sweep.load_spec(Path(__file__).resolve().parents[2] / path)
    assert len(spec.points) == points and spec.points[0].name == first
    lrs = {p.config["lr"] for p in spec.points}
    assert lrs == {3e-5, 1e-5, 3e-4, 1e-4, 3e-3, 1e-3}  # the paper's grid
    assert {p.config["optimizer"] for p in spec.points} == {"sgd"}
    for p in spec.points:  # variance normalisation exactly for the score-function families
        normalized = ("sf", "sf-ema", "darn", "muprop")
        assert p.config["normalize"] == (p.config["estimator"] in normalized)
    # m = 1000 on the whole test split for the selected points only (phase 2)
    assert spec.final == {"eval_samples": 1000, "test_images": 0}
    assert {p.config["eval_samples"] for p in spec.points} <= {10, 100}


def test_the_committed_protocol_table_is_what_its_committed_runs_say(tmp_path):
    """``benchmarks/vae/protocol.json`` is the table of the protocol's finished points. Their
    records (each point's and its phase-2 evaluation's ``config.json`` and ``final.json``, no
    checkpoints) are committed under ``runs/protocol``, so that the sweep on a fresh clone skips
    them; the table rendered from those records alone is the committed one."""
    import dataclasses

    spec = sweep.load_spec(Path(__file__).resolve().parents[2] / "benchmarks/vae/protocol.toml")
    committed = json.loads(spec.results.with_suffix(".json").read_text())
    result = sweep.run_sweep(
        dataclasses.replace(spec, results=tmp_path / "protocol"), render=True, stream=io.StringIO()
    )
    rendered = json.loads((tmp_path / "protocol.json").read_text())
    assert result.done == 0 and rendered["points_done"] == committed["points_done"] > 0
    assert rendered["groups"] == committed["groups"]

    def outcome(row):
        return row["name"], row["status"], row.get("metrics"), row.get("phase2", {}).get("metrics")

    assert [outcome(r) for r in rendered["points"]] == [outcome(r) for r in committed["points"]]


def test_an_unreachable_ray_cluster_is_an_error_before_any_run(tmp_path, capsys):
    pytest.importorskip("ray", reason="the ray extra is not installed (make test installs it)")
    path = _spec(tmp_path, 'experiment = "vae"\n')
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sweep", str(path), "--engine", "ray", "--address", "127.0.0.1:1"])
    assert exit_.value.code == 2
    assert "cannot reach the Ray cluster at address='127.0.0.1:1'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
