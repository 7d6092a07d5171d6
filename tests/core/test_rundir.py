"""salt.core.rundir: the one reader and writer of each file of a run directory."""

import importlib.util

import numpy as np
import pytest
from omegaconf import open_dict

from salt.core.errors import ConfigError, DataError, SaltError
from salt.core.rundir import RunDir, checkpoint_files, metric_value, run_entries
from tests.helpers.runs import compose_config, run_main
from tests.helpers.tiny_net import write_checkpoint


def oof_arrays(n=3, salt=True):
    arrays = {
        "ids": np.array([f"id{i}" for i in range(n)]),
        "probabilities": np.full((n, 101, 101), 0.25, dtype=np.float16),
        "masks": np.zeros((n, 101, 101), dtype=np.uint8),
    }
    if salt:
        arrays["salt"] = np.full(n, 0.5, dtype=np.float32)
    return arrays


def test_metric_value_is_the_optimized_metric_or_names_the_ones_there_are():
    metrics = {"best_val_score": 0.8, "oof_best_score": 0.75, "epochs": 3, "experiment": "x"}
    assert metric_value(metrics, None) == 0.8
    assert metric_value(metrics, "oof_best_score") == 0.75
    assert metric_value({"best_val_score": None}, "best_val_score") is None
    with pytest.raises(SaltError) as error:
        metric_value(metrics, "oof_best_scor", "RUN/metrics.json")
    assert str(error.value) == (
        "optimized_metric=oof_best_scor: no such metric in RUN/metrics.json "
        "(there are: best_val_score, epochs, oof_best_score)"
    )
    with pytest.raises(SaltError, match="optimized_metric=experiment: 'x' .* is not a number"):
        metric_value(metrics, "experiment")


