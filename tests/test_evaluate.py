"""`python -m salt.evaluate SUBMISSION.csv MASKS_DIR` on small generated submissions."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from salt.data.rle import rle_encode
from salt.evaluate import evaluate_submission, main
from tests.helpers.runs import run_module

SHAPE = (101, 101)


def reference_score(truths: list[np.ndarray], preds: list[np.ndarray]) -> float:
    """Per-image float64 IoU against np.arange thresholds, the Kaggle kernels' way."""
    scores = []
    for truth, pred in zip(truths, preds, strict=True):
        truth, pred = truth.astype(bool), pred.astype(bool)
        if not truth.any():
            scores.append(1.0 if not pred.any() else 0.0)
            continue
        iou = (truth & pred).sum() / (truth | pred).sum()
        scores.append(np.mean([iou > t for t in np.arange(0.5, 1.0, 0.05)]))
    return float(np.mean(scores))


def write_mask(path: Path, mask: np.ndarray, bits: int) -> None:
    """A mask PNG the way Kaggle shipped them: 16-bit 0/65535 or 8-bit 0/255."""
    foreground = 65535 if bits == 16 else 255
    dtype = np.uint16 if bits == 16 else np.uint8
    assert cv2.imwrite(str(path), mask.astype(dtype) * dtype(foreground))


def write_submission(path: Path, ids: list[str], preds: list[np.ndarray]) -> Path:
    pd.DataFrame({"id": ids, "rle_mask": [rle_encode(p) for p in preds]}).to_csv(path, index=False)
    return path


def rectangle(top: int, left: int, height: int, width: int) -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    mask[top : top + height, left : left + width] = 1
    return mask


def hand_case() -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """(truths, preds, score): per-image scores 1, 1, 0.2, 0, 0 by hand, mean 0.44."""
    empty = np.zeros(SHAPE, np.uint8)
    truths = [
        empty,
        rectangle(5, 5, 20, 30),
        rectangle(0, 0, 10, 10),
        empty,
        rectangle(50, 50, 9, 9),
    ]
    preds = [empty, rectangle(5, 5, 20, 30), rectangle(0, 0, 6, 10), rectangle(1, 1, 2, 2), empty]
    return truths, preds, 0.44


