"""The search space: which knobs the sweep turns, their flag syntax, and suggesting them per trial."""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from models.stages import RESNET_STAGES
from sweep.bounds import Bounds
from sweep.errors import UsageError
from sweep.optim import SCHEDULERS


class SpaceError(UsageError):
    """A search-space value a user wrote that we cannot accept; the message names it."""


# The knobs the sweep turns, in the order a trial samples them.
PARAMS: dict[str, Bounds] = {
    "lr": Bounds(float, "Learning rate.", 0, 10, open_ends="low", log=True, search="range"),
    "batch_size": Bounds(int, "Batch size.", 2, search="list"),
    "dropout": Bounds(float, "Dropout before the new head.", 0, 1, open_ends="high", search="range"),
    "weight_decay": Bounds(float, "Weight decay.", 0, 1, log=True, search="range"),
    "scheduler": Bounds(str, "LR scheduler.", choices=SCHEDULERS, search="list"),
    "frozen_stages": Bounds(int, "Number of frozen ResNet stages (1 = stem+layer1 ... "
                                 f"{RESNET_STAGES} = all but the head).", 0, RESNET_STAGES, search="range_or_list"),
}

# The default sweep: wide enough to contain every usual plateau fix.
DEFAULT_SPACE_TEXT: dict[str, str] = {
    "lr": "1e-5:1e-1",
    "batch_size": "16,32,64",
    "dropout": "0:0.6",
    "weight_decay": "1e-6:1e-2",
    "scheduler": ",".join(SCHEDULERS),
    "frozen_stages": f"0:{RESNET_STAGES}",
}

# The plateau-prone settings a typical stalled fine-tune uses, compared against when none are given.
DEFAULT_BASELINE: dict[str, Any] = {
    "lr": 1e-4,
    "batch_size": 32,
    "dropout": 0.5,
    "weight_decay": 1e-3,
    "scheduler": "none",
    "frozen_stages": RESNET_STAGES,  # only the head trains
}


def _bounds(name: str) -> Bounds:
    try:
        return PARAMS[name]
    except KeyError:
        raise SpaceError(
            f"unknown parameter {name!r}: accepted are {', '.join(PARAMS)}"
        ) from None


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def accepted(name: str) -> str:
    """What a knob's flag accepts, in words (errors and --help), from its bounds and its default as the example."""
    bounds, example = _bounds(name), DEFAULT_SPACE_TEXT[name]
    if bounds.search == "range":
        return f"{bounds.accepted()}, or a LOW:HIGH range{' (log scale)' if bounds.log else ''} such as {example}"
    if bounds.search == "list":
        return f"{bounds.accepted()}, or a comma-separated list of them such as {example}"
    return f"{bounds.accepted()}, a LOW:HIGH range or a comma-separated list such as {example}"


def parse_value(name: str, text: Any) -> Any:
    """One value of a parameter (from a flag, a file or --baseline), checked against its bounds."""
    bounds = _bounds(name)
    raw = str(text).strip()
    if bounds.kind is str:
        if not bounds.accepts(raw):
            raise SpaceError(f"{name}={raw!r} is not accepted: expected {accepted(name)}")
        return raw
    try:
        number = float(raw)
    except ValueError:
        raise SpaceError(f"{name}={raw!r} is not a number: expected {accepted(name)}") from None
    if not math.isfinite(number):
        raise SpaceError(f"{name}={raw!r} is not finite: expected {accepted(name)}")
    if bounds.kind is int:
        if number != int(number):
            raise SpaceError(f"{name}={raw!r} is not an integer: expected {accepted(name)}")
        number = int(number)
    if not bounds.accepts(number):
        raise SpaceError(f"{name}={raw!r} is out of range: expected {accepted(name)}")
    return number


