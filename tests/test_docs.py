"""The tests the documents name exist: every `tests/<path>.py::test_name[param]` of
RELIABILITY.md, README.md, BENCHMARKS.md and the pages of docs/ names a file that exists, a test
function defined in it and, with a parameter, an id written in it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.helpers.runs import REPO_ROOT

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
