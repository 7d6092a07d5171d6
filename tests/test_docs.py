"""The documents hold nothing that does not work.

- The tests they name exist: every `tests/<path>.py::test_name[param]` of RELIABILITY.md,
  README.md, BENCHMARKS.md and the pages of docs/ names a file that exists, a test function
  defined in it and, with a parameter, an id written in it.
- The commands of docs/ (those of its bash blocks, and the salt commands with arguments in its
  prose) are read by the parser their program uses, without running them: a Hydra command's by
  Hydra's command-line and override parsers, then its config composed with the overrides (an
  unknown key or option fails); an argparse command's by its own parser (`main(args)`, stopped
  once parsed); through `time`, `torchrun`, `srun`, the console scripts and `make -n`. A command
  that runs no salt command is excused with its reason (NOT_SALT), as tests/test_readme.py does.
- The Hydra overrides the prose shows in code spans parse as the shell passes them on.
- The cheap commands that tests/test_readme.py does not run already run here; every other one
  has its reason (NOT_RUN).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import re
import shlex
import shutil
from pathlib import Path
from unittest import mock

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from salt.core.config import CONFIG_DIR, HYDRA_COMMANDS
from salt.data.synthetic import generate
from tests.helpers.commands import make_python_runs
from tests.helpers.runs import REPO_ROOT, load_script
from tests.test_readme import readme_commands

DOCUMENTS = (
    "RELIABILITY.md",
    "README.md",
    "BENCHMARKS.md",
    *sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "docs").glob("*.md")),
)
# a test file in backticks, with a test and a parameter id or not: `tests/x/test_y.py::test_z[id]`
# (an id may hold one level of brackets itself: `test_z[tta=[vflip]]`)
NAMED = re.compile(r"`([\w./-]*test_\w+\.py)(?:::(\w+)(?:\[((?:[^\[\]`]|\[[^\]`]*\])+)\])?)?`")


def named_tests(text: str) -> list[tuple[str, str | None, str | None]]:
    """(file, test or None, parameter id or None) for every test a document names."""
    return [match.groups() for match in NAMED.finditer(text)]


def defined_tests(path: Path) -> set[str]:
    """The test functions defined at the top of a test module."""
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def problems_in(text: str, root: Path) -> list[str]:
    problems = []
    for file, test, parameter in named_tests(text):
        name = f"{file}::{test}" if test else file
        path = root / file
        if not file.startswith("tests/"):
            problems.append(f"{name}: write the path from the repository root (tests/...)")
        elif not path.is_file():
            problems.append(f"{name}: no such file")
        elif test and test not in defined_tests(path):
            problems.append(f"{name}: no such test in {file}")
        elif parameter and parameter not in path.read_text():
            problems.append(f"{name}[{parameter}]: no parameter id {parameter!r} in {file}")
    return problems


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_test_a_document_names_exists(document):
    problems = problems_in((REPO_ROOT / document).read_text(), REPO_ROOT)
    assert not problems, "\n".join(problems)


def test_reliability_names_a_test_in_every_row_of_its_tables():
    rows = [
        line
        for line in (REPO_ROOT / "RELIABILITY.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith(("| what |", "| input |", "| ---"))
    ]
    assert len(rows) > 30
    assert [row for row in rows if not named_tests(row.rsplit(" | ", 1)[-1])] == []


def test_a_wrong_name_is_reported(tmp_path):
    (tmp_path / "tests" / "core").mkdir(parents=True)
    (tmp_path / "tests" / "core" / "test_a.py").write_text(
        '@pytest.mark.parametrize("x", ["one"])\ndef test_b(x):\n    pass\n'
    )
    text = (
        "`tests/core/test_a.py::test_b`, `tests/core/test_a.py::test_b[one]`, "
        "`tests/core/test_a.py::test_b[x=[one]]`, "
        "`tests/core/test_a.py`; wrong: `tests/core/test_a.py::test_c`, "
        "`tests/core/test_a.py::test_b[two]`, `tests/test_a.py::test_b`, `test_a.py::test_b`"
    )
    assert problems_in(text, tmp_path) == [
        "tests/core/test_a.py::test_b[x=[one]]: no parameter id 'x=[one]' in tests/core/test_a.py",
        "tests/core/test_a.py::test_c: no such test in tests/core/test_a.py",
        "tests/core/test_a.py::test_b[two]: no parameter id 'two' in tests/core/test_a.py",
        "tests/test_a.py::test_b: no such file",
        "test_a.py::test_b: write the path from the repository root (tests/...)",
    ]


# The commands of docs/: every salt command is read by the parser the program uses (Hydra's for
# the Hydra commands, its config composed with the overrides; the program's own argparse for the
# others) without running; the cheap ones that the README test does not run already run here.

BLOCKS = re.compile(r"```(\w*)\n(.*?)```", re.S)
SPAN = re.compile(r"`([^`]+)`")
# a salt command with arguments in a page's prose (a bare `python -m salt.train` only names it)
SPAN_COMMAND = re.compile(r"(python -m salt\.[\w.]+|salt-[\w-]+) (?!\.\.\.$)\S")
# a prose command's placeholders, each standing for a value of its kind
PLACEHOLDERS = {
    "DIR": "data/tgs",
    "DATA": "data/tgs",
    "RUN": "outputs/demo",
    "RUN_DIR": "outputs/demo",
    "M": "40",
    "[override ...]": "",
}
# a command that runs no salt command (or none that can be read from it) -> why not
NOT_SALT = {
    "make test": "the test suite itself (CI runs it: .ci/run)",
    "make lint": "CI runs it (.ci/run)",
    "make typecheck": "CI runs it (.ci/run)",
    "make docs": "CI runs it (.ci/run)",
    "make install": "makes .venv, the environment these tests run in",
    "make pseudo": "a shell loop of the salt.train -m and salt.pseudo commands above it on its "
    "page, each read here",
    ".venv/bin/python -m pytest": "the GPU tests (skipped here without CUDA)",
    "rsync": "copies the checkout to a GPU machine",
    "tar czf": "packs the checkout for a GPU machine",
    "scp": "copies the packed checkout to a GPU machine",
    "pip wheel": "builds the wheel: tests/test_packaging.py does, in a folder of its own",
    "pip install": "installs the wheel: tests/test_packaging.py does, in a venv of its own",
    "SALT_DATA_ROOT=": "runs a notebook: tests/test_notebooks.py runs both",
    "SALT_RUN_DIR=": "runs a notebook: tests/test_notebooks.py runs both",
}
# a salt command that is read here but not run (the first pattern found in it) -> why not
NOT_RUN = (
    (r"\.\./shared/", "reads the real data of ../shared, which a clone does not have"),
    (r"make data", "downloads the competition's data: needs the network and Kaggle credentials"),
    (
        r" --cfg ",
        "prints the config, which test_every_docs_command_parses_as_its_program_reads_it composes",
    ),
    (
        r"salt[.-]train|make train",
        "trains: minutes (tests/test_readme.py trains on generated data)",
    ),
    (
        r"outputs/demo|multirun/|outputs/r34|outputs/round|outputs/labels0|runs=\[run\]"
        r"|salt\.report ",
        "needs trained runs: training them takes minutes (tests/test_readme.py trains runs and "
        "runs salt.tune, salt.predict, salt.report, salt.section and salt.survey on them)",
    ),
    (
        r"salt\.paint tiles paint/cube ",
        "reads lines painted by hand in an image editor (tests/sections/test_painting.py "
        "paints them and runs it)",
    ),
    (
        r"salt\.data\.synthetic data/synthetic --train 600 ",
        "writes 700 tiles, seconds of disk: "
        "the same command for 70 runs here (docs/gpu-check.md's)",
    ),
    (
        r"salt\.bench\.(metric|quality|swa_start|pseudo|collectives|throughput(?! --help))"
        r"|make bench",
        "a benchmark: minutes (tests/bench/ runs each on small settings)",
    ),
    (
        r"make gpu-|benchmarks/gpu_check\.py",
        "the GPU check: minutes of training (tests/test_gpu_check.py, tests/test_gpu_bundle.py)",
    ),
)
# a Hydra command whose overrides are parsed but not composed (an argument in it) -> why not
NOT_COMPOSED = {
    "hydra.searchpath=[file:///home/me/salt_conf]": "composes only with the user's own config "
    "folder (experiment=mine in it, as the page shows)",
    "hydra.searchpath=[file://$PWD/my_conf]": "composes only with the user's own config folder "
    "(model=minimal in it, as docs/customizing.md shows)",
}
# an override in a page's prose that is not one -> what it is
NOT_OVERRIDES = {"cpu=experiment=cpu": "an --arm of salt.bench.quality: NAME=overrides"}
OVERRIDE = re.compile(r"['\"]?(\+{1,2}|~)?[a-z_][\w/]*(\.[\w/]+)*(@[\w.]+)?=")


def page_commands(text: str) -> list[str]:
    """A page's commands: its bash blocks' (as the README test reads them), then the salt
    commands with arguments in its prose, placeholders replaced."""
    commands = readme_commands(text)
    for span in SPAN.findall(BLOCKS.sub("", text)):
        words = " ".join(span.split())
        if SPAN_COMMAND.match(words):
            for placeholder, value in PLACEHOLDERS.items():
                words = re.sub(rf"(?<!\S){re.escape(placeholder)}(?!\S)", value, words)
            commands.append(shlex.join(shlex.split(words)))
    return commands


PAGES = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "docs").glob("*.md"))


def docs_commands() -> list[tuple[str, str]]:
    """(page, command) of every page of docs/."""
    return [
        (page, command)
        for page in PAGES
        for command in page_commands((REPO_ROOT / page).read_text())
    ]


def invocations(command: str) -> list[tuple[str, list[str]]]:
    """(program, arguments) of each salt command `command` runs: program a module (salt.train)
    or a script (benchmarks/gpu_check.py); through `time`, `torchrun`, `srun`, `cd DIR &&`,
    a console script (salt-train) or a make target (the commands `make -n` prints)."""
    words = shlex.split(command)
    if "&&" in words:
        words = words[words.index("&&") + 1 :]
    if words[0] == "time":
        words = words[1:]
    if words[0] == "make":
        runs = make_python_runs(words[1:])
        return [call for run in runs for call in invocations(shlex.join(["python", *run]))]
    if words[0] == "torchrun":
        words = ["python", *words[words.index("-m") :]]
    if words[0] == "srun":
        words = words[words.index("python") :]
    if words[0] in CONSOLE_SCRIPTS:
        return [(CONSOLE_SCRIPTS[words[0]], words[1:])]
    if words[:2] == ["python", "-m"] and words[2].startswith("salt."):
        return [(words[2], words[3:])]
    if words[0] == "python" and words[1].startswith("benchmarks/"):
        return [(words[1], words[2:])]
    return []


def console_scripts() -> dict[str, str]:
    """salt-X -> the module it runs, from pyproject.toml."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    table = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    scripts = dict(re.findall(r'^(salt-[\w-]+) = "([\w.]+):\w+"', table, re.M))
    return {script: HYDRA_COMMANDS.get(script, module) for script, module in scripts.items()}