def parse_param(name: str, text: Any) -> BaseDistribution:
    """Flag syntax to an Optuna distribution: ``LOW:HIGH`` range, ``a,b,c`` list, or one value (fixed)."""
    bounds = _bounds(name)
    if isinstance(text, (list, tuple)):
        text = ",".join(str(item) for item in text)
    raw = str(text).strip()
    if not raw:
        raise SpaceError(f"{flag(name)} is empty: expected {accepted(name)}")
    if ":" in raw:
        if bounds.search == "list":
            raise SpaceError(f"{flag(name)} {raw}: a range is not accepted here: expected {accepted(name)}")
        low_text, _, high_text = raw.partition(":")
        low, high = parse_value(name, low_text), parse_value(name, high_text)
        if low >= high:
            raise SpaceError(
                f"{flag(name)} {raw}: low must be below high (got low={low_text.strip()}, "
                f"high={high_text.strip()})"
            )
        if bounds.kind is int:
            return IntDistribution(int(low), int(high))
        if bounds.log and low <= 0:
            raise SpaceError(
                f"{flag(name)} {raw}: a log-scale range needs low > 0 (got low={low_text.strip()}); "
                f"fix the value instead, e.g. {flag(name)} 0"
            )
        return FloatDistribution(float(low), float(high), log=bounds.log)
    values = [parse_value(name, part) for part in raw.split(",")]
    if len(set(values)) != len(values):
        raise SpaceError(f"{flag(name)} {raw}: a value is listed twice: expected {accepted(name)}")
    if len(values) == 1 and bounds.kind is float:
        value = float(values[0])
        # Optuna treats a zero-width distribution as a fixed value and asks no sampler.
        return FloatDistribution(value, value, log=bounds.log and value > 0)
    if len(values) == 1 and bounds.search == "range_or_list":
        return IntDistribution(values[0], values[0])
    if bounds.search == "range":
        raise SpaceError(f"{flag(name)} {raw}: a list is not accepted here: expected {accepted(name)}")
    return CategoricalDistribution(values)


def format_param(distribution: BaseDistribution) -> str:
    """The flag syntax that parses back to ``distribution`` (used by --emit-config and messages)."""
    if isinstance(distribution, CategoricalDistribution):
        return ",".join(str(choice) for choice in distribution.choices)
    if distribution.single():
        return f"{distribution.low:g}"
    return f"{distribution.low:g}:{distribution.high:g}"


def default_space() -> dict[str, BaseDistribution]:
    return {name: parse_param(name, text) for name, text in DEFAULT_SPACE_TEXT.items()}


def parse_baseline(text: str) -> dict[str, Any]:
    """``lr=1e-4,dropout=0.5`` to a dict of checked values."""
    baseline: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise SpaceError(
                f"--baseline {item!r} is not NAME=VALUE: expected e.g. lr=1e-4,dropout=0.5,frozen_stages=4"
            )
        baseline[name.strip()] = parse_value(name.strip(), value)
    return baseline


def parse_change(text: str) -> tuple[str, Any]:
    """``frozen_stages=3`` (``sweep confirm --value``) to a checked ``(name, value)``."""
    name, sep, value = text.partition("=")
    if not sep or not value.strip():
        raise SpaceError(f"--value {text!r} is not NAME=VALUE: expected e.g. frozen_stages=4 or lr=1e-4")
    return name.strip(), parse_value(name.strip(), value)


def check_baseline(baseline: dict[str, Any], space: dict[str, BaseDistribution]) -> list[str]:
    """Values of the baseline that lie outside the search space (allowed, but worth a warning)."""
    outside = []
    for name, value in baseline.items():
        distribution = space[name]
        if isinstance(distribution, CategoricalDistribution):
            inside = value in distribution.choices
        else:
            inside = distribution.low <= value <= distribution.high
        if not inside:
            outside.append(f"{name}={value} is outside {format_param(distribution)}")
    return outside


def suggest(trial: optuna.Trial, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """The trial's hyperparameters, sampled in the order of ``PARAMS``."""
    params: dict[str, Any] = {}
    for name in PARAMS:
        distribution = space[name]
        if isinstance(distribution, FloatDistribution):
            params[name] = trial.suggest_float(
                name, distribution.low, distribution.high, log=distribution.log
            )
        elif isinstance(distribution, IntDistribution):
            params[name] = trial.suggest_int(name, distribution.low, distribution.high)
        else:
            params[name] = trial.suggest_categorical(name, distribution.choices)
    return params
