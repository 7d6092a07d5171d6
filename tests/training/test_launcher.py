"""The parallel launcher (salt/training/launcher.py, conf/hydra/launcher/parallel.yaml): folds of a
multirun as concurrent processes."""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from salt.core.errors import SaltError, salt_error_in
from salt.core.rundir import RunDir
from salt.training.launcher import (
    Job,
    ParallelLauncher,
    is_sweep_only,
    job_dir,
    job_labels,
    last_line,
    override_value,
    return_value,
    run_jobs,
    task_module,
    threads_per_job,
)
from tests.helpers.runs import REPO_ROOT, compose_config, run_module

EVENT = re.compile(r"\]\[HYDRA\] #(\d+) (.*?): (started|completed|failed)")


def events(stdout: str) -> list[tuple[int, str, str]]:
    """(job number, label, event) of the launcher's lines, in order."""
    return [(int(m[1]), m[2], m[3]) for m in map(EVENT.search, stdout.splitlines()) if m]


def alive(pid: int, wait: float = 5.0) -> bool:
    """Whether `pid` still runs `wait` seconds from now, or earlier if it ends (a SIGKILL just
    sent takes a moment)."""
    deadline = time.monotonic() + wait
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _running(pid)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def session_members(session: int) -> list[int]:
    """Live processes of a session (a job runs in its own)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[3]) == session and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def train_sweep(synthetic_root: Path, sweep: Path, *overrides: str) -> list[str]:
    return [
        "-m",
        "experiment=smoke",
        f"data.root={synthetic_root}",
        "data.synthetic=null",
        "hydra/launcher=parallel",
        f"hydra.sweep.dir={sweep}",
        "trainer.max_epochs=1",
        "logger.tensorboard=null",
        "plots=false",
        *overrides,
    ]


def test_folds_train_at_the_same_time_and_a_failed_one_is_one_error_line(synthetic_root, tmp_path):
    """Fold 7 (of 5) fails, fold 0 trains beside it to its end; the multirun then exits 1 with
    one line naming the failed job and its log."""
    sweep = tmp_path / "sweep"
    result = run_module(
        "salt.train",
        *train_sweep(synthetic_root, sweep, "data.fold=7,0", "hydra.launcher.n_jobs=2"),
    )
    assert result.returncode == 1, result.stderr[-3000:]
    threads = os.environ.get("OMP_NUM_THREADS") or threads_per_job(2)
    assert f"Launching 2 jobs, 2 at a time (OMP_NUM_THREADS={threads})" in result.stdout
    # both started before either finished
    happened = events(result.stdout)
    assert sorted(happened[:2]) == [(0, "data.fold=7", "started"), (1, "data.fold=0", "started")]
    assert sorted(happened[2:]) == [(0, "data.fold=7", "failed"), (1, "data.fold=0", "completed")]

    run = sweep / "1_fold0"
    assert json.loads((run / "metrics.json").read_text())["fold"] == 0
    assert f"run directory: {run}" in (run / "launcher.log").read_text()
    hydra_config = yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())
    assert hydra_config["hydra"]["job"]["num"] == 1

    log = sweep / "0_fold7" / "launcher.log"
    assert log.is_file()
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: 1 of 2 jobs failed: #0 data.fold=7 failed (exit 1), log {log}: "
    )
    assert "data.fold: must be in 0..4 (data.n_folds=5), got 7" in last


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc")
@pytest.mark.parametrize(
    "signum",
    [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
    ids=["ctrl-c", "sigterm"],
)
def test_stopping_the_multirun_stops_its_jobs(synthetic_root, tmp_path, signum):
    """Ctrl-C or SIGTERM to the launcher, while both jobs are in their first training batch."""
    sweep = tmp_path / "sweep"
    args = train_sweep(
        synthetic_root,
        sweep,
        "data.fold=0,1",
        "hydra.launcher.n_jobs=2",
        "+callbacks.stop._target_=tests.helpers.interrupt.StopAt",
        "+callbacks.stop.epoch=0",
        "+callbacks.stop.batch=0",
        "+callbacks.stop.action=sleep",
        "+callbacks.stop.marker=${paths.output_dir}/stopped",
    )
    parent = subprocess.Popen(
        [sys.executable, "-m", "salt.train", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a shell's background job ignores SIGINT, and so would the launcher under it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        markers = [sweep / "0_fold0" / "stopped", sweep / "1_fold1" / "stopped"]
        deadline = time.time() + 300
        while not all(marker.exists() for marker in markers):
            assert parent.poll() is None, parent.communicate()[1][-3000:]
            assert time.time() < deadline, "the jobs never reached their first batch"
            time.sleep(0.2)
        parent.send_signal(signum)
        out, err = parent.communicate(timeout=120)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.communicate()
    pids = [int(pid) for pid in re.findall(r": started \(pid (\d+)\)", out)]
    left = {pid: session_members(pid) for pid in pids if alive(pid) or session_members(pid)}
    for pid in left:  # a test that fails leaves no jobs behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    assert len(pids) == 2 and left == {}  # a job runs in its own session, with its workers
    assert parent.returncode != 0
    assert "Stopping 2 running job(s): #0, #1" in out, out + err
    assert not list(sweep.glob("*/metrics.json"))


def test_the_parallel_launcher_config_names_a_plugin_hydra_instantiates():
    cfg = compose_config("train", ["hydra/launcher=parallel", "hydra.launcher.n_jobs=5"])
    target = cfg.hydra.launcher._target_
    assert issubclass(Plugins.instance().class_name_to_class[target], ParallelLauncher)
    launcher = instantiate(cfg.hydra.launcher)
    assert isinstance(launcher, ParallelLauncher)
    assert (launcher.n_jobs, launcher.threads_per_job) == (5, None)
    # the plugin folder does not hide the installed plugins (the Optuna sweeper)
    if "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper" in str(
        Plugins.instance().class_name_to_class
    ):
        cfg = compose_config("train", ["hparams_search=optuna", "hydra/launcher=parallel"])
        assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")


def test_a_bad_number_of_jobs_is_a_salt_error():
    cfg = compose_config("train", ["hydra/launcher=parallel", "hydra.launcher.n_jobs=0"])
    with pytest.raises(Exception) as raised:
        instantiate(cfg.hydra.launcher)
    assert "n_jobs must be at least 1, got 0" in str(salt_error_in(raised.value))


def test_threads_are_split_between_concurrent_jobs():
    assert threads_per_job(2, cpus=16) == 8
    assert threads_per_job(5, cpus=16) == 3
    assert threads_per_job(32, cpus=16) == 1
    assert threads_per_job(1, cpus=3) == 3
    launcher = ParallelLauncher(n_jobs=4)
    env = os.environ.copy()
    try:
        os.environ.pop("OMP_NUM_THREADS", None)
        assert launcher.environment(4)["OMP_NUM_THREADS"] == str(threads_per_job(4))
        os.environ["OMP_NUM_THREADS"] = "3"  # the user's choice stays
        assert launcher.environment(4)["OMP_NUM_THREADS"] == "3"
        assert ParallelLauncher(4, threads_per_job=2).environment(4)["OMP_NUM_THREADS"] == "2"
    finally:
        os.environ.clear()
        os.environ.update(env)


def test_job_dir_is_the_resolved_sweep_subdir(tmp_path):
    cfg = compose_config("train", ["experiment=smoke", "data.fold=2"])
    with open_dict(cfg):
        cfg.hydra.job.num = 3
    directory = job_dir(cfg)
    assert directory.is_absolute() and directory.name == "3_fold2"
    assert directory.parent.parent == Path.cwd() / "multirun" / "train" / "smoke"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", directory.parent.name)
    cfg = compose_config("train", ["data.fold=4", f"hydra.sweep.dir={tmp_path}/sweep"])
    with open_dict(cfg):
        cfg.hydra.job.num = 0
    assert job_dir(cfg) == tmp_path / "sweep" / "0_fold4"


def test_sweep_settings_are_not_passed_on_to_the_jobs():
    for override in [
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=5",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=3",
        "hydra.sweep.dir=x",
        "hydra.sweep.subdir=y",
        "hydra.run.dir=z",
        "hydra.mode=MULTIRUN",
    ]:
        assert is_sweep_only(override), override
    for override in ["hydra.job.chdir=true", "hydra.verbose=true", "+hydra.job.env_set.A=1"]:
        assert not is_sweep_only(override), override
    assert not is_sweep_only("hydra.runtime.x=1")


def test_a_job_dir_is_an_override_value_hydra_parses_back(tmp_path):
    parser = OverridesParser.create()
    for path in ["/tmp/plain_dir-1.2/0_fold0", "/tmp/it's here, a,b=c/0_fold0"]:
        override = parser.parse_override(f"hydra.run.dir={override_value(path)}")
        assert override.value() == path
    assert override_value("/tmp/plain") == "/tmp/plain"


def test_labels_are_the_overrides_that_differ_between_jobs():
    jobs = [["experiment=smoke", "data.fold=0"], ["experiment=smoke", "data.fold=1"]]
    assert job_labels(jobs) == ["data.fold=0", "data.fold=1"]
    assert job_labels([["experiment=smoke", "optim.lr=0.1"]]) == ["experiment=smoke optim.lr=0.1"]
    assert job_labels([[]]) == ["(no overrides)"]


def test_last_line_of_a_log(tmp_path):
    log = tmp_path / "launcher.log"
    log.write_text("epoch 1\nerror: data/tgs: no train.csv\nTeardown\n")
    assert last_line(log) == "error: data/tgs: no train.csv"
    log.write_text(
        "Traceback (most recent call last):\n  File 'x.py', line 1\n"
        "hydra.errors.InstantiationException: Error in call to target 'X':\n"
        "ValueError('bad fold')\n\nfull_key: data\n"
    )
    assert last_line(log) == (
        "hydra.errors.InstantiationException: Error in call to target 'X': "
        "ValueError('bad fold') full_key: data"
    )
    log.write_text("one\ntwo\n\n")
    assert last_line(log) == "two"
    log.write_text("")
    assert last_line(log) == "(no output)"
    assert last_line(tmp_path / "missing.log") == "(no log)"


def test_task_module_is_the_module_run_with_python_m(monkeypatch):
    main = types.ModuleType("__main__")
    monkeypatch.setitem(sys.modules, "__main__", main)
    main.__spec__ = types.SimpleNamespace(name="salt.train")
    assert task_module() == "salt.train"
    main.__spec__ = types.SimpleNamespace(name="salt.__main__")
    assert task_module() == "salt"
    main.__spec__ = None  # python salt/train.py
    monkeypatch.setattr(sys, "argv", ["salt/train.py", "-m"])
    with pytest.raises(SaltError, match="python -m"):
        task_module()
    monkeypatch.setattr(sys, "argv", ["/venv/bin/salt-train", "-m"])  # the console script
    assert task_module() == "salt.train"


def python_job(num: int, directory: Path, code: str) -> Job:
    return Job(num, f"job{num}", directory / f"job{num}", [sys.executable, "-c", code])


def test_jobs_run_at_most_n_at_a_time_and_report_their_exit(tmp_path):
    code = "import sys, time; print('hello', flush=True); time.sleep(0.5); sys.exit({})"
    jobs = [python_job(i, tmp_path, code.format(status)) for i, status in enumerate([0, 3, 0])]
    running, most = [], 0

    def count():
        nonlocal most
        while not all(job.process and job.process.poll() is not None for job in jobs):
            live = [job for job in jobs if job.process and job.process.poll() is None]
            most = max(most, len(live))
            running.append(len(live))
            time.sleep(0.02)

    watcher = threading.Thread(target=count, daemon=True)
    watcher.start()
    run_jobs(jobs, n_jobs=2, env=dict(os.environ), poll=0.05)
    watcher.join(10)
    assert most == 2
    assert [job.outcome for job in jobs] == ["completed", "failed (exit 3)", "completed"]
    assert [job.ok for job in jobs] == [True, False, True]
    assert all(job.log.read_text() == "hello\n" for job in jobs)
    assert all(job.seconds >= 0.5 for job in jobs)


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc")
def test_an_interrupted_launch_stops_its_jobs_and_their_children(tmp_path):
    """Ctrl-C while jobs run: each job, and a child of it that ignores SIGINT (as data loader
    workers do), is gone when run_jobs returns; the job not yet started never starts."""
    code = (
        "import signal, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(120)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    jobs = [python_job(i, tmp_path, code) for i in range(3)]

    def interrupt_when_started():
        deadline = time.time() + 60
        while time.time() < deadline:
            if all(job.log.is_file() and job.log.read_text().strip() for job in jobs[:2]):
                break
            time.sleep(0.05)
        _thread.interrupt_main()

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt_when_started, daemon=True).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            run_jobs(jobs, n_jobs=2, env=dict(os.environ), poll=0.05, grace=5)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 60
    assert jobs[2].process is None
    for job in jobs[:2]:
        assert job.process.returncode is not None
        grandchild = int(job.log.read_text().split()[0])
        assert not alive(job.process.pid) and not alive(grandchild)


def test_a_sweeper_gets_the_optimized_metric_and_a_typo_is_named(tmp_path):
    RunDir(tmp_path).write_metrics({"best_val_score": 0.5, "oof_best_score": 0.7})
    assert return_value(tmp_path, OmegaConf.create({"optimized_metric": "oof_best_score"})) == 0.7
    assert return_value(tmp_path, OmegaConf.create({})) == 0.5
    assert return_value(tmp_path / "predict-job", OmegaConf.create({})) is None  # no metrics.json
    with pytest.raises(SaltError) as error:
        return_value(tmp_path, OmegaConf.create({"optimized_metric": "oof_best"}))
    assert str(error.value) == (
        f"optimized_metric=oof_best: no such metric in {tmp_path / 'metrics.json'} "
        "(there are: best_val_score, oof_best_score)"
    )
