"""Errors that the command-line entry points turn into one-line messages."""

from __future__ import annotations

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


def salt_error_in(error: BaseException | None) -> SaltError | None:
    """The SaltError behind `error`: itself, or the cause an exception wraps (Hydra's
    `instantiate` wraps what a constructor raises in an InstantiationException)."""
    while error is not None and not isinstance(error, SaltError):
        error = error.__cause__
    return error


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


class NonFiniteLossError(SaltError):
    """The training loss became NaN or infinite: training stops before the weights are touched."""
