"""Which part of salt may import which: read from the source (ast), nothing imported.

    commands (salt/train.py, predict.py, ...)    anything
    salt.bench       every package, no command (a benchmark runs a command as a process)
    salt.analysis    core, data, inference
    salt.sections    core, data, models, inference
    salt.training    core, data, models, inference (the end of a fit predicts the OOF)
    salt.inference   core, data, models; no Lightning (it predicts without a Trainer), so not
                     salt.data.datamodule, the LightningDataModule either
    salt.data        core
    salt.models      core
    salt.core        nothing of salt

No package (salt.bench included) imports a command module, and no two modules import each other,
directly or round a longer cycle, at the top or inside a function. Lightning's private names are
named in salt/training/lightning_private.py alone. docs/architecture.md draws the same rules.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.runs import REPO_ROOT

SALT = REPO_ROOT / "salt"
PACKAGES = ("core", "data", "models", "training", "inference", "sections", "analysis", "bench")
ANYTHING = None
LIBRARY = ("core", "data", "models", "training", "inference", "sections", "analysis")
ALLOWED: dict[str, tuple[str, ...] | None] = {
    "core": (),
    "data": ("core",),
    "models": ("core",),
    "training": ("core", "data", "models", "inference"),
    "inference": ("core", "data", "models"),
    "sections": ("core", "data", "models", "inference"),
    "analysis": ("core", "data", "inference"),
    "bench": LIBRARY,
    "commands": ANYTHING,
}
# modules a package must not import although their package is allowed, and why
FORBIDDEN: dict[str, dict[str, str]] = {
    "inference": {
        "pytorch_lightning": "inference runs without Lightning",
        "lightning_fabric": "inference runs without Lightning",
        "lightning": "inference runs without Lightning",
        "salt.data.datamodule": "the LightningDataModule: inference runs without Lightning",
    },
}
LIGHTNING = ("pytorch_lightning", "lightning_fabric", "lightning", "torchmetrics")
LIGHTNING_PRIVATE = "salt/training/lightning_private.py"
COMMANDS = sorted(p.stem for p in SALT.glob("*.py") if p.stem not in ("__init__", "__main__"))


def module_name(path: Path, repo: Path = REPO_ROOT) -> str:
    parts = path.relative_to(repo).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str | None:
    """The part of salt a dotted module name belongs to: a package, "commands", or None."""
    parts = module.split(".")
    if parts[0] != "salt" or len(parts) == 1:
        return None
    if parts[1] in PACKAGES:
        return parts[1]
    return "commands" if parts[1] in COMMANDS else None


def is_module(name: str, repo: Path) -> bool:
    path = repo.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(path: Path, repo: Path = REPO_ROOT) -> list[tuple[int, str]]:
    """(line, imported module) of every import in a file, those inside functions too; `from
    package import module` is that module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path, repo)
    package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..core import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "salt":  # from salt import train: the module salt.train
                found += [(node.lineno, f"salt.{alias.name}") for alias in node.names]
            else:  # from salt.data import synthetic: the module salt.data.synthetic
                modules = [f"{base}.{a.name}" for a in node.names]
                modules = [m for m in modules if base.startswith("salt.") and is_module(m, repo)]
                found += [(node.lineno, m) for m in modules] or [(node.lineno, base)]
    return found


def violations(repo: Path = REPO_ROOT) -> list[str]:
    """One line per import against the rules: file:line: module imports what (why not)."""
    problems = []
    for path in sorted((repo / "salt").rglob("*.py")):
        name = module_name(path, repo)
        source = part_of(name) or "commands"
        allowed = ALLOWED[source]
        for line, imported in imports(path, repo):
            where = f"{path.relative_to(repo)}:{line}: {name} imports {imported}"
            reasons = FORBIDDEN.get(source, {})
            banned = next(
                (m for m in reasons if imported == m or imported.startswith(m + ".")), None
            )
            if banned is not None:
                problems.append(f"{where} ({reasons[banned]})")
                continue
            target = part_of(imported)
            if target is None or target == source or allowed is ANYTHING:
                continue
            if target == "commands":
                problems.append(f"{where} (a command module: only commands may)")
            elif target not in allowed:
                may = ", ".join(f"salt.{p}" for p in allowed) or "nothing of salt"
                problems.append(f"{where} (salt.{source} may import {may})")
    return problems


