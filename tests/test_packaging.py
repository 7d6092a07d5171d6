"""salt as a package: what the wheel holds, its console scripts, and a wheel installed outside
the checkout training and predicting from any folder."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from salt import cli
from salt.core.config import CONFIG_DIR, HYDRA_COMMANDS
from tests.helpers.runs import REPO_ROOT, compose_config

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "salt", "conf", "hydra_plugins")


def test_every_package_and_config_group_is_in_the_wheel_list():
    packages = set(PYPROJECT["tool"]["setuptools"]["packages"])
    code = {
        ".".join(p.parent.relative_to(REPO_ROOT).parts)
        for p in (REPO_ROOT / "salt").rglob("__init__.py")
    }
    conf = REPO_ROOT / "conf"
    groups = {
        ".".join(("salt", *p.relative_to(REPO_ROOT).parts))
        for p in [conf, *conf.rglob("*")]
        if p.is_dir() and any(p.glob("*.yaml"))
    }
    assert code <= packages and groups <= packages
    assert "hydra_plugins" in packages
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"salt.conf": "conf"}


def test_configs_are_found_through_the_package_here_in_the_checkout():
    assert Path(CONFIG_DIR) == REPO_ROOT / "conf"


def test_every_console_script_names_a_callable():
    scripts = PYPROJECT["project"]["scripts"]
    assert {"salt-train", "salt-predict", "salt-tune", "salt-evaluate", "salt-export"} <= set(
        scripts
    )
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), name
    for name, module in HYDRA_COMMANDS.items():
        assert scripts[name] == f"salt.cli:{module.rsplit('.', 1)[1]}"


def test_hydra_shell_completion_lists_the_experiments(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["salt-train", "-sc", "query=bash"])
    monkeypatch.setenv("COMP_LINE", "salt-train experiment=")
    cli.train()
    options = capsys.readouterr().out.split()
    assert {"experiment=smoke", "experiment=resnet34", "experiment=demo"} <= set(options)


def setuptools_major() -> int:
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return 0


def build_wheel(destination: Path) -> Path:
    """A wheel of a copy of the sources (the build leaves its `build/` outside the checkout)."""
    source = destination / "source"
    source.mkdir(parents=True)
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    # without build isolation where this environment has the build backend: no download
    isolation = ["--no-build-isolation"] if setuptools_major() >= 77 else []
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, str(source)]
        + ["-w", str(destination)],
        check=True,
        capture_output=True,
    )
    (wheel,) = destination.glob("tgs_salt-*.whl")
    return wheel


def venv_with_wheel(venv: Path, wheel: Path) -> Path:
    """A venv holding only salt's wheel; the dependencies are this environment's, placed after
    the venv's own site-packages (a .pth file) so that they are not installed again. Their
    .pth files are not run, so an editable salt among them stays invisible."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    (own,) = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    Path(own, "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel],
        check=True,
        capture_output=True,
    )
    return venv / "bin"


@pytest.mark.slow
def test_a_wheel_installed_outside_the_checkout_trains_and_predicts(synthetic_root, tmp_path):
    bin_dir = venv_with_wheel(tmp_path / "venv", build_wheel(tmp_path / "dist"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args: str, **extra_env: str) -> str:
        result = subprocess.run(
            [*args], cwd=elsewhere, env={**env, **extra_env}, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    where = run(
        str(bin_dir / "python"),
        "-c",
        "import salt.core.config as c; print(c.__file__, c.CONFIG_DIR)",
    ).split()
    assert all(Path(p).is_relative_to(tmp_path / "venv") for p in where), where  # the wheel's
    run(
        str(bin_dir / "salt-train"),
        "experiment=smoke",
        f"data.root={synthetic_root}",
        "data.synthetic=null",
        "trainer.max_epochs=1",
        "plots=false",
        "hydra.run.dir=run",
    )
    assert (elsewhere / "run" / "checkpoints" / "best.ckpt").is_file()
    assert (elsewhere / "run" / "tensorboard").is_dir()
    out = run(
        str(bin_dir / "salt-predict"),
        "runs=[run]",
        f"data.root={synthetic_root}",
        "postprocess=fixed",
        "device=cpu",
        "plots=false",
        "out=submission.csv",
    )
    rows = (elsewhere / "submission.csv").read_text().splitlines()
    assert rows[0] == "id,rle_mask" and len(rows) == 1 + 10  # the 10 test tiles
    assert "wrote submission.csv" in out


def test_a_users_config_folder_joins_the_search_path(tmp_path):
    mine = tmp_path / "my_conf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - smoke\nexperiment_name: mine\noptim:\n  lr: 0.0042\n"
    )
    cfg = compose_config(
        "train", [f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]", "experiment=mine"]
    )
    assert cfg.experiment_name == "mine" and cfg.optim.lr == 0.0042
    assert cfg.model.encoder_depth == 3  # from salt's own smoke experiment, not copied
