"""Every GPU figure from one command, offline, from the bundle of `make gpu-bundle`: `make gpu-check`.

    python benchmarks/gpu_check.py [--bundle bundle] [--data DIR] [--test DIR] [--out DIR]
        [--work DIR] [--experiment resnet34] [--device cuda] [--total-minutes 9] [--train-minutes M]

Steps, each a subprocess of salt's own CLIs with its log in OUT/<step>.log:
  install      when salt's imports fail: BUNDLE/wheels into WORK/site (no index), on PYTHONPATH
  environment  device name, torch, CUDA and cuDNN versions
  bench        `salt.bench.throughput` with the fast-path settings as rows of the same run
  train        fold 0 of the experiment from random encoder weights, data on the device, for the
               full schedule or until the time budget (--train-minutes) runs out
  tune         `salt.tune` on the run's out-of-fold probabilities
  predict      `salt.predict` of the test folder into OUT/submission.csv
OUT/results.json holds every figure and wall time; it is rewritten (atomically) after every step,
so it exists even when a step fails: then `failed_steps` names it and the exit status is 1.
The bench writes each figure as it measures it, so a bench that fails or runs out of its time
(--bench-minutes) keeps the rows it measured: `bench` holds them with "complete": false.
This file uses the standard library only: it must run before the wheelhouse is installed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SALT_IMPORTS = "import salt.train, salt.tune, salt.predict, salt.bench.throughput"
BENCH_VARIANTS = [
    "module.channels_last=true",
    "module.compile=true",
    "module.compile={mode: reduce-overhead}",
]
# the time budget of training (sched=cosine_cycles fits its cycles to it)
MAX_TIME_OVERRIDE = "trainer.max_time"
# what follows training inside the budget: SWA validation, OOF prediction, plots, tune, predict
RESERVE_SECONDS = 150
ENVIRONMENT_PROBE = """
import json, platform, torch, pytorch_lightning
cuda = torch.cuda.is_available()
print(json.dumps({
    "python": platform.python_version(),
    "device_name": torch.cuda.get_device_name(0) if cuda else f"CPU {platform.machine()}",
    "gpus": torch.cuda.device_count(),
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "cudnn": torch.backends.cudnn.version() if cuda else None,
    "pytorch_lightning": pytorch_lightning.__version__,
}))
"""


class StepFailed(Exception):
    """A step did not produce its figures; the message says why, the step's log says more."""


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise StepFailed(f"{path} was not written")
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise StepFailed(f"{path}: not JSON ({error})") from None


