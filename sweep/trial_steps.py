"""What every trial does with the study, whatever trains it: take its params, start its record, report each epoch
and ask the pruner. The objective trains with torch; the end-to-end benchmark draws curves; both go through here."""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from sweep import space
from sweep.record import TrialWriter, confirmation_of, duplicate_of
from sweep.study_record import retried_trial


def same_params(trial: optuna.Trial, params: dict) -> int | None:
    """The number of a finished or running trial with exactly ``params``, if any: a sweep never trains a point twice.
    (A retry of a failed trial is asked for; the caller does not ask for one.)"""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)
    others = trial.study.get_trials(deepcopy=False, states=states)
    for other in others:
        if other.number != trial.number and other.params == params and duplicate_of(other) is None:
            return other.number
    return None


@dataclass
class StartedTrial:
    params: dict
    record: TrialWriter
    retries: int | None  # the trial this one retries (same params, same seed), or None
    prunable: bool  # a one-change run trains to the end: its verdict is the evidence


def start_trial(trial: optuna.Trial, space_config: dict, worker: dict) -> StartedTrial:
    """The trial's params and record; raises ``TrialPruned`` for a proposal that repeats an earlier trial.

    A one-change run repeats params on purpose (a second seed), so it is never taken for a repeat.
    """
    params = space.suggest(trial, space_config)
    record = TrialWriter(trial)
    record.started(worker)
    retries = retried_trial(trial)
    confirming = confirmation_of(trial) is not None
    earlier = same_params(trial, params) if retries is None and not confirming else None
    if earlier is not None:
        record.duplicate(earlier)
        raise optuna.TrialPruned(f"same params as trial {earlier}: not trained again")
    return StartedTrial(params, record, retries, prunable=not confirming)


def end_of_epoch(trial: optuna.Trial, started: StartedTrial, row: dict, epochs: int) -> None:
    """Record the epoch and report its val loss; raises ``TrialPruned`` when the pruner cuts the trial here."""
    started.record.epoch(row)
    trial.report(row["val_loss"], step=row["epoch"])
    if started.prunable and row["epoch"] < epochs and trial.should_prune():
        started.record.stopped(row["epoch"])
        raise optuna.TrialPruned(f"val_loss {row['val_loss']:.4f} at epoch {row['epoch']}")
