"""The ask-train-tell loop: run trials of a study until its global trial budget is met."""

from __future__ import annotations

import logging
import time
import warnings

import optuna
import torch
from optuna.trial import TrialState

from sweep.admission import BudgetGate
from sweep.config import SweepConfig
from sweep.logs import NoTracebackOnInterrupt
from sweep.objective import Objective
from sweep.storage import (
    HEARTBEAT_INTERVAL, MAX_RETRY, OUTAGE_ERRORS, describe_error, storage_reachable, wait_for_storage,
)

log = logging.getLogger("sweep")

# The budget counts trials that ended with a verdict; crashed (FAIL) trials are retried instead.
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=BUDGET_STATES))


def _room(study: optuna.Study) -> tuple[int, set[int]]:
    """(finished count, numbers of the running trials): a new trial may start only while finished + running < budget."""
    trials = study.get_trials(deepcopy=False, states=(*BUDGET_STATES, TrialState.RUNNING))
    running = {trial.number for trial in trials if trial.state == TrialState.RUNNING}
    return len(trials) - len(running), running


def _fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


_optuna_optimize_log = logging.getLogger("optuna.study._optimize")
if not any(isinstance(f, NoTracebackOnInterrupt) for f in _optuna_optimize_log.filters):
    _optuna_optimize_log.addFilter(NoTracebackOnInterrupt())


def run_trials(
    study: optuna.Study,
    config: SweepConfig,
    device: torch.device,
    *,
    storage: optuna.storages.BaseStorage | None = None,
    progress=None,
    callbacks: tuple = (),
    max_trials: int | None = None,
    until_done: bool = True,
    poll_seconds: float | None = None,
) -> int:
    """Run trials until ``config.n_trials`` have finished in the whole study; returns how many ran here.

    The budget is exact across workers: a trial starts only while finished + running trials are
    below it (checked under ``BudgetGate``). ``max_trials`` caps the trials run here. With
    ``until_done`` the worker stays while other workers' trials run, so that it retries the
    trial of a worker that died (failed by Optuna's heartbeat check); otherwise it leaves as soon
    as the whole budget is handed out. A lost database is waited for (``wait_for_storage``).
    """
    gate = BudgetGate(storage, study.study_name)
    objective = Objective(config, device, progress)
    poll_seconds = poll_seconds or max(1.0, float(HEARTBEAT_INTERVAL))
    ran = 0
    current: dict = {}
    waiting_logged = False

    def admitted(trial: optuna.Trial) -> float:
        # The trial now exists as RUNNING, so every other worker counts it: let them check.
        current["number"] = trial.number
        gate.release()
        return objective(trial)

    def count(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal ran
        ran += 1

    all_callbacks = [count, *([progress] if progress is not None else []), *callbacks]
    while max_trials is None or ran < max_trials:
        current.clear()
        try:
            with gate:
                _fail_stale_trials(study)
                finished, running_before = _room(study)
                running = len(running_before)
                if finished >= config.n_trials:
                    break
                has_room = finished + running < config.n_trials
                if has_room:
                    waiting_logged = False
                    try:
                        study.optimize(admitted, n_trials=1, callbacks=all_callbacks, gc_after_trial=False)
                    except KeyboardInterrupt:
                        if "number" not in current:  # between Optuna's ask and our objective: the gate is still ours
                            _fail_unadmitted(study, running_before)
                        raise
        except KeyboardInterrupt:
            _requeue_interrupted(study, current.get("number"))
            raise
        except Exception as error:
            # Optuna's own error handling can fail with another exception type while the database is
            # down (e.g. its tell of the abandoned trial), so ask the database, not the exception.
            if storage is None or (not isinstance(error, OUTAGE_ERRORS) and storage_reachable(storage)):
                raise
            wait_for_storage(storage, describe_error(error))
            continue
        if not has_room:
            if not until_done:
                break
            if not waiting_logged:
                log.info("budget handed out (%d finished, %d running): waiting for the running trials", finished, running)
                waiting_logged = True
            time.sleep(poll_seconds)
    return ran


def _fail_unadmitted(study: optuna.Study, running_before: set[int]) -> None:
    """Fail the trial a Ctrl-C caught after Optuna made it RUNNING but before our objective ran.

    Optuna fails a trial interrupted inside the objective; one interrupted in between has neither a
    heartbeat (so no worker would ever fail it as stale) nor params. While this worker holds the
    budget gate no other worker creates or starts a trial, so every trial RUNNING now that was not
    before is this worker's.
    """
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.number not in running_before:
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            log.warning("trial %d interrupted before it started: marked failed", trial.number)


def _requeue_interrupted(study: optuna.Study, number: int | None) -> None:
    """The trial a Ctrl-C or SIGTERM stopped is FAIL (Optuna's doing); queue its params again for any worker."""
    if number is None:
        return
    try:
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
        if trial.state == TrialState.FAIL:
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)
            log.warning("trial %d interrupted: marked failed, its params are queued again", number)
    except Exception as error:  # interrupted while the database is away: the heartbeat check retries it later
        log.warning("trial %d interrupted; could not queue it again: %s", number, describe_error(error))