def import_graph(repo: Path = REPO_ROOT) -> dict[str, dict[str, str]]:
    """{module: {salt module it imports: where (file:line)}} for every module of salt/."""
    graph: dict[str, dict[str, str]] = {}
    for path in sorted((repo / "salt").rglob("*.py")):
        name = module_name(path, repo)
        edges = graph.setdefault(name, {})
        for line, imported in imports(path, repo):
            while imported and not is_module(imported, repo):  # salt.x.f: the module salt.x
                imported = imported.rpartition(".")[0]
            if imported.startswith("salt") and imported != name:
                edges.setdefault(imported, f"{path.relative_to(repo)}:{line}")
    return graph


def cycles(repo: Path = REPO_ROOT) -> list[str]:
    """One line per group of modules that import each other (a strongly connected component
    of the import graph, found by Tarjan's algorithm), naming each import inside the group."""
    graph = import_graph(repo)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph.get(module, {}):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while (top := stack.pop()) != module:
                group.append(top)
            if group:
                groups.append(sorted([module, *group]))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [
        f"{', '.join(group)} import each other: "
        + "; ".join(
            f"{where} {module} imports {other}"
            for module in group
            for other, where in graph[module].items()
            if other in group
        )
        for group in sorted(groups)
    ]


def lightning_private_names(repo: Path = REPO_ROOT) -> set[str]:
    """The private Lightning names lightning_private relies on: its strings like "_name"."""
    tree = ast.parse((repo / LIGHTNING_PRIVATE).read_text())
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"_[a-z]\w*", node.value)
    }


def private_lightning_module(name: str) -> bool:
    """Whether a dotted name is in Lightning and private: pytorch_lightning.loops._loop."""
    top, *rest = name.split(".")
    return top in LIGHTNING and any(part.startswith("_") for part in rest)


def private_lightning_uses(repo: Path = REPO_ROOT, names: set[str] | None = None) -> list[str]:
    """One line per place outside lightning_private that names a private Lightning name (an
    attribute, a method defined, a string, as getattr takes it) or imports a `_` name or module
    of Lightning."""
    names = lightning_private_names(repo) if names is None else names
    found: list[tuple[str, int, str]] = []
    for path in sorted((repo / "salt").rglob("*.py")):
        where = path.relative_to(repo)
        if str(where) == LIGHTNING_PRIVATE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            used = None
            if isinstance(node, ast.Attribute):
                used = node.attr if node.attr in names else None
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                used = node.name if node.name in names else None
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                used = node.value if node.value in names else None
            elif isinstance(node, ast.Import | ast.ImportFrom):
                if isinstance(node, ast.Import):
                    full = [alias.name for alias in node.names]
                else:
                    full = [f"{node.module}.{alias.name}" for alias in node.names]
                used = next((n for n in full if private_lightning_module(n)), None)
            if used is not None:
                found.append((str(where), node.lineno, used))
    return [
        f"{where}:{line}: {used} is Lightning's private name (only {LIGHTNING_PRIVATE} may name one)"
        for where, line, used in sorted(found)
    ]


def test_imports_point_the_allowed_way():
    problems = violations()
    assert not problems, "imports against the layout rules:\n" + "\n".join(problems)


def test_no_modules_import_each_other():
    problems = cycles()
    assert not problems, "import cycles:\n" + "\n".join(problems)


def test_an_import_cycle_names_its_modules_and_imports(tmp_path):
    (tmp_path / "salt" / "data").mkdir(parents=True)
    (tmp_path / "salt" / "data" / "a.py").write_text("from salt.data.b import f\n")
    (tmp_path / "salt" / "data" / "b.py").write_text("def f():\n    from salt.data import a\n")
    (tmp_path / "salt" / "data" / "c.py").write_text("from salt.data import a, b\n")
    assert cycles(tmp_path) == [
        "salt.data.a, salt.data.b import each other: salt/data/a.py:1 salt.data.a imports "
        "salt.data.b; salt/data/b.py:2 salt.data.b imports salt.data.a"
    ]