CONSOLE_SCRIPTS = console_scripts()


def test_the_install_page_lists_every_console_script_with_its_module():
    """docs/install.md's table: each row's scripts and, in the same order, their modules."""
    text = (REPO_ROOT / "docs" / "install.md").read_text()
    table = text.split("| console script | the same as |", 1)[1].split("\n\n", 1)[0]
    listed = {}
    for row in table.splitlines()[2:]:
        scripts_cell, modules_cell = row.strip("| ").split(" | ")
        scripts = re.findall(r"`(salt-[\w-]+)`", scripts_cell)
        modules = re.findall(r"(salt\.[\w.]+)`", modules_cell)
        assert len(scripts) == len(modules), row
        listed.update(zip(scripts, modules))
    assert listed == CONSOLE_SCRIPTS


class Parsed(Exception):
    """Raised in place of running a program once its argparse parser has read the arguments."""


def argparse_problem(program: str, args: list[str]) -> str | None:
    """What the program's own argparse parser says of `args` (None: it reads them), read by
    calling its `main(args)` with the parser stopping the program once it has parsed."""
    if program.endswith(".py"):
        main = load_script(Path(program).stem).main
    else:
        main = importlib.import_module(program).main

    def parse_then_stop(original):
        def parse(self, *parse_args, **kwargs):
            original(self, *parse_args, **kwargs)
            raise Parsed

        return parse

    errors = io.StringIO()
    parser = argparse.ArgumentParser
    with (
        mock.patch.object(parser, "parse_args", parse_then_stop(parser.parse_args)),
        mock.patch.object(
            parser, "parse_intermixed_args", parse_then_stop(parser.parse_intermixed_args)
        ),
        contextlib.redirect_stderr(errors),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            main(args)
        except Parsed:
            return None
        except SystemExit as stop:  # --help: 0; a bad argument: 2 and argparse's message
            return None if stop.code == 0 else errors.getvalue().strip().splitlines()[-1]
    return "ran to the end without parsing its arguments"


def hydra_overrides(args: list[str]) -> tuple[str, list[str]]:
    """(config name, the overrides to compose: a sweep's first value) of a Hydra command line,
    read by Hydra's own command-line parser and override parser; an exception where Hydra
    would refuse it."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            options = get_args_parser().parse_args(args)
    except SystemExit:
        raise ValueError(errors.getvalue().strip().splitlines()[-1]) from None
    overrides = []
    for override in OverridesParser.create().parse_overrides(options.overrides):
        if override.is_sweep_override():
            assert options.multirun, f"{override.input_line}: a sweep without -m"
            first = next(iter(override.sweep_string_iterator()))
            overrides.append(f"{override.get_key_element()}={first}")
        else:
            overrides.append(override.input_line)
    return options.config_name, overrides


def hydra_problems(calls: list[tuple[str, list[str]]]) -> list[str]:
    """Each Hydra command's overrides parsed and composed into its config (one line each where
    Hydra refuses them: an unknown key or option, a bad override)."""
    problems = []
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        for module, args in calls:
            try:
                name, overrides = hydra_overrides(args)
                if any(arg in NOT_COMPOSED for arg in args):
                    continue
                compose(
                    config_name=name or module.rsplit(".", 1)[1],
                    overrides=overrides,
                    return_hydra_config=True,
                )
            except (Exception, SystemExit) as error:
                line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
                problems.append(f"{module} {shlex.join(args)}: {line}")
    GlobalHydra.instance().clear()
    return problems


def readme_runs(command: str) -> bool:
    return command in readme_commands((REPO_ROOT / "README.md").read_text())


def not_run(command: str) -> str | None:
    return next((why for pattern, why in NOT_RUN if re.search(pattern, command)), None)


def test_every_docs_command_is_a_salt_command_or_excused():
    commands = docs_commands()
    assert (
        "docs/training.md",
        "python -m salt.train experiment=resnet34 data.root=data/tgs data.fold=0",
    ) in commands
    unread = [
        f"{page}: {command}"
        for page, command in commands
        if not invocations(command) and not any(command.startswith(s) for s in NOT_SALT)
    ]
    assert not unread, "commands neither read nor excused (NOT_SALT):\n" + "\n".join(unread)


@pytest.mark.parametrize("page", PAGES)
def test_every_docs_command_parses_as_its_program_reads_it(page):
    commands = page_commands((REPO_ROOT / page).read_text())
    calls = [(command, call) for command in commands for call in invocations(command)]
    problems = hydra_problems([call for _, call in calls if call[0] in HYDRA_COMMANDS.values()])
    for command, (program, args) in calls:
        if program not in HYDRA_COMMANDS.values():
            problem = argparse_problem(program, args)
            if problem:
                problems.append(f"{command}: {problem}")
    assert not problems, "commands their program refuses:\n" + "\n".join(problems)


def prose_overrides(text: str) -> list[str]:
    """The Hydra overrides a page's prose shows in code spans (`key=value`, `'key=[a,b]'`)."""
    spans = [" ".join(span.split()) for span in SPAN.findall(BLOCKS.sub("", text))]
    return [span for span in spans if OVERRIDE.match(span)]


