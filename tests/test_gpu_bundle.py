"""benchmarks/gpu_bundle.py (`make gpu-bundle`): the wheelhouse check, the data copy and the size
limit, offline (the downloads themselves need a package index)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.helpers.runs import REPO_ROOT, load_script

gpu_bundle = load_script("gpu_bundle")


def wheel(folder: Path, filename: str, *requires: str) -> Path:
    """A wheel holding only its METADATA, with these Requires-Dist lines."""
    name, version = filename.split("-")[:2]
    path = folder / filename
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA", "\n".join(lines) + "\n")
    return path


def test_a_wheelhouse_whose_needs_are_met_passes(tmp_path):
    wheels = [
        wheel(
            tmp_path,
            "tool-1.0-py3-none-any.whl",
            "core==2.1",
            "torch>=2",
            "old; python_version<'3.9'",
        ),
        wheel(
            tmp_path, "core-2.1-cp312-cp312-manylinux_2_17_x86_64.whl", "extra-dep; extra == 'x'"
        ),
    ]
    gpu_bundle.check_wheelhouse(wheels, machine={"torch"})


@pytest.mark.parametrize(
    "wheels, message",
    [
        (
            [("tool-1.0-py3-none-any.whl", "missing>=1")],
            "tool-1.0-py3-none-any.whl: needs missing,",
        ),
        (
            [("tool-1.0-py3-none-any.whl", "core==2.0"), ("core-2.1-py3-none-any.whl",)],
            "tool-1.0-py3-none-any.whl: needs core==2.0, the wheelhouse has 2.1",
        ),
        (
            [("core-2.0-py3-none-any.whl",), ("core-2.1-py3-none-any.whl",)],
            "core: 2 versions in the wheelhouse (2.0, 2.1)",
        ),
        ([("torch-2.0-py3-none-any.whl",)], "torch: the GPU machine has it already"),
        ([("core-2.1-cp311-cp311-manylinux_2_17_x86_64.whl",)], "not for CPython 3.12"),
        ([("core-2.1-cp312-cp312-macosx_11_0_arm64.whl",)], "not for CPython 3.12"),
    ],
)
def test_a_bad_wheelhouse_is_named(tmp_path, wheels, message):
    paths = [wheel(tmp_path, filename, *requires) for filename, *requires in wheels]
    with pytest.raises(
        gpu_bundle.BundleError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        gpu_bundle.check_wheelhouse(paths, machine={"torch"})


def test_the_machine_list_holds_what_the_wheelhouse_relies_on():
    machine = set(gpu_bundle.read_names(gpu_bundle.MACHINE_PACKAGES))
    assert {
        "torch",
        "pytorch-lightning",
        "torchmetrics",
        "timm",
        "opencv-python-headless",
    } <= machine
    wanted = {
        r.split("==")[0] for r in gpu_bundle.read_names(REPO_ROOT / "benchmarks" / "gpu-wheels.txt")
    }
    assert {"segmentation-models-pytorch", "albumentations", "hydra-core", "omegaconf"} <= wanted
    assert not wanted & machine


def test_the_bundle_copies_the_data_and_keeps_to_its_size_limit(synthetic_root, tmp_path, capsys):
    empty = tmp_path / "none.txt"
    empty.write_text("# no wheels\n")
    out = tmp_path / "bundle"
    common = [
        "--out",
        out,
        "--data",
        synthetic_root,
        "--test",
        synthetic_root,
        "--requirements",
        empty,
    ]
    common = [str(a) for a in common]

    with pytest.raises(SystemExit) as exit:
        gpu_bundle.main([*common, "--limit-mib", "0.01"])
    assert exit.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out}: ") and "over the 0.01 MiB limit" in err
    assert len(err.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("bundle*"))

    gpu_bundle.main(common)
    assert f"wrote {out}: " in capsys.readouterr().out
    tgs, holdout = out / "tgs", out / "tgs-holdout"
    assert (tgs / "train.csv").read_bytes() == (synthetic_root / "train.csv").read_bytes()
    source = sorted(p.name for p in (synthetic_root / "train" / "images").iterdir())
    assert sorted(p.name for p in (tgs / "train" / "images").iterdir()) == source
    assert (tgs / "depths.csv").is_file() and (tgs / "train" / "masks").is_dir()
    assert not (tgs / "test").exists()  # the check predicts the holdout, not these
    assert (holdout / "sample_submission.csv").is_file()
    assert len(list((holdout / "test" / "images").glob("*.png"))) == 10
    assert not list(tmp_path.glob("*.partial"))


def test_missing_data_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gpu_bundle.main(["--out", str(tmp_path / "b"), "--data", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert (
        err
        == f"error: {tmp_path / 'nowhere'}: expected train.csv and train/images/ (the Kaggle layout)\n"
    )
    assert not (tmp_path / "b").exists()