def test_only_lightning_private_names_lightnings_private_names():
    assert {"_broadcast_sigterm_tensor", "_save_topk_checkpoint", "_trainer"} <= (
        lightning_private_names()
    )
    problems = private_lightning_uses()
    assert not problems, "private Lightning names:\n" + "\n".join(problems)


def test_a_private_lightning_name_outside_lightning_private_is_named(tmp_path):
    (tmp_path / "salt" / "training").mkdir(parents=True)
    (tmp_path / LIGHTNING_PRIVATE).write_text('NAMES = ("_broadcast_sigterm_tensor", "_fs")\n')
    (tmp_path / "salt" / "training" / "a.py").write_text(
        "from pytorch_lightning.loops import _TrainingEpochLoop\n"
        "import pytorch_lightning.loops._loop\n"
        "loop._broadcast_sigterm_tensor = f\n"
        "getattr(writer, '_fs')\n"
        "self._own = pytorch_lightning.loops.fit_loop\n"
    )
    assert private_lightning_uses(tmp_path) == [
        f"salt/training/a.py:{line}: {name} is Lightning's private name "
        f"(only {LIGHTNING_PRIVATE} may name one)"
        for line, name in [
            (1, "pytorch_lightning.loops._TrainingEpochLoop"),
            (2, "pytorch_lightning.loops._loop"),
            (3, "_broadcast_sigterm_tensor"),
            (4, "_fs"),
        ]
    ]


def test_every_module_belongs_to_a_part():
    for path in SALT.rglob("*.py"):
        name = module_name(path)
        assert name == "salt" or part_of(name) is not None, f"{name}: in no part of the rules"
    assert {p.name for p in SALT.iterdir() if (p / "__init__.py").is_file()} == set(PACKAGES)


@pytest.mark.parametrize(
    "path, source, message",
    [
        (
            "salt/core/rundir.py",
            "from salt.inference.postprocess import PostProcess\n",
            "salt.core.rundir imports salt.inference.postprocess "
            "(salt.core may import nothing of salt)",
        ),
        (
            "salt/training/resume.py",
            "def f():\n    from salt import train\n",
            "salt/training/resume.py:2: salt.training.resume imports salt.train "
            "(a command module: only commands may)",
        ),
        (
            "salt/bench/quality.py",
            "from salt.tune import tune\n",
            "salt/bench/quality.py:1: salt.bench.quality imports salt.tune "
            "(a command module: only commands may)",
        ),
        (
            "salt/inference/tuning.py",
            "from ..predict import PRECISIONS\n",
            "salt.inference.tuning imports salt.predict (a command module: only commands may)",
        ),
        (
            "salt/inference/tiles.py",
            "import pytorch_lightning as pl\n",
            "salt.inference.tiles imports pytorch_lightning (inference runs without Lightning)",
        ),
        (
            "salt/analysis/oof.py",
            "from ..models import SaltNet\n",
            "salt.analysis.oof imports salt.models "
            "(salt.analysis may import salt.core, salt.data, salt.inference)",
        ),
    ],
)
def test_a_broken_rule_names_the_module_line_and_import(path, source, message, tmp_path):
    copy = tmp_path / path
    copy.parent.mkdir(parents=True)
    copy.write_text(source)
    problems = violations(tmp_path)
    assert len(problems) == 1 and message in problems[0], problems


def test_the_config_module_alone_registers_the_resolvers():
    # Hydra commands, the bench and the tests compose configs after importing only this module
    script = (
        "import sys, salt.core.config; from omegaconf import OmegaConf; "
        "assert all(OmegaConf.has_resolver(f'salt.{name}') for name in "
        "('or', 'launch_time', 'on_rank_zero', 'rank_suffix')); "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('salt'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["salt", "salt.core", "salt.core.config", "salt.core.launch"]


def test_the_architecture_page_names_every_module():
    layout = (REPO_ROOT / "docs" / "architecture.md").read_text().split("## Layout", 1)[1]
    missing = [
        str(path.relative_to(REPO_ROOT))
        for path in sorted(SALT.rglob("*.py"))
        if path.stem != "__init__" and f"{path.stem}.py" not in layout
    ]
    assert not missing, f"docs/architecture.md's Layout section leaves out {', '.join(missing)}"
