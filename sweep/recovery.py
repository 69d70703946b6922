"""Dead workers noticed in time: a trial whose heartbeat stopped is failed and queued again within the grace period
plus one heartbeat interval, whatever the trial length, with one log line that says whose trial it was.

Optuna fails stale trials only when a worker asks for a new trial, so on its own a dead worker's trial
waits for another worker's trial to end (with GPU trials, up to one whole trial).
"""

from __future__ import annotations

import logging
import threading
import warnings
from datetime import datetime

import optuna
from optuna.trial import TrialState

from sweep.optuna_internals import rdb_backend, study_storage, trial_id
from sweep.record import TrialRecord
from sweep.study_record import heartbeat_ages, queued_retries

log = logging.getLogger("sweep")


class RetryStaleTrial:
    """The storage's stale-trial callback: Optuna's retry (same params, queued for any worker), then one log line."""

    def __init__(self, max_retry: int):
        with warnings.catch_warnings():  # stable for years; the "experimental" notice only alarms users
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.retry(study, trial)
        worker = TrialRecord.from_trial(trial).worker
        whose = f"{worker.get('host', '?')}:{worker.get('pid', '?')}" if worker else "an unknown worker"
        # Optuna hands its stale-trial callback the study alone
        storage = study_storage(study)
        age = heartbeat_ages(storage, study.study_name).get(trial.number)
        backend = rdb_backend(storage)
        grace = grace_of(backend)
        # Measured now, the age can be shorter than what got the trial failed: its worker may have beaten again since.
        silent = (f"no heartbeat for {age:.0f}s" if age is not None and age > grace else
                  f"no heartbeat for over {grace:.0f}s") + f" (grace period {grace:.0f}s)"
        queued = queued_retries(study, trial.number)
        again = f"queued again as trial {queued[-1]}" if queued else "retried too often, not queued again"
        log.warning("trial %d of worker %s failed: %s; %s", trial.number, whose, silent, again)


def grace_of(backend: optuna.storages.RDBStorage) -> float:
    """The storage's grace period: Optuna's own default of two heartbeat intervals where none was set."""
    return backend.grace_period or 2 * backend.get_heartbeat_interval()


def fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    _fail_never_beaten(study)


def _fail_never_beaten(study: optuna.Study) -> None:
    """Fail and retry the RUNNING trials that never sent a heartbeat and started more than twice the grace period
    ago: a database that went away between Optuna's creating a trial and its first heartbeat leaves such a trial,
    and Optuna's check, which reads heartbeats only, would leave it RUNNING forever."""
    storage = study_storage(study)
    backend = rdb_backend(storage)
    if not isinstance(backend, optuna.storages.RDBStorage) or backend.get_heartbeat_interval() is None:
        return
    too_old, now = 2 * grace_of(backend), datetime.now()
    old = [trial for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
           if trial.datetime_start is not None and (now - trial.datetime_start).total_seconds() >= too_old]
    if not old:
        return  # the heartbeat table is read only when a trial is old enough to be stale
    beaten = heartbeat_ages(storage, study.study_name)
    for trial in old:
        if trial.number in beaten:
            continue
        try:
            if not storage.set_trial_state_values(trial_id(trial), state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        log.warning("trial %d never sent a heartbeat in %.0fs: failed", trial.number,
                    (now - trial.datetime_start).total_seconds())
        callback = backend.get_heartbeat_stale_trial_callback()
        if callback is not None:
            callback(study, storage.get_trial(trial_id(trial)))


class StaleTrialWatcher:
    """A thread that fails the study's stale trials every heartbeat interval while this worker trains."""

    def __init__(self, study: optuna.Study, interval: float):
        self.study = study
        self.interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="stale-trial-watcher")

    def __enter__(self) -> "StaleTrialWatcher":
        self._thread.start()  # on a storage without heartbeats each check returns at once
        return self

    def __exit__(self, *exc) -> None:
        self._stopped.set()
        self._thread.join(timeout=self.interval + 5)

    def _watch(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                fail_stale_trials(self.study)
            except Exception as error:  # the database away: the worker's own loop waits for it and says so
                log.debug("stale-trial check skipped: %s", error)
