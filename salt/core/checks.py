"""Config values checked where salt first reads them: a bad value is a `ConfigError`, one line
naming its key and the problem (`data.batch_size: must be a whole number of at least 1, got 0`),
raised before anything is written."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from salt.core.errors import ConfigError

T = TypeVar("T")

# what pytorch_lightning.Trainer(precision=...) accepts
TRAINER_PRECISIONS = (
    "32-true",
    "bf16-mixed",
    "16-mixed",
    "bf16-true",
    "16-true",
    "64-true",
    "transformer-engine",
    "transformer-engine-float16",
    "32",
    "16",
    "bf16",
    "64",
)
# trainer.max_time as Lightning reads a string: days:hours:minutes:seconds
MAX_TIME = re.compile(r"^\d+:\d+:\d+:\d+$")


def _show(value: Any) -> str:
    """A config value as it is written in YAML and on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def whole_number(key: str, value: Any, minimum: int, *, also: Sequence[Any] = ()) -> Any:
    """`value` if it is an integer >= `minimum` (or one of `also`, e.g. -1 or None)."""
    if value is None and None in also:
        return value
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (value >= minimum or value in also)
    ):
        return value
    alternatives = " or ".join(_show(a) for a in also)
    alternatives = f" (or {alternatives})" if alternatives else ""
    raise ConfigError(
        key, f"must be a whole number of at least {minimum}{alternatives}, got {value!r}"
    )


def probability(key: str, value: Any) -> float:
    """`value` if it is a number strictly between 0 and 1 (a threshold on probabilities)."""
    if not _is_number(value) or not 0 < value < 1:
        raise ConfigError(key, f"must be a number between 0 and 1 (exclusive), got {value!r}")
    return float(value)


def positive_number(key: str, value: Any) -> float:
    if not _is_number(value) or not value > 0:
        raise ConfigError(key, f"must be a number above 0, got {value!r}")
    return float(value)


def choice(key: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        names = ", ".join(_show(c) for c in choices)
        raise ConfigError(key, f"unknown value {value!r} (choose from {names})")
    return value


def choices(key: str, values: Any, allowed: Sequence[str]) -> list[str]:
    """A non-empty list whose every item is one of `allowed` (a bare name counts as a list)."""
    items = [values] if isinstance(values, str) else list(values or [])
    if not items:
        raise ConfigError(key, f"must name at least one of {', '.join(allowed)}")
    for item in items:
        if item not in allowed:
            raise ConfigError(key, f"unknown {item!r} (choose from {', '.join(allowed)})")
    return items


def each(key: str, values: Any, check: Callable[[str, Any], T]) -> list[T]:
    """Every item of the list `values` passed through `check`, errors naming `key`."""
    if isinstance(values, str) or not hasattr(values, "__iter__"):
        raise ConfigError(key, f"must be a list, e.g. {key}=[...], got {values!r}")
    return [check(key, value) for value in values]


def non_negative_whole_number(key: str, value: Any) -> int:
    return whole_number(key, value, 0)


def trainer_settings(trainer: Any) -> None:
    """The trainer keys whose bad values Lightning reports with a traceback from its constructor."""
    whole_number("trainer.max_epochs", trainer.get("max_epochs"), 1, also=(-1, None))
    whole_number("trainer.max_steps", trainer.get("max_steps", -1), 1, also=(-1,))
    max_time = trainer.get("max_time")
    if isinstance(max_time, str) and not MAX_TIME.match(max_time.strip()):
        raise ConfigError(
            "trainer.max_time",
            f"expected days:hours:minutes:seconds (00:01:30:00), got {max_time!r}",
        )
    whole_number("trainer.accumulate_grad_batches", trainer.get("accumulate_grad_batches", 1), 1)
    whole_number(
        "trainer.check_val_every_n_epoch",
        trainer.get("check_val_every_n_epoch", 1),
        1,
        also=(None,),
    )
    precision = trainer.get("precision", "32-true")
    choice("trainer.precision", str(precision), TRAINER_PRECISIONS)
