"""The one thin step from a study to the analysis: its trials as plain records, and their search space."""

from __future__ import annotations

import optuna
from optuna.distributions import BaseDistribution

from sweep.record import FINISHED_STATES, TrialRecord

__all__ = ["FINISHED_STATES", "TrialRecord", "records_and_space_from_trials", "records_from_study", "space_of"]


def records_and_space_from_trials(
    trials: list[optuna.trial.FrozenTrial],
) -> tuple[list[TrialRecord], dict[str, BaseDistribution]]:
    """Trials already read from a study as records, and the search space they were drawn from.

    A proposal that repeated an earlier trial's params was never trained: it is left out, so no point counts twice.
    """
    records = [TrialRecord.from_trial(trial) for trial in trials]
    return [record for record in records if record.duplicate_of is None], space_of(trials)


def space_of(trials: list[optuna.trial.FrozenTrial]) -> dict[str, BaseDistribution]:
    """The search space the trials were drawn from: every parameter any trial has (a conditional one too)."""
    distributions: dict[str, BaseDistribution] = {}
    for trial in trials:  # later trials win: they saw the space as it is now
        distributions.update(trial.distributions)
    return distributions


def records_from_study(study: optuna.Study) -> tuple[list[TrialRecord], dict[str, BaseDistribution]]:
    """Every trial of ``study`` as a record, and the search space the trials were drawn from."""
    return records_and_space_from_trials(study.get_trials(deepcopy=False))