def test_oof_round_trip_and_the_checks_that_name_the_file(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(SaltError, match=f"{run.oof}: not found \\(train with oof=true\\)"):
        run.read_oof()
    run.write_oof(**oof_arrays())
    oof = run.read_oof()
    assert oof["ids"].tolist() == ["id0", "id1", "id2"]
    assert oof["probabilities"].dtype == np.float32 and oof["salt"].tolist() == [0.5] * 3

    def damaged(**arrays):
        np.savez(run.oof, **arrays)
        with pytest.raises(DataError) as error:
            run.read_oof()
        assert str(error.value).startswith(f"{run.oof}: ")
        return str(error.value)

    arrays = oof_arrays()
    assert "missing array(s) masks" in damaged(ids=arrays["ids"], probabilities=arrays["masks"])
    assert "arrays of different lengths" in damaged(**{**arrays, "salt": np.zeros(2)})
    assert "differ in shape" in damaged(**{**arrays, "masks": np.zeros((3, 128, 128))})
    run.oof.write_bytes(b"PK\x03\x04 half a file")
    with pytest.raises(DataError, match="not a readable .npz"):
        run.read_oof()


def test_metrics_and_postprocess_are_read_back_and_bad_json_is_named(tmp_path):
    run = RunDir(tmp_path)
    assert run.read_metrics() is None and run.read_postprocess() is None
    run.write_metrics({"b": 1, "a": None})
    run.write_postprocess({"postprocess": {"threshold": 0.4}})
    assert run.read_metrics() == {"a": None, "b": 1}
    assert run.metrics.read_text().index('"a"') < run.metrics.read_text().index('"b"')
    assert run.read_postprocess() == {"postprocess": {"threshold": 0.4}}
    run.metrics.write_text('{"experiment": ')
    with pytest.raises(DataError, match="metrics.json: not valid JSON"):
        run.read_metrics()
    run.metrics.write_text("[1]")
    with pytest.raises(DataError, match="metrics.json: not a JSON object"):
        run.read_metrics()


def test_checkpoints_by_kind_auto_follows_the_oof_source(tmp_path):
    run = RunDir(tmp_path / "run")
    (run.path / "checkpoints" / "snapshots").mkdir(parents=True)
    for name in ("best", "last", "swa", "snapshots/cycle-002", "snapshots/cycle-001"):
        (run.checkpoints / f"{name}.ckpt").write_bytes(b"")
    assert run.checkpoint_files() == [run.checkpoint("best")]  # no metrics.json: best
    run.write_metrics({"oof_source": "swa"})
    assert checkpoint_files([run.path]) == [run.checkpoint("swa")]
    assert run.checkpoint_files(["snapshots", "last"]) == [
        run.checkpoints / "snapshots" / "cycle-001.ckpt",
        run.checkpoints / "snapshots" / "cycle-002.ckpt",
        run.last_checkpoint,
    ]
    assert RunDir.of(run.checkpoints / "snapshots" / "cycle-001.ckpt") == run
    assert checkpoint_files([run.last_checkpoint], ["swa"]) == [run.last_checkpoint]
    with pytest.raises(SaltError, match="unknown checkpoint kind 'final'"):
        checkpoint_files([run.path], ["final"])
    with pytest.raises(SaltError, match="no such run directory or checkpoint file"):
        checkpoint_files([tmp_path / "missing"])
    empty = RunDir(tmp_path / "empty")
    empty.path.mkdir()
    with pytest.raises(SaltError, match="run directory has no best checkpoints"):
        empty.checkpoint_files()


def fake_run(folder, finished: bool = True):
    """A folder that counts as a run directory: config.yaml (salt.train's first file) and, when
    `finished`, metrics.json (its last)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("seed: 0\n")
    if finished:
        RunDir(folder).write_metrics({"best_val_score": 0.5})
    return folder


def test_runs_take_a_run_a_folder_of_runs_a_glob_and_checkpoint_files(tmp_path):
    multirun = tmp_path / "multirun" / "2026-01-01_00-00-00"
    folds = [fake_run(multirun / f"{k}_fold{k}") for k in (1, 0, 2)]
    (multirun / "multirun.yaml").write_text("hydra: {}\n")  # what Hydra writes beside the runs
    (multirun / ".submitit").mkdir()
    one = fake_run(tmp_path / "outputs" / "run")
    checkpoint = one / "checkpoints" / "best.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    in_order = [str(p) for p in sorted(folds)]

    assert run_entries("runs", str(one)) == [str(one)]  # a run directory stays one run
    assert run_entries("runs", [multirun]) == in_order  # a multirun: every run inside, sorted
    assert run_entries("runs", [f"{multirun}/*_fold*"]) == in_order
    # a glob over multiruns; files it matches that are not checkpoints (multirun.yaml) are skipped
    assert run_entries("runs", [f"{tmp_path}/multirun/*"]) == in_order
    assert run_entries("runs", [f"{multirun}/*"]) == in_order
    assert run_entries("runs", [checkpoint, f"{multirun}/0_*"]) == [str(checkpoint), in_order[0]]
    assert run_entries("runs", [f"{one}/checkpoints/*.ckpt"]) == [str(checkpoint)]


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        (["{tmp}/multirun/x*"], "{tmp}/multirun/x*: the pattern matches no file or folder"),
        (["{tmp}/multirun/*.yaml"], "{tmp}/multirun/*.yaml: the pattern matches no run directory"),
        (["{tmp}/nope"], "{tmp}/nope: no such run directory or checkpoint file"),
        (["{tmp}/empty"], "{tmp}/empty: not a run directory (no checkpoints/, config.yaml or oof"),
        (["{tmp}/multirun", "{tmp}/multirun/0"], "{tmp}/multirun/0: given twice (pass each run"),
        (
            ["{tmp}/multirun/0", "{tmp}/multirun/../multirun/0"],
            "{tmp}/multirun/../multirun/0: given twice",
        ),
        ([], "no runs given: pass --runs=[RUN_DIR,...] or checkpoint files"),
    ],
    ids=["no-match", "no-run-matched", "missing", "not-a-run", "twice", "twice-other-path", "none"],
)
def test_runs_that_match_nothing_or_repeat_are_one_line_naming_the_key(tmp_path, entries, problem):
    fake_run(tmp_path / "multirun" / "0")
    (tmp_path / "multirun" / "multirun.yaml").write_text("")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError) as error:
        run_entries("--runs", [entry.format(tmp=tmp_path) for entry in entries])
    assert str(error.value).startswith(f"--runs: {problem.format(tmp=tmp_path)}")
    assert "\n" not in str(error.value)


def unfinished_run(folder):
    """A run salt.train started and did not finish: config.yaml and a mid-training best.ckpt,
    no metrics.json."""
    fake_run(folder, finished=False)
    write_checkpoint(folder / "checkpoints" / "best.ckpt")
    return folder


def test_unfinished_runs_are_refused_naming_them_unless_their_checkpoints_are_named(tmp_path):
    """A crashed or still-training run (config.yaml, no metrics.json) is not taken from a run
    directory, a folder of runs or a pattern; its checkpoint file named as a file is."""
    multirun = tmp_path / "multirun"
    done = fake_run(multirun / "0_fold0")
    crashed, training = unfinished_run(multirun / "1_fold1"), unfinished_run(multirun / "2_fold2")
    for entries in ([multirun], [f"{multirun}/*_fold*"], [done, crashed, training]):
        with pytest.raises(ConfigError) as error:
            run_entries("runs", entries)
        assert str(error.value) == (
            f"runs: 2 runs are unfinished (no metrics.json: crashed, killed or still training): "
            f"{crashed}, {training}; to use one anyway, name its checkpoint file "
            f"(e.g. {crashed}/checkpoints/best.ckpt)"
        )
    with pytest.raises(ConfigError, match=f"^--runs: 1 run is unfinished .*: {crashed}; "):
        run_entries("--runs", [crashed])
    best = crashed / "checkpoints" / "best.ckpt"
    assert run_entries("runs", [done, best]) == [str(done), str(best)]
    assert run_entries("runs", [f"{crashed}/checkpoints/*.ckpt"]) == [str(best)]
    # checkpoints/ without config.yaml, a folder not made by salt.train, is taken as it is
    assembled = tmp_path / "assembled"
    write_checkpoint(assembled / "checkpoints" / "best.ckpt")
    assert run_entries("runs", [assembled]) == [str(assembled)]


def test_every_command_taking_runs_refuses_an_unfinished_run_in_one_line(
    tmp_path, capsys, monkeypatch
):
    """salt.predict, salt.tune, salt.pseudo, salt.section and salt.survey, each in this process,
    on an unfinished run: exit 1, one line naming it, nothing written."""
    import cv2

    import salt.predict
    import salt.pseudo
    import salt.tune
    from salt import section, survey

    monkeypatch.chdir(tmp_path)
    run = unfinished_run(tmp_path / "run")
    expected = "error: runs: 1 run is unfinished (no metrics.json: crashed, killed or still "
    tile = tmp_path / "tile.png"
    cv2.imwrite(str(tile), np.zeros((101, 101), np.uint8))
    out = tmp_path / "out"
    hydra_commands = [
        (salt.predict.main, "predict", ["data.root=data", f"out={out}.csv"]),
        (salt.tune.main, "tune", []),
        (salt.pseudo.main, "pseudo", ["data.root=data", f"out={out}"]),
    ]
    for main, name, overrides in hydra_commands:
        cfg = compose_config(name, [f"runs=[{run}]", *overrides])
        with open_dict(cfg):
            del cfg["hydra"]
        with pytest.raises(SystemExit) as stop:
            main(cfg)
        assert stop.value.code == 1
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith(expected), (name, err)
        assert f": {run}; " in err
    argv_commands = [(section.main, [tile])]
    if importlib.util.find_spec("segyio") is not None:
        from salt.data.synthetic_cube import make_cube, write_segy_cube

        cube = tmp_path / "cube.sgy"
        write_segy_cube(
            cube, make_cube((3, 3, 20), 0)[0], inline_numbers=range(3), crossline_numbers=range(3)
        )
        argv_commands.append((survey.main, [cube, "--accelerator", "cpu"]))
    for main, argv in argv_commands:
        status, _, err = run_main(main, [*argv, "--runs", run, "--out", out], capsys)
        assert status == 1 and len(err.splitlines()) == 1, err
        assert err.startswith(expected.replace("runs:", "--runs:")) and f": {run}; " in err
    assert not out.exists() and not list(tmp_path.glob("out*"))
    assert sorted(p.name for p in run.rglob("*")) == ["best.ckpt", "checkpoints", "config.yaml"]
