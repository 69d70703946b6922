"""The study as the one source of truth: created with the sweep config and baseline, read back by workers."""

from __future__ import annotations

import dataclasses
import shlex

import optuna

from sweep import analysis
from sweep import study_record
from sweep.config import FIXED_KEYS, SweepConfig
from sweep.errors import UsageError
from sweep.pruning import create_pruner
from sweep.sampler import create_sampler
from sweep.storage import check_study_name
from sweep.study_record import StudyWriter, baseline_number

# The budget counts trials that ended with a verdict; crashed (FAIL) trials are retried instead.
BUDGET_STATES = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class StudyConfigMismatch(UsageError):
    """``sweep start`` on an existing study with other settings than it was created with."""


class StudyNotFound(UsageError):
    """No such study, or one not made by `sweep start`."""


def create_or_resume(
    storage: optuna.storages.BaseStorage, study_name: str, config: SweepConfig
) -> tuple[optuna.Study, bool]:
    """The study, created with ``config`` and the baseline as trial 0, or resumed when the config matches.

    Returns ``(study, created)``. A different trial budget is allowed on resume and updates the study, unless
    it is below the trials already finished.
    """
    check_study_name(study_name)
    if exists(storage, study_name):
        study = _open(storage, study_name, config)
        stored = stored_config(study)
        differences = stored.differences(config)
        if differences:
            before, after = stored.to_dict(), config.to_dict()
            details = ", ".join(f"{key}: {before[key]!r} -> {after[key]!r}" for key in differences[:3])
            flags = resume_flags(stored, differences)
            how = f"pass {flags} to resume it" if flags else "rerun with the same settings to resume"
            raise StudyConfigMismatch(
                f"study {study_name!r} exists with a different config ({details}); {how}, or choose a new --study name"
            )
        if stored.n_trials != config.n_trials:
            finished = finished_count(study)
            if config.n_trials < finished:
                raise UsageError(
                    f"study {study_name!r} has {finished} finished trials, more than --n-trials {config.n_trials}: "
                    f"pass --n-trials {max(finished, stored.n_trials)} to resume it (or more to run more trials)"
                )
            StudyWriter(study).config(config)
        set_stop_rule(study, dataclasses.replace(stored, n_trials=config.n_trials), config.stop_when, config.stop_after)
        return study, False
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="minimize",
        sampler=create_sampler(config),
        pruner=create_pruner(config),
    )
    StudyWriter(study).created(config)
    return study, True


def set_stop_rule(study: optuna.Study, config: SweepConfig, stop_when: str | None = None,
                  stop_after: int | None = None) -> SweepConfig:
    """The study's ``config`` with the stop rule given (None keeps a part), stored: the rule is the study's, whichever
    command sets it, and a stop decided under the old rule is lifted so that the new one decides."""
    changes = {key: value for key, value in (("stop_when", stop_when), ("stop_after", stop_after)) if value is not None}
    changed = dataclasses.replace(config, **changes)
    if changed != config:
        StudyWriter(study).stop_rule_changed(changed)
    return changed


def grow_budget(study: optuna.Study, config: SweepConfig, extra: int) -> SweepConfig:
    """The study's config with ``extra`` more trials in its budget, stored (queued runs must not take the search's)."""
    grown = dataclasses.replace(config, n_trials=config.n_trials + extra)
    StudyWriter(study).config(grown)
    return grown


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=BUDGET_STATES))


def exists(storage: optuna.storages.BaseStorage, study_name: str) -> bool:
    return study_name in {summary.study_name for summary in optuna.get_all_study_summaries(storage, include_best_trial=False)}


def resume_flags(stored: SweepConfig, differences: list[str]) -> str:
    """The ``sweep start`` flags that give back ``stored``'s settings named in ``differences``; "" where a flag can't.

    Left out when the search space or the baseline differ: those come from many flags or a config file.
    A stored value that is today's default for another setting shows here too: the flag gives it back.
    """
    if any(key not in FIXED_KEYS for key in differences):
        return ""
    flags = []
    for key in differences:
        value, name = getattr(stored, key), key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(f"--{name}" if value else f"--no-{name}")
        else:  # an uncapped image count is stored as None and given as 0
            flags.append(f"--{name} {shlex.quote(str(0 if value is None else value))}")
    return " ".join(flags)


def stored_config(study: optuna.Study) -> SweepConfig:
    config = study_record.stored_config(study)
    if config is None:
        raise StudyNotFound(f"study {study.study_name!r} has no sweep config: it was not created by `sweep start`")
    return config


def load(storage: optuna.storages.BaseStorage, study_name: str, worker: str = "") -> tuple[optuna.Study, SweepConfig]:
    """An existing study with its config, its sampler and pruner: all a worker needs."""
    check_study_name(study_name)
    try:
        config = stored_config(optuna.load_study(study_name=study_name, storage=storage))
    except KeyError:
        raise StudyNotFound(
            f"no study named {study_name!r} in this storage: create it with `sweep start --study {study_name}`"
        ) from None
    return _open(storage, study_name, config, worker), config


def load_for_reading(storage: optuna.storages.BaseStorage, study_name: str) -> tuple[optuna.Study, SweepConfig | None]:
    """An existing study to read, with its sweep config, or None for a study that `sweep start` did not make."""
    check_study_name(study_name)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise StudyNotFound(
            f"no study named {study_name!r} in this storage: create it with `sweep start --study {study_name}`"
        ) from None
    return study, study_record.stored_config(study)


def _open(storage, study_name: str, config: SweepConfig, worker: str = "") -> optuna.Study:
    """A handle on the study with the pruner the config asks for and a sampler seeded for this worker."""
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=create_pruner(config))
    study.sampler = create_sampler(config, worker, trials_so_far=len(study.get_trials(deepcopy=False)))
    return study


def analyze_study(study: optuna.Study, config: SweepConfig, *, patience: int | None = None,
                  min_delta: float | None = None, baseline: int | None = None):
    """The analysis of the study, its trials read once: ``(result, records, distributions)``; ``baseline`` names
    another trial to compare with than the enqueued baseline."""
    trials = study.get_trials(deepcopy=False)
    if baseline is not None and baseline not in {trial.number for trial in trials}:
        raise UsageError(f"--baseline-trial {baseline}: no such trial in study {study.study_name!r} "
                         f"(it has {len(trials)} trial(s), numbered from 0)")
    records, distributions = analysis.records_and_space_from_trials(trials)
    result = analysis.analyze(
        records, distributions,
        study_name=study.study_name,
        patience=patience or config.patience,
        min_delta=config.min_delta if min_delta is None else min_delta,
        baseline_number=baseline_number(trials) if baseline is None else baseline,
    )
    return result, records, distributions