def random_case(n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    truths, preds = [], []
    for i in range(n):
        top, left = rng.integers(0, 80, size=2)
        height, width = rng.integers(1, 40, size=2)
        truth = rectangle(top, left, height, width) if i % 4 else np.zeros(SHAPE, np.uint8)
        shift = tuple(rng.integers(-3, 4, size=2))
        pred = np.roll(truth, shift, axis=(0, 1)) if i % 5 else rectangle(top, left, 3, 3)
        truths.append(truth)
        preds.append(pred)
    return truths, preds


@pytest.fixture
def make_case(tmp_path):
    """`make_case(truths, preds)` writes masks (8- and 16-bit) and a submission; returns paths."""

    def make(truths, preds) -> tuple[Path, Path]:
        masks_dir = tmp_path / "masks"
        masks_dir.mkdir()
        ids = [f"{i:04d}ab{i * 7 % 10}" for i in range(len(truths))]
        for i, (tile_id, truth) in enumerate(zip(ids, truths, strict=True)):
            write_mask(masks_dir / f"{tile_id}.png", truth, bits=16 if i % 2 else 8)
        return write_submission(tmp_path / "submission.csv", ids, preds), masks_dir

    return make


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_hand_computed_score(make_case, capsys):
    truths, preds, expected = hand_case()
    submission, masks_dir = make_case(truths, preds)
    main([str(submission), str(masks_dir)])
    output = capsys.readouterr().out
    assert last_line(output) == f"score {expected:.4f}"
    assert "5" in output.strip().splitlines()[0]
    assert evaluate_submission(submission, masks_dir) == pytest.approx(expected, abs=1e-6)


def test_score_matches_reference_on_random_masks(make_case, capsys):
    truths, preds = random_case(40, seed=0)
    submission, masks_dir = make_case(truths, preds)
    expected = reference_score(truths, preds)
    assert evaluate_submission(submission, masks_dir) == pytest.approx(expected, abs=1e-6)
    main([str(submission), str(masks_dir)])
    assert last_line(capsys.readouterr().out) == f"score {expected:.4f}"


def test_command_line_module(make_case):
    truths, preds = random_case(12, seed=1)
    submission, masks_dir = make_case(truths, preds)
    result = run_module("salt.evaluate", submission, masks_dir)
    assert result.returncode == 0, result.stderr
    assert last_line(result.stdout) == f"score {reference_score(truths, preds):.4f}"


def test_missing_truth_mask_is_a_one_line_error(make_case, capsys):
    truths, preds, _ = hand_case()
    submission, masks_dir = make_case(truths, preds)
    missing = sorted(masks_dir.glob("*.png"))[2]
    missing.unlink()
    with pytest.raises(SystemExit) as exit_info:
        main([str(submission), str(masks_dir)])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and len(captured.err.strip().splitlines()) == 1
    assert str(missing) in captured.err and str(submission) in captured.err
    assert "score" not in captured.out


@pytest.mark.parametrize(
    ("bad_rle", "problem"), [("1 5 9", "odd number"), ("10200 5", "past pixel 10201")]
)
def test_bad_rle_is_a_one_line_error_naming_the_submission(make_case, capsys, bad_rle, problem):
    truths, preds, _ = hand_case()
    submission, masks_dir = make_case(truths, preds)
    table = pd.read_csv(submission, dtype=str, keep_default_na=False)
    table.loc[1, "rle_mask"] = bad_rle
    table.to_csv(submission, index=False)
    with pytest.raises(SystemExit) as exit_info:
        main([str(submission), str(masks_dir)])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and error.startswith("error: ")
    assert str(submission) in error and problem in error and table.loc[1, "id"] in error


@pytest.mark.parametrize("missing", ["submission", "masks_dir"])
def test_missing_inputs_are_one_line_errors(make_case, capsys, missing):
    truths, preds, _ = hand_case()
    submission, masks_dir = make_case(truths, preds)
    gone = {"submission": submission, "masks_dir": masks_dir}[missing]
    gone = gone.with_name(gone.name + "-absent")
    args = [str(gone), str(masks_dir)] if missing == "submission" else [str(submission), str(gone)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and str(gone) in error


def test_a_submission_missing_ids_is_refused_naming_how_many_and_one(make_case, tmp_path):
    """Kaggle refuses a submission without every id: so does the score, instead of scoring the
    ids it has; `--subset` scores those on purpose."""
    truths, preds = random_case(8, seed=2)
    submission, masks_dir = make_case(truths, preds)
    table = pd.read_csv(submission, dtype=str, keep_default_na=False)
    half = tmp_path / "half.csv"
    table.iloc[::2].to_csv(half, index=False)
    first_missing = sorted(table["id"].iloc[1::2])[0]
    result = run_module("salt.evaluate", half, masks_dir)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: {half}: 4 of the 8 ids of {masks_dir} missing, e.g. {first_missing!r} "
        "(a submission holds every id; --subset scores only the ones it has)"
    ]
    result = run_module("salt.evaluate", half, masks_dir, "--subset")
    assert result.returncode == 0, result.stderr
    expected = reference_score(truths[::2], preds[::2])
    assert last_line(result.stdout) == f"score {expected:.4f}"


def test_a_submission_with_unknown_ids_is_refused(make_case, capsys):
    truths, preds = random_case(6, seed=3)
    submission, masks_dir = make_case(truths, preds)
    table = pd.read_csv(submission, dtype=str, keep_default_na=False)
    extra = pd.DataFrame({"id": ["ffffffffff", "eeeeeeeeee"], "rle_mask": ["", "1 5"]})
    pd.concat([table, extra]).to_csv(submission, index=False)
    for argv in ([submission, masks_dir], [submission, masks_dir, "--subset"]):
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in argv])
        assert exit_info.value.code == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.strip().splitlines() == [
            f"error: {submission}: 2 id(s) without a truth mask in {masks_dir}, e.g. "
            f"'ffffffffff' (no {masks_dir / 'ffffffffff.png'})"
        ]