def measured_so_far(path: Path) -> dict | None:
    """The JSON at `path` as a killed or failed writer left it, None if it wrote none. salt
    writes through a temporary file renamed over `path`: a kill leaves the previous whole file,
    and the temporary one, removed here."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp*"):
        leftover.unlink(missing_ok=True)
    try:
        return read_json(path)
    except StepFailed:
        return None


def kill_group(process: subprocess.Popen) -> None:
    """The process and what it started (workers): it leads a session of its own."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def max_time(seconds: float) -> str:
    """Lightning's DD:HH:MM:SS."""
    seconds = int(seconds)
    return f"00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Check:
    """The run: its settings, its steps' outcomes and figures, and results.json."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        # no update check at albumentations' import: offline, a DNS lookup can hang; the install
        # step may put its folder on PYTHONPATH
        self.env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
        self.started = time.time()
        self.results: dict = {
            "status": "running",
            "failed_steps": [],
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "finished": None,
            "wall_seconds": None,
            "command": [sys.executable, *sys.argv],
            "settings": {
                key: str(value) if isinstance(value, Path) else value
                for key, value in vars(args).items()
            },
            "environment": {"python": platform.python_version(), "salt_commit": git_commit()},
            "steps": {},
            "bench": None,
            "train": None,
            "tune": None,
            "predict": None,
        }

    @property
    def path(self) -> Path:
        return self.args.out / "results.json"

    def save(self) -> None:
        self.results["wall_seconds"] = round(time.time() - self.started, 1)
        write_json(self.path, self.results)

    def run(self, step: str, command: list[str], timeout: float) -> None:
        """Run `command` from the repository root, its output into OUT/<step>.log. On a timeout
        its whole process group goes (DataLoader and compile workers too, freeing the GPU)."""
        log = self.args.out / f"{step}.log"
        with log.open("a") as out:
            out.write(f"$ {shlex.join(command)}\n")
            out.flush()
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_group(process)
                raise StepFailed(f"timed out after {timeout:.0f} s") from None
            except BaseException:  # Ctrl-C: its own session does not get the signal
                kill_group(process)
                raise
        if code != 0:
            raise StepFailed(f"exit status {code}")

    def step(self, name: str, function, needs: tuple[str, ...] = ()) -> None:
        """Run one step, record its outcome, time and notes, and save results.json."""
        missing = [n for n in needs if self.results["steps"].get(n, {}).get("status") != "ok"]
        log = self.args.out / f"{name}.log"
        record = {"status": "skipped", "seconds": 0.0, "log": str(log)}
        if missing:
            record["reason"] = f"needs {', '.join(missing)}"
        else:
            print(f"[{name}] ...", flush=True)
            started = time.time()
            try:
                record.update(function() or {}, status="ok")
            except Exception as error:  # any failure is recorded, and the steps after go on
                reason = str(error) if isinstance(error, StepFailed) else repr(error)
                record.update(status="failed", reason=reason)
                self.results["failed_steps"].append(name)
                if log.is_file():
                    print("".join(log.read_text().splitlines(True)[-15:]), end="", flush=True)
            record["seconds"] = round(time.time() - started, 1)
        self.results["steps"][name] = record
        reason = f": {record['reason']}" if "reason" in record else ""
        print(f"[{name}] {record['status']} in {record['seconds']} s{reason}", flush=True)
        self.save()

    def python(self, *args: str) -> list[str]:
        return [self.args.python, *args]

    # the steps

    def install(self) -> dict:
        if self.imports_work():
            return {"installed": False}
        wheels = sorted((self.args.bundle / "wheels").glob("*.whl"))
        if not wheels:
            raise StepFailed(f"salt's imports fail and {self.args.bundle / 'wheels'} has no wheels")
        # into a folder of its own on PYTHONPATH: no write access to the machine's Python needed;
        # --no-deps: the machine has the rest, and pip must not look for newer versions of it
        site = self.args.work / "site"
        options = ["--no-index", "--no-deps", "--find-links", str(self.args.bundle / "wheels")]
        install = ["-m", "pip", "install", *options, "--target", str(site), *map(str, wheels)]
        self.run("install", self.python(*install), 600)
        self.env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(site), self.env.get("PYTHONPATH")])
        )
        if not self.imports_work():
            raise StepFailed("salt's imports still fail after installing the wheelhouse")
        return {"installed": True, "site": str(site)}

    def imports_work(self) -> bool:
        try:
            self.run("install", self.python("-c", SALT_IMPORTS), 300)
            return True
        except StepFailed:
            return False

    def environment(self) -> None:
        self.run("environment", self.python("-c", ENVIRONMENT_PROBE), 300)
        probe = (self.args.out / "environment.log").read_text().strip().splitlines()[-1]
        self.results["environment"].update(json.loads(probe))

    def bench(self) -> None:
        """The bench's figures into results.json. The bench rewrites WORK/bench.json after each
        figure, so when it fails or times out, the figures it measured before are kept (its
        "complete" is false) and the step fails, its reason saying how many rows were kept."""
        figures = self.args.work / "bench.json"
        figures.unlink(missing_ok=True)  # no rows of an earlier run
        options = {
            "--device": self.args.device,
            "--precision": self.args.precision,
            "--experiment": self.args.experiment,
            "--batches": self.args.bench_batches,
            "--predict-images": self.args.bench_predict_images,
            "--repeats": self.args.bench_repeats,
            "--json": figures,
        }
        command = self.python("-m", "salt.bench.throughput", str(self.args.data))
        for option, value in options.items():
            command += [option, str(value)]
        for variant in self.args.variant or BENCH_VARIANTS:
            command += ["--variant", variant]
        command += self.args.bench_override
        try:
            self.run("bench", command, self.args.bench_minutes * 60)
        except StepFailed as error:
            self.results["bench"] = measured_so_far(figures)
            rows = len((self.results["bench"] or {}).get("rows", {}))
            raise StepFailed(f"{error} (rows kept: {rows})" if rows else str(error)) from None
        self.results["bench"] = read_json(figures)

    def train_seconds(self) -> float:
        """The training budget: as given, else what the total leaves after the reserve."""
        if self.args.train_minutes is not None:
            return self.args.train_minutes * 60
        left = self.args.total_minutes * 60 - (time.time() - self.started) - RESERVE_SECONDS
        return max(60.0, left)

    def train(self) -> None:
        budget = self.train_seconds()
        run_dir = self.args.work / "train"
        command = self.python(
            "-m",
            "salt.train",
            f"experiment={self.args.experiment}",
            f"data.root={self.args.data}",
            "data.fold=0",
            "model.encoder_weights=null",
            "data.on_device=true",
            f"{MAX_TIME_OVERRIDE}={max_time(budget)}",
            f"hydra.run.dir={run_dir}",
        )
        # on cuda insist on the GPU: trainer=gpu alone would fall back to the CPU without one
        command.append("trainer=cpu" if self.args.device == "cpu" else "trainer.accelerator=gpu")
        command += self.args.train_override
        self.run("train", command, budget + self.args.train_grace_minutes * 60)
        metrics = read_json(run_dir / "metrics.json")
        max_epochs = configured_max_epochs(run_dir / "config.yaml")
        self.results["train"] = {
            "run_dir": str(run_dir),
            "time_budget_seconds": round(budget),
            "epochs": metrics.get("epochs"),
            "max_epochs": max_epochs,
            "full_schedule": None if max_epochs is None else metrics.get("epochs") == max_epochs,
            "best_val_score": metrics.get("best_val_score"),
            "swa_val_score": metrics.get("swa_val_score"),
            "oof_source": metrics.get("oof_source"),
            "oof_score": metrics.get("oof_score"),
            "oof_best_score": metrics.get("oof_best_score"),
            "oof_best_threshold": metrics.get("oof_best_threshold"),
            "wall_seconds": metrics.get("wall_seconds"),
        }

    def tune(self) -> None:
        run_dir = self.args.work / "train"
        command = self.python(
            "-m", "salt.tune", f"runs=[{run_dir}]", f"hydra.run.dir={self.args.work / 'tune'}"
        )
        self.run("tune", command, 600)
        tuned = read_json(run_dir / "postprocess.json")
        self.results["tune"] = {
            "oof_score_before": tuned.get("oof_score_before"),
            "oof_score_after": tuned.get("oof_score_after"),
            "oof_images": tuned.get("oof_images"),
            "postprocess": tuned.get("postprocess"),
        }

    def predict(self) -> None:
        submission = self.args.out / "submission.csv"
        # auto: the weights whose out-of-fold probabilities the post-processing was tuned on
        checkpoint = self.results["train"]["oof_source"]
        command = self.python(
            "-m",
            "salt.predict",
            f"runs=[{self.args.work / 'train'}]",
            "checkpoints=[auto]",
            f"data.root={self.args.test}",
            f"out={submission}",
            f"device={self.args.device}",
            "plots=false",
            "progress=false",
            f"hydra.run.dir={self.args.work / 'predict'}",
        )
        started = time.time()
        self.run("predict", command, 600)
        seconds = time.time() - started
        with submission.open(newline="") as rows:
            table = list(csv.DictReader(rows))
        self.results["predict"] = {
            "submission": str(submission),
            "test": str(self.args.test),
            "checkpoint": checkpoint,
            "rows": len(table),
            "empty_masks": sum(1 for row in table if not row["rle_mask"].strip()),
            "seconds": round(seconds, 1),
        }


def git_commit() -> str | None:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        )
    except OSError:
        return None
    return found.stdout.strip() or None


def configured_max_epochs(config: Path) -> int | None:
    """trainer.max_epochs of a run's resolved config.yaml (PyYAML comes with salt's needs)."""
    try:
        import yaml

        return int(yaml.safe_load(config.read_text())["trainer"]["max_epochs"])
    except (ImportError, OSError, KeyError, TypeError, ValueError):
        return None


def check_inputs(args: argparse.Namespace) -> None:
    """Bad input stops here, before anything is written."""
    if not (args.data / "train.csv").is_file():
        fail(
            f"--data {args.data}: no train.csv (a Kaggle-layout folder; make gpu-bundle writes one)"
        )
    if (
        not (args.test / "sample_submission.csv").is_file()
        or not (args.test / "test" / "images").is_dir()
    ):
        fail(f"--test {args.test}: expected sample_submission.csv and test/images/")
    if args.device not in ("cuda", "cpu"):
        fail(f"--device {args.device}: give cuda or cpu")
    if (args.work / "train").exists():
        fail(f"--work {args.work}: holds a train/ run already; give a fresh folder")
    for name in ("total_minutes", "train_minutes", "bench_minutes"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            fail(f"--{name.replace('_', '-')} {value}: must be positive")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d_%H-%M-%S")
    add = parser.add_argument
    add("--bundle", type=Path, default=Path("bundle"), help="make gpu-bundle's folder: %(default)s")
    add("--data", type=Path, help="training data (default: BUNDLE/tgs)")
    add("--test", type=Path, help="test folder to predict (default: BUNDLE/tgs-holdout)")
    add("--out", type=Path, help="results and logs (default: outputs/gpu-check/<UTC time>)")
    add("--work", type=Path, help="run directories and checkpoints (default: OUT/work)")
    add("--experiment", default="resnet34", help="%(default)s")
    add("--device", default="cuda", help="cuda or cpu: %(default)s")
    add("--precision", default="bf16-mixed", help="the bench's precision: %(default)s")
    add("--python", default=sys.executable, help="the Python that runs salt: this one")
    add("--total-minutes", type=float, default=9.0, help="the time the check fits in: %(default)s")
    add("--train-minutes", type=float, help="training's budget (default: what the total leaves)")
    add("--train-grace-minutes", type=float, default=5.0, help="kill margin: %(default)s")
    add("--train-override", action="append", default=[], help="a Hydra override (repeatable)")
    add("--bench-minutes", type=float, default=4.0, help="the bench's time limit: %(default)s")
    add("--bench-batches", type=int, default=60, help="%(default)s")
    add("--bench-predict-images", type=int, default=2048, help="%(default)s")
    add("--bench-repeats", type=int, default=2, help="%(default)s")
    add("--variant", action="append", help=f"a bench row (repeatable; default: {BENCH_VARIANTS})")
    add("--bench-override", action="append", default=[], help="for the bench (repeatable)")
    args = parser.parse_args(argv)
    args.data = (args.data or args.bundle / "tgs").absolute()
    args.test = (args.test or args.bundle / "tgs-holdout").absolute()
    args.out = (args.out or Path("outputs/gpu-check") / stamp).absolute()
    args.bundle = args.bundle.absolute()
    args.work = (args.work or args.out / "work").absolute()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_inputs(args)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    check = Check(args)
    check.save()
    check.step("install", check.install)
    check.step("environment", check.environment, needs=("install",))
    check.step("bench", check.bench, needs=("install",))
    check.step("train", check.train, needs=("install",))
    check.step("tune", check.tune, needs=("train",))
    check.step("predict", check.predict, needs=("tune",))
    failed = check.results["failed_steps"]
    check.results["status"] = "failed" if failed else "ok"
    check.results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    check.save()
    summary = f" (failed: {', '.join(failed)})" if failed else ""
    print(f"{check.path}: {check.results['status']}{summary}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
