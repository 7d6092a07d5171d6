"""`make data`: on a fresh clone it creates the environment first (the download needs its
Python), and a refused download (the competition's rules not accepted, no token) ends in one
line saying what to do."""

from __future__ import annotations

import os
import subprocess

from tests.helpers.runs import REPO_ROOT

REFUSED = (
    "error: the Kaggle download was refused: sign in, accept the competition's rules at "
    "https://www.kaggle.com/c/tgs-salt-identification-challenge/rules and put your API token "
    "(Settings, Create New Token) in ~/.kaggle/kaggle.json"
)


def make(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path or os.environ["PATH"]}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_data_on_a_fresh_clone_creates_the_environment_first(tmp_path):
    result = make("-n", "data", f"VENV={tmp_path / 'venv'}")  # -n: print, run nothing
    assert result.returncode == 0, result.stderr
    commands = result.stdout.splitlines()
    venv = next(i for i, c in enumerate(commands) if c.startswith("python3 -m venv"))
    download = next(i for i, c in enumerate(commands) if "competitions download" in c)
    assert venv < download


def test_a_refused_download_says_what_to_do_in_one_line(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed-torch-cuda").touch()  # newer than pyproject.toml: nothing to install
    kaggle = tmp_path / "bin" / "kaggle"  # what the CLI does when the rules are not accepted
    kaggle.parent.mkdir()
    kaggle.write_text("#!/bin/sh\necho '403 Client Error: Forbidden for url: ...' >&2\nexit 1\n")
    kaggle.chmod(0o755)
    data = tmp_path / "tgs"
    path = f"{kaggle.parent}:{os.environ['PATH']}"
    result = make("data", f"VENV={venv}", "TORCH=cuda", f"DATA={data}", path=path)
    assert result.returncode != 0
    assert result.stdout.strip().splitlines()[-1] == REFUSED
    assert "403 Client Error" in result.stderr  # kaggle's own reason stays visible above it
    assert list(data.iterdir()) == []
