"""Errors that the command-line entry points turn into one-line messages."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

F = TypeVar("F", bound=Callable)


class SaltError(Exception):
    """A problem with the user's input: reported as one line, exit status 1."""


class DataError(SaltError, ValueError):
    """Input data that does not follow the Kaggle TGS layout or formats."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(SaltError, ValueError):
    """A config key (or command-line option) holding a value salt cannot use."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


def salt_error_in(error: BaseException | None) -> SaltError | None:
    """The SaltError behind `error`: itself, or the cause an exception wraps (Hydra's
    `instantiate` wraps what a constructor raises in an InstantiationException). A mandatory
    config value left unset (`runs: ???`) is one too."""
    while error is not None and not isinstance(error, SaltError):
        missing = _missing_config_value(error)
        if missing is not None:
            return missing
        error = error.__cause__
    return error


def _missing_config_value(error: BaseException) -> SaltError | None:
    from omegaconf.errors import MissingMandatoryValue

    if not isinstance(error, MissingMandatoryValue):
        return None
    key = getattr(error, "full_key", None) or "config"
    return ConfigError(key, f"needs a value: pass {key}=...")


def exit_on_salt_error(main: F) -> F:
    """Run a CLI entry point; a SaltError becomes `error: <message>` on stderr and exit 1."""

    @wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except Exception as error:
            salt_error = salt_error_in(error)
            if salt_error is None:
                raise
            print(f"error: {salt_error}", file=sys.stderr)
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]


class WriteError(SaltError, OSError):
    """A file that could not be written (a full disk, a read-only folder): one line naming it.

    An OSError too, so code that handles failed writes as OSError keeps working."""


class NonFiniteLossError(SaltError):
    """The training loss became NaN or infinite: training stops before the weights are touched."""


def run_hydra_main(main: Callable[[], object]) -> None:
    """Call a `@hydra.main` entry point; a bad override (an unknown key, a missing config) becomes
    one line, `error: ...`, and exit status 1, instead of Hydra's multi-line report; so does a
    SaltError raised outside the task (by a launcher: failed jobs of a parallel multirun)."""
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )

    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra re-raises instead of printing
    try:
        exit_on_salt_error(main)()
    except (ConfigCompositionException, MissingConfigException, OverrideParseException) as error:
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        message = message.split(" Config search path:")[0]
        cause = str(error.__cause__ or "").strip().splitlines()
        print(f"error: {message}" + (f" ({cause[0]})" if cause else ""), file=sys.stderr)
        raise SystemExit(1) from None
