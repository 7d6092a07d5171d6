"""Bad config values of the commands (train, predict, tune): one line on stderr naming the key
and the problem, exit status 1, nothing written. The cases a new user ran into are run as real
commands; the other keys through the commands' own `main` in this process."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import open_dict

import salt.predict
import salt.training.machine
import salt.tune
from salt.core.cpu import cpu_has_bf16
from salt.core.errors import exit_on_salt_error
from salt.train import check_settings, train
from tests.helpers.runs import compose_config, run_module

# what Hydra writes into a run directory before salt runs (its own files, not salt's output)
HYDRA_FILES = {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "train.log"}
NO_GPU_NOTE = (
    "warning: no CUDA GPU found: training on the CPU at 32-bit precision "
    "(trainer.precision=32-true, not bf16-mixed; trainer=cpu chooses this without this note)"
)
NO_GPU_BF16_NOTE = (
    "warning: no CUDA GPU found: training on the CPU at bf16 autocast (this CPU has bf16 "
    "units; trainer=cpu chooses this without this note)"
)
needs_no_gpu = pytest.mark.skipif(
    torch.cuda.is_available(), reason="what a machine without a CUDA GPU does"
)


def cases(*pairs):
    """(override, error) pairs as parameters named by their override."""
    return [pair if hasattr(pair, "id") else pytest.param(*pair, id=pair[0]) for pair in pairs]


def files_under(folder: Path) -> set[str]:
    if not folder.exists():
        return set()
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in files_under(folder)}


def the_error_line(stderr: str) -> str:
    """stderr holds exactly one line, an `error: ` line; that line."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-3000:]
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def assert_refused(result, *parts: str) -> None:
    assert result.returncode == 1, result.stderr[-3000:]
    line = the_error_line(result.stderr)
    for part in parts:
        assert part in line, line


def train_command(synthetic_root: Path, run: Path, *overrides: str):
    return run_module(
        "salt.train",
        "experiment=smoke",
        f"data.root={synthetic_root}",
        "data.synthetic=null",
        f"hydra.run.dir={run}",
        *overrides,
        timeout=180,
    )


# ---------------------------------------------------------------- train, as a user runs it


@pytest.mark.parametrize(
    ("override", "error"),
    cases(
        ("data.fold=7", "error: data.fold: must be in 0..4 (data.n_folds=5), got 7"),
        (
            "data.batch_size=0",
            "error: data.batch_size: must be a whole number of at least 1, got 0",
        ),
    ),
)
def test_train_refuses_a_bad_fold_or_batch_size_in_one_line(
    override, error, synthetic_root, tmp_path
):
    run = tmp_path / "run"
    result = train_command(synthetic_root, run, override)
    assert result.returncode == 1, result.stderr[-3000:]
    assert the_error_line(result.stderr) == error
    assert files_under(run) <= HYDRA_FILES


