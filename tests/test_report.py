"""`python -m salt.report`: one row per run directory, as a table, CSV and Markdown."""

import json
import shutil

import pandas as pd

from salt.inference.tuning import load_out_of_fold, save_tuned, tune
from salt.report import main
from tests.helpers.runs import compose_config, run_main


def run_report(argv, capsys):
    return run_main(main, argv, capsys)


def test_report_lists_every_run_with_its_tuned_or_best_oof_score(smoke_run, tmp_path, capsys):
    # two runs: the smoke run, and a copy of its results tuned by salt.tune
    outputs = tmp_path / "outputs"
    plain, tuned = outputs / "smoke" / "plain", outputs / "smoke" / "tuned"
    for run in (plain, tuned):
        run.mkdir(parents=True)
        for name in ("metrics.json", "oof.npz"):
            shutil.copy(smoke_run / name, run)
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    tuned_metrics = {**metrics, "fold": 3, "wall_seconds": 3725.0}
    (tuned / "metrics.json").write_text(json.dumps(tuned_metrics))
    postprocess, before, after = tune(
        load_out_of_fold([tuned]), compose_config("tune", [f"runs=[{tuned}]"])
    )
    save_tuned([tuned], postprocess, before, after, 12)

    status, out, err = run_report([outputs], capsys)
    assert status == 0, err
    # round_trip: the values written, to the last bit (the default parser of older pandas rounds)
    table = pd.read_csv(outputs / "report.csv", float_precision="round_trip")
    assert table["run"].tolist() == ["smoke/plain", "smoke/tuned"]
    assert table["experiment"].tolist() == ["smoke", "smoke"]
    assert table["fold"].tolist() == [metrics["fold"], 3]
    assert table["epochs"].tolist() == [metrics["epochs"]] * 2
    assert table["best_val_score"].tolist() == [metrics["best_val_score"]] * 2
    assert table["oof_score"].tolist() == [metrics["oof_best_score"], after]
    assert table["oof_from"].tolist() == [f"threshold {metrics['oof_best_threshold']:g}", "tuned"]
    assert table["wall_seconds"].tolist() == [metrics["wall_seconds"], 3725.0]

    markdown = (outputs / "report.md").read_text().splitlines()
    assert len(markdown) == 4 and markdown[0].startswith("| run | experiment | fold |")
    assert markdown[3].startswith("| smoke/tuned | smoke | 3 | resnet18 |")
    assert markdown[3].endswith(f"| {after:.4f} | tuned | 1:02:05 |")
    assert "smoke/plain" in out and "1:02:05" in out and "2 run(s)" in out


def test_report_out_option_and_missing_runs(smoke_run, tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    status, _, err = run_report([smoke_run, "--out", out], capsys)
    assert status == 0, err
    assert len(pd.read_csv(out / "report.csv")) == 1

    status, _, err = run_report([f"{smoke_run.parent}/*", "--out", out], capsys)  # a glob
    assert status == 0, err
    assert len(pd.read_csv(out / "report.csv")) == 1
    status, _, err = run_report([f"{tmp_path}/nothing*"], capsys)
    assert status == 1
    assert (
        err.strip() == f"error: paths: {tmp_path}/nothing*: the pattern matches no file or folder"
    )

    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = run_report([empty], capsys)
    assert status == 1
    assert err.strip() == f"error: {empty}: no run directories found (no metrics.json below)"
    assert not (empty / "report.csv").exists()