def override_problems(spans: list[str]) -> list[str]:
    """What Hydra's override parser says of each span, as the shell passes it on (one line
    each it refuses)."""
    parser = OverridesParser.create()
    problems = []
    for span in spans:
        if span in NOT_OVERRIDES:
            continue
        try:
            parser.parse_overrides(shlex.split(span))
        except Exception as error:
            problems.append(f"{span}: {str(error).splitlines()[0]}")
    return problems


def test_every_override_in_the_docs_prose_parses():
    spans = [
        span
        for page in sorted((REPO_ROOT / "docs").glob("*.md"))
        for span in prose_overrides(page.read_text())
    ]
    assert "data.on_device=true" in spans and len(spans) > 100
    problems = override_problems(spans)
    assert not problems, "overrides Hydra refuses:\n" + "\n".join(problems)


def test_a_refused_override_or_command_is_named():
    text = (
        "Quote it: `'runs=[multirun/resnet34/*_fold[0-2]]'`, `module.compile={mode: fast}`, "
        "`runs=[a,b]`.\n```bash\npython -m salt.tune 'runs=[x/*_fold[0-2]]'\n"
        "python -m salt.evaluate sub.csv masks --no-such-option\n```\n"
    )
    assert override_problems(prose_overrides(text)) == [
        "'runs=[multirun/resnet34/*_fold[0-2]]': no viable alternative at input "
        "'[multirun/resnet34/*_fold['",
        "module.compile={mode: fast}: no viable alternative at input '{mode:'",
    ]
    tune, evaluate = page_commands(text)
    assert hydra_problems(invocations(tune)) == [
        "salt.tune 'runs=[x/*_fold[0-2]]': no viable alternative at input '[x/*_fold['"
    ]
    assert argparse_problem(*invocations(evaluate)[0]).endswith(
        ": error: unrecognized arguments: --no-such-option"
    )


def test_the_cheap_docs_commands_run(tmp_path, monkeypatch, capsys):
    """Those neither excused (NOT_RUN) nor run by tests/test_readme.py, in this process, from a
    folder holding generated data and a submission of its training masks."""
    commands = [
        command
        for _, command in docs_commands()
        if invocations(command) and not readme_runs(command) and not not_run(command)
    ]
    assert "python -m salt.evaluate submission.csv data/tgs/train/masks" in commands
    generate(tmp_path / "data" / "tgs", n_train=30, n_test=5, seed=0)
    shutil.copy(tmp_path / "data" / "tgs" / "train.csv", tmp_path / "submission.csv")
    monkeypatch.chdir(tmp_path)
    for program, args in [call for command in commands for call in invocations(command)]:
        assert program not in HYDRA_COMMANDS.values(), f"{program}: run it as test_readme does"
        try:
            importlib.import_module(program).main(args)
        except SystemExit as stop:  # --help
            assert stop.code in (0, None), f"{program} {shlex.join(args)}: {capsys.readouterr()}"
    assert "score 1.0000" in capsys.readouterr().out  # the training masks against themselves
