"""Plain trial records: what the analysis knows about a trial, and the one thin step that reads them from a study."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution

FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str  # "COMPLETE" | "PRUNED" | "FAIL" | "RUNNING" | "WAITING"
    params: dict[str, Any]
    history: list[dict] = field(default_factory=list)  # [{epoch, train_loss, val_loss, val_acc, lr, seconds}], epochs from 1
    value: float | None = None
    failure: str | None = None  # "oom", "nan_loss", ...
    pruned_at: int | None = None


def _history(trial: optuna.trial.FrozenTrial) -> list[dict]:
    history = trial.user_attrs.get("history")
    if isinstance(history, str):
        history = json.loads(history)
    if history:
        return [dict(entry) for entry in history]
    # A trial stopped before it wrote its history still reported val_loss to the pruner: use that.
    return [
        {"epoch": int(step), "val_loss": value}
        for step, value in sorted(trial.intermediate_values.items())
    ]


def _record(trial: optuna.trial.FrozenTrial) -> TrialRecord:
    values = trial.values
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        params=dict(trial.params),
        history=_history(trial),
        value=float(values[0]) if values else None,
        failure=trial.user_attrs.get("failure"),
        pruned_at=trial.user_attrs.get("pruned_at"),
    )


def records_from_study(
    study: optuna.Study,
) -> tuple[list[TrialRecord], dict[str, BaseDistribution]]:
    """Every trial of ``study`` as a record, and the search space the trials were drawn from."""
    return records_from_trials(study.get_trials(deepcopy=False))


def records_from_trials(
    trials: list[optuna.trial.FrozenTrial],
) -> tuple[list[TrialRecord], dict[str, BaseDistribution]]:
    """Trials already read from a study as records, and their search space."""
    distributions: dict[str, BaseDistribution] = {}
    for trial in trials:  # later trials win: they saw the space as it is now
        distributions.update(trial.distributions)
    return [_record(trial) for trial in trials], distributions
