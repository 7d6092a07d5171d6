"""A Hydra launcher that runs the jobs of a multirun as concurrent processes on this machine.

    python -m salt.train -m experiment=resnet34 data.fold=0,1,2,3,4 \\
        hydra/launcher=parallel hydra.launcher.n_jobs=5

Hydra's basic launcher runs the jobs one after another in its own process. This one starts each
job as `python -m <entry module> <job overrides> hydra.run.dir=<job dir>`, at most `n_jobs` at
once: several folds of a small model share a GPU that one fold cannot fill. A job's output goes
to `<job dir>/launcher.log`; the job directories are those of the basic launcher
(`hydra.sweep.dir/hydra.sweep.subdir`). Unless OMP_NUM_THREADS is set, each job gets the CPUs
divided by the jobs that run at once.

A failed job does not stop the others; once all have finished, the sweep fails with one line
naming the failed jobs, their logs and the last line of each. Ctrl-C or SIGTERM stops the
running jobs (SIGINT to each job's process group, SIGKILL after STOP_GRACE_SECONDS).
Sweepers get each job's return value from its metrics.json (`optimized_metric`); Optuna runs
`hydra.sweeper.n_jobs` trials at a time, so raise that too.

Hydra finds the launcher through the thin plugin class in hydra_plugins/salt_launcher.py (Hydra
instantiates launchers only from the `hydra_plugins` namespace, which salt's wheel installs);
conf/hydra/launcher/parallel.yaml selects it.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from salt.core.config import HYDRA_COMMANDS
from salt.core.errors import SaltError
from salt.core.rundir import RunDir, metric_value

log = logging.getLogger(__name__)

# Hydra overrides of the sweep itself, which a job (run on its own, in its own run directory)
# does not get; the other Hydra overrides (hydra.job.chdir, hydra.verbose, ...) are passed on.
SWEEP_ONLY: tuple[str, ...] = ("hydra.launcher", "hydra/launcher", "hydra.sweeper", "hydra/sweeper")
SWEEP_ONLY += ("hydra.sweep", "hydra.run", "hydra.mode", "hydra.job.id", "hydra.job.num")
STOP_GRACE_SECONDS = 10.0


class LaunchError(SaltError):
    """Jobs of a parallel multirun failed: which, their logs and the last line of each."""


def available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_job(concurrent_jobs: int, cpus: int | None = None) -> int:
    """CPU threads for each of `concurrent_jobs` jobs that share `cpus` (default: this machine's)."""
    return max(1, (cpus or available_cpus()) // max(1, concurrent_jobs))


def task_module() -> str:
    """The module the running program was started as (`python -m salt.train` or `salt-train`:
    salt.train)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is None or not spec.name:
        command = Path(sys.argv[0]).name  # a console script: salt-train -> salt.train
        if command in HYDRA_COMMANDS:
            return HYDRA_COMMANDS[command]
        raise SaltError(
            "hydra/launcher=parallel starts each job as `python -m MODULE`: start the "
            "multirun that way too, e.g. python -m salt.train -m ..."
        )
    return spec.name.removesuffix(".__main__")


def job_dir(sweep_config: DictConfig) -> Path:
    """`hydra.sweep.dir/hydra.sweep.subdir` of a job's config, resolved as Hydra's run_job does."""
    hydra_config = HydraConfig.instance()
    saved = hydra_config.cfg
    hydra_config.set_config(sweep_config)  # for ${hydra:...} in the paths
    try:
        root = OmegaConf.select(sweep_config, "hydra.sweep.dir")
        subdir = OmegaConf.select(sweep_config, "hydra.sweep.subdir")
    finally:
        hydra_config.cfg = saved
    return Path(os.path.abspath(os.path.join(str(root), str(subdir))))


def is_sweep_only(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    return any(key == k or key.startswith((f"{k}.", f"{k}@")) for k in SWEEP_ONLY)


def override_value(text: str) -> str:
    """`text` as the value of a command-line override: quoted unless it is plain."""
    if re.fullmatch(r"[\w./:+@%~-]+", text):
        return text
    return "'" + text.replace("'", "\\'") + "'"


def job_labels(job_overrides: Sequence[Sequence[str]]) -> list[str]:
    """Each job's overrides that not all jobs share (`data.fold=3`); all of them for one job."""
    shared = set.intersection(*(set(o) for o in job_overrides)) if len(job_overrides) > 1 else set()
    labels = [[o for o in filter_overrides(list(job)) if o not in shared] for job in job_overrides]
    return [" ".join(label) or "(no overrides)" for label in labels]


EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)(:|$)")


def last_line(path: Path, limit: int = 400) -> str:
    """The gist of a job's log in one line: its last `error: ...` line, else the last Python
    exception of a traceback (the lines of its message joined), else its last line."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return "(no log)"
    lines = [line for line in lines if line]
    errors = [line for line in lines if line.startswith("error: ")]
    exceptions = [i for i, line in enumerate(lines) if EXCEPTION_LINE.match(line)]
    if errors:
        line = errors[-1]
    elif exceptions:
        line = " ".join(lines[exceptions[-1] :])
    else:
        line = lines[-1] if lines else "(no output)"
    return line if len(line) <= limit else line[: limit - 3] + "..."


@dataclass
class Job:
    num: int
    label: str
    dir: Path
    command: list[str]
    process: subprocess.Popen | None = None
    started: float = 0.0
    seconds: float = 0.0

    @property
    def log(self) -> Path:
        return RunDir(self.dir).launcher_log

    @property
    def ok(self) -> bool:
        return self.process is not None and self.process.returncode == 0

    @property
    def outcome(self) -> str:
        code = None if self.process is None else self.process.returncode
        if code is None:
            return "not finished"
        if code == 0:
            return "completed"
        if code < 0:
            return f"failed (killed by {signal.Signals(-code).name})"
        return f"failed (exit {code})"

    def start(self, env: dict[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as output:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=os.name == "posix",  # its own process group, for stop()
            )
        self.started = time.monotonic()
        log.info(f"#{self.num} {self.label}: started (pid {self.process.pid}), log {self.log}")

    def finished(self) -> bool:
        if self.process is None or self.process.poll() is None:
            return False
        self.seconds = time.monotonic() - self.started
        log.info(
            f"#{self.num} {self.label}: {self.outcome} in {self.seconds:.1f} s, log {self.log}"
        )
        return True


def _signal(process: subprocess.Popen, kill: bool) -> None:
    """SIGINT (SIGKILL with `kill`) to the process group of a job; elsewhere than POSIX, kill."""
    try:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGINT)
        else:
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass


def stop(jobs: Sequence[Job], grace: float = STOP_GRACE_SECONDS) -> None:
    """Interrupt the running jobs as Ctrl-C would (SIGINT to each job's process group: training
    stops at once); SIGKILL what is left of each group once its job exited or after `grace`."""
    alive = [
        (job.num, job.process)
        for job in jobs
        if job.process is not None and job.process.poll() is None
    ]
    if not alive:
        return
    log.info(f"Stopping {len(alive)} running job(s): " + ", ".join(f"#{n}" for n, _ in alive))
    for _, process in alive:
        _signal(process, kill=False)
    deadline = time.monotonic() + grace
    for _, process in alive:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        _signal(process, kill=True)  # the job, if still there, and what is left of its group
        process.wait()


def _exit(signum, frame):
    raise SystemExit(128 + signum)


def run_jobs(
    jobs: Sequence[Job],
    n_jobs: int,
    env: dict[str, str],
    poll: float = 0.2,
    grace: float = STOP_GRACE_SECONDS,
) -> None:
    """Run `jobs`, at most `n_jobs` at once, until all have finished. Interrupted (Ctrl-C, or
    SIGTERM, which raises SystemExit here), it stops the running jobs before it returns."""
    pending, running = list(jobs), list[Job]()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit) if main_thread else None
    try:
        while pending or running:
            while pending and len(running) < n_jobs:
                job = pending.pop(0)
                running.append(job)
                job.start(env)
            running = [job for job in running if not job.finished()]
            if running:
                time.sleep(poll)
    finally:
        stop(running, grace)
        if main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def return_value(directory: Path, cfg: DictConfig):
    """What salt.train's `main` returned: the `optimized_metric` of the job's metrics.json
    (None for a job that writes none: salt.predict, salt.tune)."""
    run = RunDir(directory)
    metrics = run.read_metrics()
    return (
        None if metrics is None else metric_value(metrics, cfg.get("optimized_metric"), run.metrics)
    )


class ParallelLauncher(Launcher):
    def __init__(self, n_jobs: int = 2, threads_per_job: int | None = None) -> None:
        if int(n_jobs) < 1:
            raise SaltError(f"hydra.launcher.n_jobs must be at least 1, got {n_jobs}")
        if threads_per_job is not None and int(threads_per_job) < 1:
            raise SaltError(
                f"hydra.launcher.threads_per_job must be at least 1 or null, got {threads_per_job}"
            )
        self.n_jobs = int(n_jobs)
        self.threads_per_job = None if threads_per_job is None else int(threads_per_job)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def environment(self, concurrent_jobs: int) -> dict[str, str]:
        """The jobs' environment: unbuffered output; OMP_NUM_THREADS split between the jobs
        unless the user set it (an explicit `threads_per_job` wins)."""
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.threads_per_job is not None:
            env["OMP_NUM_THREADS"] = str(self.threads_per_job)
        elif "OMP_NUM_THREADS" not in env:
            env["OMP_NUM_THREADS"] = str(threads_per_job(concurrent_jobs))
        return env

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        module = task_module()
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        passed_on = [o for o in self.config.hydra.overrides.hydra if not is_sweep_only(o)]

        jobs, configs = [], []
        for index, (overrides, label) in enumerate(zip(job_overrides, job_labels(job_overrides))):
            num = initial_job_idx + index
            config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
            with open_dict(config):
                config.hydra.job.id = num
                config.hydra.job.num = num
            directory = job_dir(config)
            with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
                config.hydra.runtime.output_dir = str(directory)
            command = [sys.executable, "-m", module, *passed_on, *overrides]
            command += [f"hydra.job.num={num}", f"hydra.job.id={num}"]
            command.append(f"hydra.run.dir={override_value(str(directory))}")
            jobs.append(Job(num, label, directory, command))
            configs.append(config)

        concurrent = min(self.n_jobs, len(jobs))
        env = self.environment(concurrent)
        log.info(
            f"Launching {len(jobs)} jobs, {concurrent} at a time "
            f"(OMP_NUM_THREADS={env['OMP_NUM_THREADS']}), in {self.config.hydra.sweep.dir}"
        )
        run_jobs(jobs, self.n_jobs, env)

        failed = [job for job in jobs if not job.ok]
        error = None
        if failed:
            details = "; ".join(
                f"#{j.num} {j.label} {j.outcome}, log {j.log}: {last_line(j.log)}" for j in failed
            )
            error = LaunchError(f"{len(failed)} of {len(jobs)} jobs failed: {details}")
        return [
            self._job_return(job, config, overrides, error)
            for job, config, overrides in zip(jobs, configs, job_overrides)
        ]

    @staticmethod
    def _job_return(
        job: Job, config: DictConfig, overrides: Sequence[str], error: LaunchError | None
    ) -> JobReturn:
        """What Hydra's run_job returns for a job; a failed job's value is the batch's error
        (a sweeper raises it: the basic one at once, Optuna when every trial of a batch failed)."""
        result = JobReturn()
        result.overrides = list(overrides)
        task_cfg = copy.deepcopy(config)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        result.cfg = task_cfg
        result.hydra_cfg = OmegaConf.masked_copy(config, "hydra")
        result.working_dir = str(job.dir) if config.hydra.job.chdir else os.getcwd()
        result.task_name = config.hydra.job.name
        if job.ok:
            result.status = JobStatus.COMPLETED
            result.return_value = return_value(job.dir, task_cfg)
        else:
            result.status = JobStatus.FAILED
            result.return_value = error
        return result
