"""Any Optuna study as the analysis's input: each trial's reported values as its validation curve.

A study that `sweep start` did not make has no ``history`` attr: the values a trial reported with
``trial.report(value, step)`` are its validation curve, at the steps as reported (epochs, or every N batches:
the plateau rule's patience then counts reports), a user attr may hold its training loss, and a maximized
objective is negated so that lower is better, as ``ReduceLROnPlateau(mode="max")`` judges it. No torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution

from sweep.analysis.inputs import TrialRecord, space_of
from sweep.analysis.result import analyze


class NotAnalyzable(ValueError):
    """The study (or ``argument``, when it names one) cannot give the curves the analysis needs; one line why."""

    def __init__(self, message: str, argument: str | None = None):
        super().__init__(message)
        self.argument = argument


@dataclass(frozen=True)
class StudyCurves:
    """A study read for the analysis: its trials as records, their search space, the baseline and how it was read."""

    records: list[TrialRecord]
    distributions: dict[str, BaseDistribution]
    baseline_number: int
    source: dict  # how the curves were read, as the result's ``source``: every report states it


def _step_values(raw: Any, steps: list[int], trial: optuna.trial.FrozenTrial, attr: str) -> dict[int, float | None]:
    """The training loss at each reported step: a list is read by position, a mapping by step."""
    if isinstance(raw, dict):
        try:
            by_step = {int(step): value for step, value in raw.items()}
        except ValueError:
            raise NotAnalyzable(f"user attr {attr!r} of trial {trial.number}: a mapping's keys must be the reported "
                                f"steps (got {sorted(map(str, raw))[:3]})", "train_loss_attr") from None
        return {step: _number(by_step.get(step)) for step in steps}
    if isinstance(raw, (list, tuple)):
        return {step: _number(value) for step, value in zip(steps, raw)}
    raise NotAnalyzable(f"user attr {attr!r} of trial {trial.number} is a {type(raw).__name__}: the training loss is "
                        "read from a list (one value per report) or a {step: value} mapping", "train_loss_attr")


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def trial_record(trial: optuna.trial.FrozenTrial, *, sign: float = 1.0,
                 train_loss_attr: str | None = None) -> TrialRecord:
    """One trial as the analysis reads it: the reported values (times ``sign``) as ``val_loss`` at each step."""
    steps = sorted(trial.intermediate_values)
    train = {}
    if train_loss_attr is not None and train_loss_attr in trial.user_attrs:
        train = _step_values(trial.user_attrs[train_loss_attr], steps, trial, train_loss_attr)
    history = []
    for step in steps:
        row = {"epoch": int(step), "val_loss": sign * float(trial.intermediate_values[step])}
        if train_loss_attr is not None:
            row["train_loss"] = train.get(step)
        history.append(row)
    value = trial.values[0] if trial.values else None
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        params=dict(trial.params),
        history=history,
        value=None if value is None else sign * float(value),
        pruned_at=steps[-1] if steps and trial.state == optuna.trial.TrialState.PRUNED else None,
        started=trial.datetime_start.isoformat(timespec="seconds") if trial.datetime_start else None,
    )


def _baseline(trials: list[optuna.trial.FrozenTrial], baseline: int | None, study_name: str) -> tuple[int, str]:
    numbers = [trial.number for trial in trials]
    if baseline is not None:
        if baseline not in numbers:
            raise NotAnalyzable(f"study {study_name!r} has no trial {baseline} (its trials: {min(numbers)} to "
                                f"{max(numbers)})", "baseline")
        return baseline, "named"
    complete = [trial.number for trial in trials if trial.state == optuna.trial.TrialState.COMPLETE]
    return (min(complete), "the first complete trial") if complete else (min(numbers), "the first trial")


def read_study(study: optuna.Study, *, baseline: int | None = None, train_loss_attr: str | None = None) -> StudyCurves:
    """The study's trials as records, with the baseline (``None``: the first complete trial) and how they were read.

    Raises ``NotAnalyzable`` for a study with more than one objective, without trials or without reported values,
    an unknown ``baseline`` trial, or a ``train_loss_attr`` that no trial has.
    """
    name = study.study_name
    if len(study.directions) != 1:
        raise NotAnalyzable(f"study {name!r} has {len(study.directions)} objectives: the plateau analysis reads one "
                            "reported value per step, which Optuna keeps for single-objective studies only")
    trials = study.get_trials(deepcopy=False)
    if not trials:
        raise NotAnalyzable(f"study {name!r} has no trials yet")
    if not any(trial.intermediate_values for trial in trials):
        raise NotAnalyzable(f"no trial of study {name!r} reported a value per step: the validation curve is read from "
                            "trial.report(value, step)")
    if train_loss_attr is not None and not any(train_loss_attr in trial.user_attrs for trial in trials):
        raise NotAnalyzable(f"no trial of study {name!r} has a user attr {train_loss_attr!r} (the training loss)",
                            "train_loss_attr")
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    records = [trial_record(trial, sign=-1.0 if maximize else 1.0, train_loss_attr=train_loss_attr)
               for trial in trials]
    baseline_number, chosen = _baseline(trials, baseline, name)
    source = {"kind": "optuna", "curve": "reported values", "direction": "maximize" if maximize else "minimize",
              "negated": maximize, "train_loss_attr": train_loss_attr, "baseline": chosen}
    return StudyCurves(records, space_of(trials), baseline_number, source)


def analyze_curves(curves: StudyCurves, *, study_name: str, patience: int = 2, min_delta: float = 0.01,
                   min_trials: int = 6) -> dict:
    """The analysis of a read study, as ``analyze`` returns it, with ``source`` and only the usual suspects whose
    parameter the study has (their names are the sweep's: ``lr``, ``frozen_stages``, ...)."""
    result = analyze(curves.records, curves.distributions, study_name=study_name, patience=patience,
                     min_delta=min_delta, baseline_number=curves.baseline_number, min_trials=min_trials)
    result["usual_suspects"] = [entry for entry in result["usual_suspects"] if entry["status"] != "not swept"]
    result["source"] = dict(curves.source)
    return result


def analyze_study(study: optuna.Study, *, baseline: int | None = None, patience: int = 2, min_delta: float = 0.01,
                  train_loss_attr: str | None = None, min_trials: int = 6) -> dict:
    """The plateau analysis of any Optuna study whose trials call ``trial.report(value, step)``.

    ``baseline``: the trial the others are compared with (default: the first complete one). ``patience`` counts
    reports and ``min_delta`` is relative, as in ``ReduceLROnPlateau``; the defaults are the sweep's.
    ``train_loss_attr``: the user attr holding each trial's training loss (a list, one value per report, or a
    ``{step: value}`` mapping), which tells overfitting from a plateau. Returns the result ``render_text``,
    ``render_html`` and ``--format json`` show.
    """
    curves = read_study(study, baseline=baseline, train_loss_attr=train_loss_attr)
    return analyze_curves(curves, study_name=study.study_name, patience=patience, min_delta=min_delta,
                          min_trials=min_trials)