def test_synthetic_data_is_not_generated_into_a_folder_holding_other_files(tmp_path):
    """experiment=smoke (data.synthetic) with a data.root that lacks train.csv but holds files
    (an unfinished download): refused, the folder left as it was."""
    root = tmp_path / "tgs"
    (root / "train" / "images").mkdir(parents=True)
    (root / "train" / "images" / "0a1b2c3d4e.png").write_bytes(b"a tile")
    (root / "depths.csv").write_text("id,z\n0a1b2c3d4e,120\n")
    before = snapshot(root)
    run = tmp_path / "run"
    result = run_module(
        "salt.train", "experiment=smoke", f"data.root={root}", f"hydra.run.dir={run}", timeout=180
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert the_error_line(result.stderr) == (
        f"error: {root}: not empty and has no train.csv: refusing to generate synthetic data "
        "into it (pass data.root=DIR of a new or empty folder for generated data, or "
        "data.synthetic=null to read this one as a Kaggle-layout data set)"
    )
    assert snapshot(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tgs"]  # no staging folder
    assert files_under(run) <= HYDRA_FILES


# ---------------------------------------------------------------- a GPU experiment, no GPU


@pytest.mark.parametrize(
    ("has_bf16", "precision", "note"),
    [(False, "32-true", NO_GPU_NOTE), (True, "bf16-mixed", NO_GPU_BF16_NOTE)],
    ids=["cpu-without-bf16", "cpu-with-bf16"],
)
def test_a_gpu_experiment_on_a_machine_without_a_gpu_trains_on_the_cpu(
    capsys, monkeypatch, tmp_path, has_bf16, precision, note
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(salt.training.machine, "cpu_has_bf16", lambda: has_bf16)
    cfg = compose_config("train", ["experiment=resnet34", "model.encoder_weights=null"])
    assert (cfg.trainer.accelerator, cfg.trainer.precision) == ("auto", "bf16-mixed")
    assert f"warning: {check_settings(cfg)}" == note  # compose prints it once all passed
    assert (cfg.trainer.accelerator, cfg.trainer.precision) == ("cpu", precision)
    assert capsys.readouterr().err == ""
    trainer = instantiate(cfg.trainer, default_root_dir=str(tmp_path), logger=False)
    assert trainer.strategy.root_device == torch.device("cpu")
    assert trainer.precision == precision

    # with a GPU the same config keeps its GPU settings (Lightning's auto picks the GPU)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    cfg = compose_config("train", ["experiment=resnet34"])
    assert check_settings(cfg) is None
    assert (cfg.trainer.accelerator, cfg.trainer.precision) == ("auto", "bf16-mixed")
    assert capsys.readouterr().err == ""


@needs_no_gpu
def test_an_explicit_gpu_request_without_a_gpu_names_the_fix(synthetic_root, tmp_path):
    run = tmp_path / "run"
    result = run_module(
        "salt.train",
        "experiment=resnet34",
        "trainer.accelerator=gpu",
        f"data.root={synthetic_root}",
        f"hydra.run.dir={run}",
        timeout=180,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert the_error_line(result.stderr) == (
        "error: trainer.accelerator: gpu asked for, but this machine has no CUDA GPU: pass "
        "trainer=cpu (or trainer.accelerator=auto: the GPU where there is one, else the CPU)"
    )
    assert files_under(run) <= HYDRA_FILES


@needs_no_gpu
@pytest.mark.slow
def test_the_resnet34_experiment_runs_on_a_machine_without_a_gpu(synthetic_root, tmp_path):
    """`python -m salt.train experiment=resnet34` on the CPU: it trains (two steps here), with
    the note, and the run's config records what it ran with."""
    run = tmp_path / "run"
    result = run_module(
        "salt.train",
        "experiment=resnet34",
        f"data.root={synthetic_root}",
        "model.encoder_weights=null",
        "trainer.max_steps=2",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.persistent_workers=false",
        "++trainer.limit_val_batches=1",
        "oof=false",
        "plots=false",
        "logger.tensorboard=null",
        "callbacks.progress_bar=null",
        f"hydra.run.dir={run}",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    precision, note = (
        ("bf16-mixed", NO_GPU_BF16_NOTE) if cpu_has_bf16() else ("32-true", NO_GPU_NOTE)
    )
    assert note in result.stderr.splitlines()
    config = (run / "config.yaml").read_text()
    assert "accelerator: cpu" in config and f"precision: {precision}" in config
    assert (run / "metrics.json").is_file()


@pytest.mark.parametrize("experiment", ["smoke", "demo", "cpu", "resnet34_cpu"])
def test_the_cpu_experiments_train_at_bf16_where_the_cpu_has_bf16_units(experiment, capsys):
    cfg = compose_config("train", [f"experiment={experiment}", "model.encoder_weights=null"])
    note = check_settings(cfg) or ""
    assert cfg.trainer.precision == ("bf16-mixed" if cpu_has_bf16() else "32-true")
    forced = compose_config("train", [f"experiment={experiment}", "trainer.precision=32-true"])
    assert check_settings(forced) is None  # chosen: no note
    assert forced.trainer.precision == "32-true"
    assert ("no bf16 units" in note) != cpu_has_bf16()


# ---------------------------------------------------------------- train, the other keys


@pytest.mark.parametrize(
    ("override", "error"),
    cases(
        ("data.n_folds=1", "data.n_folds: must be a whole number of at least 2, got 1"),
        ("data.n_folds=100", "data.n_folds: cannot split the 60 images of"),
        ("data.fold=abc", "data.fold: must be in 0..4 (data.n_folds=5), got 'abc'"),
        ("data.val_batch_size=0", "data.val_batch_size: must be a whole number of at least 1"),
        ("data.num_workers=-1", "data.num_workers: must be a whole number of at least 0, got -1"),
        ("data.synthetic={n_trian: 5}", "data.synthetic: unknown option 'n_trian' (choose from"),
        (
            "trainer.max_epochs=-2",
            "trainer.max_epochs: must be a whole number of at least 1 (or -1 or null), got -2",
        ),
        ("trainer.max_steps=0", "trainer.max_steps: must be a whole number of at least 1"),
        ("trainer.max_time=1h", "trainer.max_time: expected days:hours:minutes:seconds"),
        ("trainer.precision=fp8", "trainer.precision: unknown value 'fp8' (choose from 32-true"),
        ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches: must be a whole"),
        ("seed=abc", "seed: must be a whole number of at least 0, got 'abc'"),
        ("module.threshold=1.5", "module.threshold: must be a number between 0 and 1"),
        ("optim.lr=-0.01", "optim.lr: must be a number above 0, got -0.01"),
        (
            "model.encoder_name=resnet999",
            "model.encoder_name: unknown encoder 'resnet999' (did you mean resnet50, resnet34, "
            "resnet18?): choose one of smp's encoders (https://smp.readthedocs.io/en/latest/"
            "encoders.html) or a timm model as tu-NAME (timm.list_models())",
        ),
        ("model.encoder_name=tu-resnet999", "model.encoder_name: unknown encoder 'tu-resnet999'"),
        ("oof_tta=[vflip]", "oof_tta: unknown 'vflip' (choose from none, hflip)"),
        (
            "oof_weights=newest",
            "oof_weights: unknown value 'newest' (choose from auto, swa, best, last)",
        ),
    ),
)
def test_bad_training_settings_are_one_line_before_anything_is_written(
    override, error, train_config, tmp_path, capsys
):
    run = tmp_path / "run"
    cfg = train_config(override, output_dir=run)
    with pytest.raises(SystemExit) as stop:  # as `python -m salt.train` runs it
        exit_on_salt_error(train)(cfg)
    assert stop.value.code == 1
    assert the_error_line(capsys.readouterr().err).startswith(f"error: {error}")
    assert files_under(run) == set()


# ---------------------------------------------------------------- predict


def predict_command(run: Path, data_root: Path, out: Path, *overrides: str):
    return run_module(
        "salt.predict",
        f"runs=[{run}]",
        f"data.root={data_root}",
        f"out={out}",
        "postprocess=fixed",
        *overrides,
        timeout=180,
    )


@pytest.mark.parametrize(
    ("override", "error"),
    cases(
        ("tta=[vflip]", "error: tta: unknown 'vflip' (choose from none, hflip)"),
        (
            "threshold=abc",
            "error: threshold: must be a number between 0 and 1 (exclusive), got 'abc'",
        ),
        (
            "threshold=1.7",
            "error: threshold: must be a number between 0 and 1 (exclusive), got 1.7",
        ),
    ),
)
def test_predict_refuses_an_unknown_tta_or_a_threshold_outside_0_1(
    override, error, smoke_run, synthetic_root, tmp_path
):
    out = tmp_path / "submission.csv"
    result = predict_command(smoke_run, synthetic_root, out, override)
    assert result.returncode == 1, result.stderr[-3000:]
    assert the_error_line(result.stderr) == error
    assert files_under(tmp_path) == set()  # no submission, no overlay plot


def run_main(main, cfg, capsys) -> str:
    """A Hydra command's `main` on a composed config in this process; its one error line."""
    with pytest.raises(SystemExit) as stop:
        main(cfg)  # @hydra.main hands a given config straight to the task
    assert stop.value.code == 1
    return the_error_line(capsys.readouterr().err)


def predict_config(*overrides: str):
    cfg = compose_config("predict", ["postprocess=fixed", "progress=false", *overrides])
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


@pytest.mark.parametrize(
    ("override", "error"),
    cases(
        ("salt_threshold=2", "salt_threshold: must be a number between 0 and 1 (exclusive), got 2"),
        ("threshold=0", "threshold: must be a number between 0 and 1 (exclusive), got 0"),
        ("min_size=-3", "min_size: must be a whole number of at least 0, got -3"),
        ("min_area=abc", "min_area: must be a whole number of at least 0, got 'abc'"),
        ("gate=size", "gate: unknown value 'size' (choose from null, area, classifier)"),
        ("fill_holes=maybe", "fill_holes: unknown value 'maybe' (choose from false, true)"),
        ("postprocess=best", "postprocess: unknown value 'best' (choose from tuned, fixed)"),
        ("checkpoints=[final]", "checkpoints: unknown 'final' (choose from auto, best, last"),
        ("tta=[]", "tta: must name at least one of none, hflip"),
        ("batch_size=0", "batch_size: must be a whole number of at least 1, got 0"),
        ("precision=fp8", "precision: unknown value 'fp8' (choose from bf16-mixed"),
        ("device=gpu0", "device: unknown device 'gpu0' (auto, cpu, cuda or cuda:N)"),
        pytest.param(
            "device=cuda",
            "device: cuda asked for, but this machine has no CUDA GPU: pass device=auto or cpu",
            marks=needs_no_gpu,
            id="device=cuda",
        ),
    ),
)
def test_bad_predict_settings_are_one_line_before_anything_is_written(
    override, error, smoke_run, synthetic_root, tmp_path, capsys
):
    out = tmp_path / "submission.csv"
    cfg = predict_config(
        f"runs=[{smoke_run}]", f"data.root={synthetic_root}", f"out={out}", override
    )
    assert run_main(salt.predict.main, cfg, capsys).startswith(f"error: {error}")
    assert files_under(tmp_path) == set()


def test_predict_and_tune_name_runs_that_are_not_runs(smoke_run, synthetic_root, tmp_path, capsys):
    out = tmp_path / "submission.csv"
    multirun = tmp_path / "multirun"
    shutil.copytree(smoke_run, multirun / "0")
    (multirun / "notes").mkdir()
    before = snapshot(multirun)
    cases = [
        (
            f"runs=[{multirun / 'notes'}]",
            f"error: runs: {multirun / 'notes'}: not a run directory (no checkpoints/, "
            "config.yaml or oof.npz) and holds none",
        ),
        (
            f"runs=[{multirun}/*_fold*]",
            f"error: runs: {multirun}/*_fold*: the pattern matches no file or folder",
        ),
        (
            f"runs=[{multirun},{multirun / '0'}]",
            f"error: runs: {multirun / '0'}: given twice (pass each run once)",
        ),
        (
            f"runs=[{tmp_path / 'nope'}]",
            f"error: runs: {tmp_path / 'nope'}: no such run directory or checkpoint file",
        ),
        ("runs=[]", "error: runs: no runs given: pass runs=[RUN_DIR,...] or checkpoint files"),
        (None, "error: runs: needs a value: pass runs=..."),  # runs: ??? left unset
    ]
    for runs, error in cases:
        given = [runs] if runs else []
        cfg = predict_config(*given, f"data.root={synthetic_root}", f"out={out}")
        assert run_main(salt.predict.main, cfg, capsys) == error
        cfg = compose_config("tune", given)
        assert run_main(salt.tune.main, cfg, capsys) == error
    assert not out.exists() and snapshot(multirun) == before


@pytest.mark.parametrize(
    ("override", "error"),
    cases(
        ("salt_thresholds=[0.5,1.5]", "salt_thresholds: must be a number between 0 and 1"),
        ("salt_thresholds=[abc]", "salt_thresholds: must be a number between 0 and 1"),
        ("min_sizes=[-5]", "min_sizes: must be a whole number of at least 0, got -5"),
        ("min_areas=[abc]", "min_areas: must be a whole number of at least 0, got 'abc'"),
        ("min_sizes=5", "min_sizes: must be a list, e.g. min_sizes=[...], got 5"),
    ),
)
def test_bad_tune_settings_are_one_line_before_anything_is_written(
    override, error, smoke_run, tmp_path, capsys
):
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    before = snapshot(run)
    cfg = compose_config("tune", [f"runs=[{run}]", override])
    assert run_main(salt.tune.main, cfg, capsys).startswith(f"error: {error}")
    assert snapshot(run) == before  # no postprocess.json
