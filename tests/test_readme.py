"""Every command of the README's code blocks runs here, in the README's order, from a fresh
folder holding generated data in place of the competition's, with small overrides appended
(tiny nets and budgets, random encoder weights): the reproduce block (5 folds, report, tune,
predict) and the others cannot rot. A command that cannot run here is in NOT_RUN with the
reason; a new command in the README that is neither run nor excused fails the test."""

from __future__ import annotations

import re
import shlex

import pandas as pd
import pytest

from salt.data.synthetic import generate
from tests.helpers.commands import make_python_runs, run_commands
from tests.helpers.runs import REPO_ROOT

# command (its start) -> why it does not run here
NOT_RUN = {
    "make data": "downloads the competition's data: needs the network and Kaggle credentials "
    "(tests/test_make_data.py checks the target; generated data in data/tgs stand in for it)",
    "kaggle competitions submit": "submits to Kaggle: needs the network and Kaggle credentials",
    "make test": "the test suite itself (CI runs it: .ci/run)",
    "make lint": "CI runs it (.ci/run)",
    "python -m salt.survey ../shared/": "reads the real F3 file of ../shared/seismic, which a "
    "clone does not have (tests/survey/test_survey.py runs it where it is)",
}
# appended to every salt.train command, each unless the command sets its key itself
TINY = (
    "model.encoder_weights=null",
    "trainer=cpu",
    "model.encoder_name=resnet18",
    "model.encoder_depth=3",
    "model.decoder_channels=[16,8,4]",
    "model.hypercolumn_channels=4",
    "model.head_channels=8",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "data.batch_size=4",
    "data.num_workers=0",
    "data.persistent_workers=false",
    "data.synthetic={n_train: 30, n_test: 5, seed: 0}",
    "oof_tta=[none]",
    "logger.tensorboard=null",
    "callbacks.progress_bar=null",
    "plots=false",
)
# the same for an smp architecture (model=smp): its own keys for a small net
TINY_SMP = tuple(
    o
    for o in TINY
    if o.split("=")[0]
    not in (
        "model.encoder_depth",
        "model.decoder_channels",
        "model.hypercolumn_channels",
        "model.head_channels",
    )
) + ("+model.encoder_depth=3", "+model.decoder_channels=[16,8,4]")
APPENDED = {
    "salt.predict": ("progress=false",),
    "salt.section": (
        "--stride",
        "101",
        "--tta",
        "none",
        "--batch-size",
        "256",
    ),  # 48 tiles, not 161x2
    "salt.survey": ("--stride", "101", "--tta", "none", "--no-pictures"),
}


def readme_commands(text: str) -> list[str]:
    """The commands of the README's bash code blocks, a continued line joined, comments off."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def excused(command: str) -> str | None:
    return next((why for start, why in NOT_RUN.items() if command.startswith(start)), None)


def as_run(command: str, index: int) -> list[list[str]]:
    """`[module, *args]` of each salt command `command` stands for (a make target: the ones it
    runs, from `make -n`), with the small overrides appended."""
    words = shlex.split(command)
    if words[0] == "make":
        runs = make_python_runs(words[1:])
        return [run for words in runs for run in as_run(shlex.join(["python", *words]), index)]
    assert words[:2] == ["python", "-m"], f"not a salt command: {command}"
    module, args = words[2], words[3:]
    if module == "salt.train":
        keys = {arg.split("=")[0] for arg in args}
        tiny = TINY_SMP if "model=smp" in args else TINY
        args += [o for o in tiny if o.split("=")[0].lstrip("+") not in keys]
        if "-m" not in args and not any(a.startswith("hydra.run.dir=") for a in args):
            args.append(f"hydra.run.dir=outputs/readme/{index}")  # two runs in one second
    return [[module, *args, *APPENDED.get(module, ())]]


def test_every_readme_command_is_run_or_excused():
    commands = readme_commands((REPO_ROOT / "README.md").read_text())
    assert any(c.startswith("python -m salt.train -m experiment=resnet34") for c in commands)
    for command in commands:
        if not excused(command):
            assert as_run(command, 0), command  # a salt command, or a make target running some


@pytest.mark.slow
def test_the_readme_commands_run_on_generated_data(tmp_path):
    commands = readme_commands((REPO_ROOT / "README.md").read_text())
    cwd = tmp_path / "clone"
    generate(cwd / "data" / "tgs", n_train=30, n_test=5, seed=0)  # what `make data` downloads
    runs = [run for i, c in enumerate(commands) if not excused(c) for run in as_run(c, i)]

    results, process = run_commands(runs, cwd)
    statuses = [r["status"] for r in results]
    assert statuses == [0] * len(runs), process.stdout[-3000:] + process.stderr[-5000:]
    with open(tmp_path / "durations.txt", "w") as log:  # each command's time, when it slows down
        log.writelines(f"{r['seconds']:6.1f} s  {shlex.join(r['command'])}\n" for r in results)

    folds = sorted(p.name for p in (cwd / "multirun" / "resnet34").iterdir() if p.is_dir())
    assert folds == [f"{k}_fold{k}" for k in range(5)]
    assert all((cwd / "multirun" / "resnet34" / f / "postprocess.json").is_file() for f in folds)
    submission = pd.read_csv(cwd / "submission.csv")
    expected = pd.read_csv(cwd / "data" / "tgs" / "sample_submission.csv")
    assert submission["id"].tolist() == expected["id"].tolist()
    assert len(pd.read_csv(cwd / "multirun" / "resnet34" / "report.csv")) == 5
    assert (cwd / "outputs" / "section" / "mask.png").is_file()
    assert (cwd / "outputs" / "survey" / "mask.sgy").is_file()
    assert (cwd / "outputs" / "demo" / "metrics.json").is_file()
    left = {p.name for p in cwd.iterdir()}
    assert left <= {"data", "outputs", "multirun", "submission.csv", "submission.overlays.png"}
