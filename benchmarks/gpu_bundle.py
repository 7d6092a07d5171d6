"""The offline bundle for a GPU machine without network: `make gpu-bundle`.

    python benchmarks/gpu_bundle.py [--out bundle] [--data ../shared/tgs] [--test ../shared/tgs-holdout]
        [--requirements benchmarks/gpu-wheels.txt] [--limit-mib 64]

Writes OUT/wheels (the packages of --requirements for CPython 3.12 on x86_64 Linux, downloaded
without their dependencies, built here where PyPI has no wheel), OUT/tgs (the training data:
train.csv, depths.csv, train/images, train/masks; not the test tiles) and OUT/tgs-holdout (the test
folder to predict: sample_submission.csv, test/images). Every wheel's requirements must be met by
the wheelhouse or by benchmarks/gpu-machine-packages.txt. The bundle is built beside OUT and
moved into place only when it is complete and within --limit-mib; otherwise one line, `error: ...`,
exit status 1, and OUT is left as it was.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

HERE = Path(__file__).resolve().parent
MACHINE_PACKAGES = HERE / "gpu-machine-packages.txt"
PYTHON = "3.12"
PLATFORMS = [
    f"manylinux{tag}_x86_64"
    for tag in ("_2_28", "_2_27", "_2_24", "_2_17", "2014", "_2_5", "1")  # newest glibc first
]
# the GPU machine, for evaluating environment markers of Requires-Dist
TARGET = {
    **default_environment(),
    "python_version": PYTHON,
    "python_full_version": f"{PYTHON}.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}
MIB = 1024 * 1024


class BundleError(Exception):
    """One line for the user: what is wrong, naming the file or package."""


def read_names(path: Path) -> list[str]:
    """Non-comment lines of a list file."""
    if not path.is_file():
        raise BundleError(f"{path}: file not found")
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def runs_on_target(wheel: Path) -> bool:
    """Whether a wheel installs on CPython 3.12, x86_64 Linux."""
    _, _, _, tags = parse_wheel_filename(wheel.name)
    interpreters = {"py3", "cp312", "py312"}
    return any(
        tag.interpreter in interpreters
        and tag.abi in {"none", "abi3", "cp312"}
        and (tag.platform == "any" or tag.platform.endswith("_x86_64") and "linux" in tag.platform)
        for tag in tags
    )


def requirements_of(wheel: Path) -> list[Requirement]:
    """The Requires-Dist of a wheel that apply on the target without extras."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(name).decode())
    requirements = [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]
    return [r for r in requirements if r.marker is None or r.marker.evaluate(TARGET)]


def check_wheelhouse(wheels: list[Path], machine: set[str]) -> None:
    """One version of each package, none the machine has, every need met: else BundleError."""
    versions: dict[str, list[str]] = {}
    for wheel in wheels:
        name, version, _, _ = parse_wheel_filename(wheel.name)
        versions.setdefault(name, []).append(str(version))
        if not runs_on_target(wheel):
            raise BundleError(f"{wheel}: not for CPython {PYTHON} on x86_64 Linux")
    for name, found in versions.items():
        if len(found) > 1:
            raise BundleError(
                f"{name}: {len(found)} versions in the wheelhouse ({', '.join(found)})"
            )
        if name in machine:
            raise BundleError(
                f"{name}: the GPU machine has it already; drop it from the wheelhouse"
            )
    for wheel in wheels:
        for requirement in requirements_of(wheel):
            name = canonicalize_name(requirement.name)
            if name in versions:
                if not requirement.specifier.contains(versions[name][0], prereleases=True):
                    raise BundleError(
                        f"{wheel.name}: needs {requirement}, the wheelhouse has {versions[name][0]}"
                    )
            elif name not in machine:
                raise BundleError(
                    f"{wheel.name}: needs {requirement.name}, which neither the wheelhouse nor "
                    f"the GPU machine ({MACHINE_PACKAGES.name}) has"
                )


def download(requirement: str, folder: Path) -> None:
    """A binary wheel for the target, else one built here (pure Python only passes the check)."""
    pip = [sys.executable, "-m", "pip", "-q"]
    target = ["--python-version", PYTHON, "--implementation", "cp", "--abi", "cp312"]
    target += ["--abi", "abi3", "--abi", "none", *(f"--platform={p}" for p in PLATFORMS)]
    fetch = [*pip, "download", "--no-deps", "--only-binary=:all:", *target, "-d", str(folder)]
    if subprocess.run([*fetch, requirement], capture_output=True, text=True).returncode == 0:
        return
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(folder), requirement], capture_output=True, text=True
    )
    if built.returncode != 0:
        last = (built.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise BundleError(f"{requirement}: no wheel for CPython {PYTHON} x86_64 ({last})")


def copy_data(data: Path, test: Path, bundle: Path) -> None:
    for name in ("train.csv", "depths.csv"):
        if (data / name).is_file():
            shutil.copy2(data / name, bundle / "tgs" / name)
    for folder in ("train/images", "train/masks"):
        if (data / folder).is_dir():
            shutil.copytree(data / folder, bundle / "tgs" / folder)
    (bundle / "tgs-holdout").mkdir()
    for name in ("sample_submission.csv", "README.md"):
        if (test / name).is_file():
            shutil.copy2(test / name, bundle / "tgs-holdout" / name)
    shutil.copytree(test / "test" / "images", bundle / "tgs-holdout" / "test" / "images")


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def check_inputs(args: argparse.Namespace) -> None:
    if not (args.data / "train.csv").is_file() or not (args.data / "train" / "images").is_dir():
        raise BundleError(f"{args.data}: expected train.csv and train/images/ (the Kaggle layout)")
    if not (args.test / "sample_submission.csv").is_file():
        raise BundleError(f"{args.test / 'sample_submission.csv'}: file not found")
    if not (args.test / "test" / "images").is_dir():
        raise BundleError(f"{args.test / 'test' / 'images'}: folder not found")


def build(args: argparse.Namespace) -> None:
    check_inputs(args)
    requirements = read_names(args.requirements)
    machine = {canonicalize_name(n) for n in read_names(MACHINE_PACKAGES)}
    partial = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        (partial / "wheels").mkdir(parents=True)
        (partial / "tgs" / "train").mkdir(parents=True)
        for requirement in requirements:
            print(f"wheel: {requirement}", flush=True)
            download(requirement, partial / "wheels")
        check_wheelhouse(sorted((partial / "wheels").glob("*.whl")), machine)
        copy_data(args.data, args.test, partial)
        sizes = {part: size_of(partial / part) for part in ("wheels", "tgs", "tgs-holdout")}
        total = sum(sizes.values())
        parts = ", ".join(f"{part} {size / MIB:.1f} MiB" for part, size in sizes.items())
        if total > args.limit_mib * MIB:
            raise BundleError(
                f"{args.out}: {total / MIB:.1f} MiB ({parts}), over the {args.limit_mib:g} MiB limit"
            )
        shutil.rmtree(args.out, ignore_errors=True)
        partial.rename(args.out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    count = len(list((args.out / "wheels").glob("*.whl")))
    print(f"wrote {args.out}: {total / MIB:.1f} MiB ({parts}; {count} wheels)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bundle"))
    parser.add_argument("--data", type=Path, default=Path("../shared/tgs"))
    parser.add_argument("--test", type=Path, default=Path("../shared/tgs-holdout"))
    parser.add_argument("--requirements", type=Path, default=HERE / "gpu-wheels.txt")
    parser.add_argument("--limit-mib", type=float, default=64.0)
    args = parser.parse_args(argv)
    try:
        build(args)
    except BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
