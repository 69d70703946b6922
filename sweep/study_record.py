"""A study's record: the one reader and writer of the study's user attrs (sweep config, stop reason, doctor result)
and of the Optuna system attrs and tables the sweep reads (retries, heartbeats, dashboard figures).

``sweep/record.py`` is its twin for one trial. No torch: ``sweep status``, ``analyze`` and ``dashboard`` import this.
"""

from __future__ import annotations

import warnings
from datetime import datetime

import optuna
import sqlalchemy
from optuna.trial import TrialState

from sweep.config import CONFIG_ATTR, SweepConfig
from sweep.optuna_internals import rdb_backend
from sweep.record import BASELINE, CONFIRMATION, TrialRecord

# Study user attr names, written only by ``StudyWriter``.
CONFIG = CONFIG_ATTR  # the whole sweep config: fixed settings, search space, baseline
STOPPED = "stopped"  # {"rule", "reason", "n_finished", ...}: why no new trial starts; None or absent while running
DOCTOR = "doctor"  # the doctor's last summary on this study

# Optuna's RetryHeartbeatStaleTrialCallback leaves these system attrs on the retry it queues.
FAILED_TRIAL = "failed_trial"  # the first trial of the retry series
RETRY_HISTORY = "retry_history"  # every trial of the series before this one
# optuna_dashboard keeps a saved figure in study system attrs under this prefix, then "ID:CHUNK".
DASHBOARD_FIGURE = "dashboard:plot_data:"


def stored_config(study: optuna.Study) -> SweepConfig | None:
    """The sweep config the study was created with; None for a study not made by `sweep start`."""
    stored = study.user_attrs.get(CONFIG)
    return None if stored is None else SweepConfig.from_dict(stored)


def stop_reason(study: optuna.Study) -> dict | None:
    """Why no new trial may start in this study, or None."""
    return study.user_attrs.get(STOPPED) or None


def doctor_summary(study: optuna.Study) -> dict | None:
    return study.user_attrs.get(DOCTOR)


def baseline_number(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Number of the trial that ran the baseline (a retried baseline counts too); 0 if none is marked."""
    for trial in trials:
        record = TrialRecord.from_trial(trial)
        if record.is_baseline and record.state in ("COMPLETE", "PRUNED"):
            return record.number
    return 0


def retried_trial(trial: optuna.Trial) -> int | None:
    """The number of the first trial that this running trial retries (same params), or None for a new trial."""
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    with warnings.catch_warnings():  # stable for years; the "experimental" notice only alarms users
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)


def taken_over(study: optuna.Study, number: int | None) -> bool:
    """Whether another worker failed trial ``number`` and queued it again: a retry names it in its history."""
    if number is None:
        return False
    return any(number in trial.system_attrs.get(RETRY_HISTORY, ()) for trial in study.get_trials(deepcopy=False))


def queued_retries(study: optuna.Study, number: int) -> list[int]:
    """The waiting trials that retry trial ``number`` directly."""
    return [trial.number for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            if trial.system_attrs.get(FAILED_TRIAL) == number]


def dashboard_figures(storage: optuna.storages.BaseStorage, study_name: str) -> set[str]:
    """The ids of the figures optuna_dashboard holds for the study."""
    attrs = storage.get_study_system_attrs(storage.get_study_id_from_name(study_name))
    return {key[len(DASHBOARD_FIGURE):].rpartition(":")[0] for key in attrs if key.startswith(DASHBOARD_FIGURE)}


def heartbeat_ages(storage: optuna.storages.BaseStorage, study_name: str) -> dict[int, float]:
    """Seconds since the last heartbeat of each trial of the study that has one, by trial number.

    Optuna has no public getter for heartbeats; this reads its ``trial_heartbeats`` table the way
    its own ``_get_stale_trial_ids`` does, with the database's clock on both sides.
    """
    storage = rdb_backend(storage)
    if not isinstance(storage, optuna.storages.RDBStorage):
        return {}
    query = sqlalchemy.text(
        "SELECT t.number, h.heartbeat FROM trial_heartbeats h JOIN trials t ON t.trial_id = h.trial_id "
        "JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name"
    )
    with storage.engine.connect() as connection:
        now = connection.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        rows = connection.execute(query, {"name": study_name}).all()
    now = _as_datetime(now)
    return {number: max(0.0, (now - _as_datetime(beat)).total_seconds()) for number, beat in rows}


def _as_datetime(value) -> datetime:
    if isinstance(value, str):  # SQLite returns its timestamps as text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=None)


class StudyWriter:
    """Writes the study's record; the only place a study user attr is set."""

    def __init__(self, study: optuna.Study):
        self.study = study

    def created(self, config: SweepConfig) -> None:
        """A new study: its config, and the baseline queued as its first trial."""
        self.config(config)
        self.study.enqueue_trial(config.baseline, user_attrs={BASELINE: True})

    def one_change_queued(self, params: dict, tag: dict) -> None:
        """A one-change run (``sweep.confirm``), queued as an ordinary trial carrying what it tests."""
        self.study.enqueue_trial(params, user_attrs={CONFIRMATION: tag})

    def config(self, config: SweepConfig) -> None:
        self.study.set_user_attr(CONFIG, config.to_dict())

    def stop_rule_changed(self, config: SweepConfig) -> None:
        """A new stop rule: a stop decided under the old one is lifted so that the new one decides."""
        self.config(config)
        self.study.set_user_attr(STOPPED, None)

    def stopped(self, reason: dict) -> None:
        self.study.set_user_attr(STOPPED, reason)

    def doctor(self, summary: dict) -> None:
        self.study.set_user_attr(DOCTOR, summary)
