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


def exit_on_salt_error(main: F) -> F:
    """Run a CLI entry point; a SaltError becomes `error: <message>` on stderr and exit 1."""

    @wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except SaltError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]
