"""The search space: which knobs the sweep turns, their flag syntax, and suggesting them per trial."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Collection

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from models.stages import RESNET_STAGES
from sweep.errors import UsageError
from sweep.optim import SCHEDULERS



class SpaceError(UsageError):
    """A search-space value a user wrote that we cannot accept; the message names it."""


@dataclass(frozen=True)
class ParamSpec:
    """How one knob is written on the command line and what values it may take."""

    name: str
    kind: str  # "float" (range or single value), "int" (range, list or value), "choice" (list)
    accepted: str  # shown in errors and --help
    help: str = ""  # what the knob is, for --help
    log: bool = False
    minimum: float | None = None  # inclusive lower bound of any value
    exclusive_minimum: bool = False
    maximum: float | None = None  # inclusive upper bound of any value
    exclusive_maximum: bool = False
    choices: Collection[str] | None = None  # allowed strings for a choice of names, read when checked
    integer_choices: bool = False  # a choice of positive integers (batch size)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


PARAMS: dict[str, ParamSpec] = {
    spec.name: spec
    for spec in (
        ParamSpec("lr", "float", "a positive float or a LOW:HIGH range, e.g. 1e-5:1e-1 (log scale)",
                  log=True, minimum=0.0, exclusive_minimum=True, maximum=10.0, help="Learning rate."),
        ParamSpec("batch_size", "choice", "a comma-separated list of integers >= 2, e.g. 16,32,64",
                  integer_choices=True, minimum=2, help="Batch size."),
        ParamSpec("dropout", "float", "a float in [0, 1) or a LOW:HIGH range, e.g. 0:0.5",
                  minimum=0.0, maximum=1.0, exclusive_maximum=True, help="Dropout before the new head."),
        ParamSpec("weight_decay", "float",
                  "a float >= 0 or a LOW:HIGH range of positive floats, e.g. 1e-6:1e-2 (log scale)",
                  log=True, minimum=0.0, maximum=1.0, help="Weight decay."),
        ParamSpec("scheduler", "choice", "a comma-separated list of " + ", ".join(SCHEDULERS),
                  choices=SCHEDULERS, help="LR scheduler."),
        ParamSpec("frozen_stages", "int",
                  f"an integer 0..{RESNET_STAGES}, a range such as 0:{RESNET_STAGES}, or a list such as 0,2,{RESNET_STAGES}",
                  minimum=0, maximum=RESNET_STAGES,
                  help="Number of frozen ResNet stages (1 = stem+layer1 ... 4 = all but the head)."),
    )
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


def _spec(name: str) -> ParamSpec:
    try:
        return PARAMS[name]
    except KeyError:
        raise SpaceError(
            f"unknown parameter {name!r}: accepted are {', '.join(PARAMS)}"
        ) from None


def parse_value(name: str, text: Any) -> Any:
    """One value of a parameter (from a flag, a file or --baseline), checked against its bounds."""
    spec = _spec(name)
    raw = str(text).strip()
    if spec.choices is not None:
        if raw not in spec.choices:
            raise SpaceError(f"{spec.name}={raw!r} is not accepted: expected {spec.accepted}")
        return raw
    try:
        number = float(raw)
    except ValueError:
        raise SpaceError(f"{spec.name}={raw!r} is not a number: expected {spec.accepted}") from None
    if not math.isfinite(number):
        raise SpaceError(f"{spec.name}={raw!r} is not finite: expected {spec.accepted}")
    if spec.kind == "int" or spec.integer_choices:
        if number != int(number):
            raise SpaceError(f"{spec.name}={raw!r} is not an integer: expected {spec.accepted}")
        number = int(number)
    too_low = spec.minimum is not None and (
        number <= spec.minimum if spec.exclusive_minimum else number < spec.minimum
    )
    too_high = spec.maximum is not None and (
        number >= spec.maximum if spec.exclusive_maximum else number > spec.maximum
    )
    if too_low or too_high:
        raise SpaceError(f"{spec.name}={raw!r} is out of range: expected {spec.accepted}")
    return number


def parse_param(name: str, text: Any) -> BaseDistribution:
    """Flag syntax to an Optuna distribution: ``LOW:HIGH`` range, ``a,b,c`` list, or one value (fixed)."""
    spec = _spec(name)
    if isinstance(text, (list, tuple)):
        text = ",".join(str(item) for item in text)
    raw = str(text).strip()
    if not raw:
        raise SpaceError(f"{spec.flag} is empty: expected {spec.accepted}")
    if ":" in raw:
        if spec.kind == "choice":
            raise SpaceError(f"{spec.flag} {raw}: a range is not accepted here: expected {spec.accepted}")
        low_text, _, high_text = raw.partition(":")
        low, high = parse_value(name, low_text), parse_value(name, high_text)
        if low >= high:
            raise SpaceError(
                f"{spec.flag} {raw}: low must be below high (got low={low_text.strip()}, "
                f"high={high_text.strip()})"
            )
        if spec.kind == "int":
            return IntDistribution(int(low), int(high))
        if spec.log and low <= 0:
            raise SpaceError(
                f"{spec.flag} {raw}: a log-scale range needs low > 0 (got low={low_text.strip()}); "
                f"fix the value instead, e.g. {spec.flag} 0"
            )
        return FloatDistribution(float(low), float(high), log=spec.log)
    values = [parse_value(name, part) for part in raw.split(",")]
    if len(set(values)) != len(values):
        raise SpaceError(f"{spec.flag} {raw}: a value is listed twice: expected {spec.accepted}")
    if len(values) == 1 and spec.kind == "float":
        value = float(values[0])
        # Optuna treats a zero-width distribution as a fixed value and asks no sampler.
        return FloatDistribution(value, value, log=spec.log and value > 0)
    if len(values) == 1 and spec.kind == "int":
        return IntDistribution(values[0], values[0])
    if spec.kind == "float":
        raise SpaceError(f"{spec.flag} {raw}: a list is not accepted here: expected {spec.accepted}")
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
