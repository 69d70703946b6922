"""Dead workers noticed in time: a trial whose heartbeat stopped is failed and queued again within the grace period
plus one heartbeat interval, whatever the trial length, with one log line that says whose trial it was.

Optuna fails stale trials only when a worker asks for a new trial, so on its own a dead worker's trial
waits for another worker's trial to end (with GPU trials, up to one whole trial).
"""

from __future__ import annotations

import logging
import threading
import warnings

import optuna
from optuna.trial import TrialState

from sweep.record import TrialRecord

log = logging.getLogger("sweep")


class RetryStaleTrial:
    """The storage's stale-trial callback: Optuna's retry (same params, queued for any worker), then one log line."""

    def __init__(self, max_retry: int):
        with warnings.catch_warnings():  # stable for years; the "experimental" notice only alarms users
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from sweep.storage import heartbeat_ages

        self.retry(study, trial)
        worker = TrialRecord.from_trial(trial).worker
        whose = f"{worker.get('host', '?')}:{worker.get('pid', '?')}" if worker else "an unknown worker"
        age = heartbeat_ages(study._storage, study).get(trial.number)
        storage = getattr(study._storage, "_backend", study._storage)
        grace = storage.grace_period or 2 * storage.heartbeat_interval  # Optuna's own default
        # Measured now, the age can be shorter than what got the trial failed: its worker may have beaten again since.
        silent = (f"no heartbeat for {age:.0f}s" if age is not None and age > grace else
                  f"no heartbeat for over {grace:.0f}s") + f" (grace period {grace:.0f}s)"
        queued = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                  if t.system_attrs.get("failed_trial") == trial.number]
        again = f"queued again as trial {queued[-1]}" if queued else "retried too often, not queued again"
        log.warning("trial %d of worker %s failed: %s; %s", trial.number, whose, silent, again)


def retried_trial(trial: optuna.Trial) -> int | None:
    """The number of the first trial that this running trial retries (same params), or None for a new trial."""
    frozen = trial.study._storage.get_trial(trial._trial_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)


def fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


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
