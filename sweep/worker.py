"""A worker: the ask-train-tell loop over a study's global trial budget, and the stop signals that end it cleanly."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable

import optuna
from optuna.trial import TrialState

from sweep.admission import BudgetGate
from sweep.artifacts import keep_best_for
from sweep.config import SweepConfig
from sweep.confirm import schedule_confirmations
from sweep.recovery import StaleTrialWatcher, fail_stale_trials
from sweep.storage import (
    MAX_RETRY, OUTAGE_ERRORS, describe_error, heartbeat_settings, mask_url, open_storage, storage_reachable,
    wait_for_storage,
)
from sweep.stopping import stop_callbacks, stop_reason
from sweep.study import BUDGET_STATES, finished_count

if TYPE_CHECKING:
    import torch

log = logging.getLogger("sweep")

# What ends a command as Ctrl-C does: `timeout`, systemd, Slurm's scancel and Kubernetes send SIGTERM; a closed
# terminal sends SIGHUP.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(Exception):
    """A stop signal ended the command; the trial it cut short is FAIL and queued again for any worker."""

    def __init__(self, signum: int, trial: int | None = None):
        super().__init__(signum, trial)
        self.signum = signum
        self.trial = trial

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP

    def __str__(self) -> str:
        cut = f"trial {self.trial} failed and queued again; " if self.trial is not None else ""
        return (f"interrupted by {signal.Signals(self.signum).name}: {cut}finished trials are kept; "
                "run the same command to resume")


def _ignore(signum, frame) -> None:
    pass


@contextmanager
def stop_signals():
    """Inside the block SIGINT, SIGTERM and SIGHUP stop the running trial as Ctrl-C does; ``Interrupted`` leaves it."""
    caught: list[int] = []

    def stop(signum, frame):
        # A second signal must not cut short the clean-up of the first. A handler that does nothing, not SIG_IGN: a
        # signal already pending (a launcher's SIGTERM after the terminal's SIGINT) would find SIG_IGN and make Python
        # print "Signal 15 ignored due to race condition" with a traceback.
        for name in STOP_SIGNALS:
            signal.signal(name, _ignore)
        caught.append(signum)
        raise KeyboardInterrupt

    previous = {name: signal.signal(name, stop) for name in STOP_SIGNALS}
    try:
        yield
    except KeyboardInterrupt as error:
        raise Interrupted(caught[0] if caught else signal.SIGINT, getattr(error, "trial", None)) from None
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)


def worker_name(worker_index: int | None = None) -> str:
    """What tells this worker from every other on any host: host, pid and the launcher's index if any."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    return name if worker_index is None else f"{name}:{worker_index}"


def run_worker(study_name: str, storage_url: str, *, device: torch.device, max_trials: int | None = None,
               until_done: bool = False, worker_index: int | None = None, quiet: bool = False,
               stop_when: str | None = None, stop_after: int | None = None) -> str:
    """Join an existing study and run its trials until its budget (or ``max_trials``) is done; a one-line summary.

    ``stop_when``/``stop_after``, when given, become the study's stop rule (stored: every worker follows it).

    Raises ``Interrupted`` on a stop signal, after its running trial is failed and queued again.
    """
    from rich.console import Console

    from sweep import study as study_module
    from sweep.dashboard import TrialNotes
    from sweep.progress import SweepProgress

    name = worker_name(worker_index)
    storage = open_storage(storage_url)
    study, config = study_module.load(storage, study_name, worker=name)
    config = study_module.set_stop_rule(study, config, stop_when, stop_after)
    log.info("worker %s joined study %r in %s: %d/%d trials finished; training on %s",
             name, study_name, mask_url(storage_url), finished_count(study), config.n_trials, device)
    # One line per trial, never live bars: workers share a terminal or a container log.
    console = Console(stderr=True, force_terminal=False)
    with stop_signals(), SweepProgress(config.n_trials, finished_count(study), config.epochs, quiet=quiet,
                                       console=console) as progress:
        ran = run_trials(study, config, device, storage=storage, progress=progress, max_trials=max_trials,
                         until_done=until_done, callbacks=(TrialNotes(config.patience, config.min_delta),))
    stopped = stop_reason(study)
    return (f"worker {name} done: {ran} trials here, {finished_count(study)}/{config.n_trials} in the study"
            + (f"; stopped before the budget: {stopped['reason']}" if stopped else ""))

def _taken_over(study: optuna.Study, number: int | None) -> bool:
    """Whether another worker failed this worker's trial and queued it again. Asked of the database: where the
    pause ended decides which of Optuna's calls fails first, and with which error."""
    if number is None:
        return False
    try:
        return any(number in trial.system_attrs.get("retry_history", ()) for trial in study.get_trials(deepcopy=False))
    except Exception:  # the database away: not a take-over that can be told
        return False


def _room(study: optuna.Study) -> tuple[int, set[int]]:
    """(finished count, numbers of the running trials): a new trial may start only while finished + running < budget."""
    trials = study.get_trials(deepcopy=False, states=(*BUDGET_STATES, TrialState.RUNNING))
    running = {trial.number for trial in trials if trial.state == TrialState.RUNNING}
    return len(trials) - len(running), running


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
    objective: Callable[[optuna.Trial], float] | None = None,
) -> int:
    """Run trials until ``config.n_trials`` have finished in the whole study; returns how many ran here.

    The budget is exact across workers: a trial starts only while finished + running trials are
    below it (checked under ``BudgetGate``). ``max_trials`` caps the trials run here. With
    ``until_done`` the worker stays while other workers' trials run, so that it retries the
    trial of a worker that died (failed by Optuna's heartbeat check); otherwise it leaves as soon
    as the whole budget is handed out. A lost database is waited for (``wait_for_storage``).
    ``objective`` trains one trial: the sweep's ``Objective`` unless given.
    """
    if objective is None:
        from sweep.objective import Objective  # torch: imported only by a worker that trains

        objective = Objective(config, device, progress)
    gate = BudgetGate(storage, study.study_name)
    poll_seconds = poll_seconds or max(1.0, float(heartbeat_settings().heartbeat_interval))
    ran = 0
    current: dict = {}
    waiting_logged = False

    def admitted(trial: optuna.Trial) -> float:
        # The trial now exists as RUNNING, so every other worker counts it: let them check.
        current["number"] = trial.number
        gate.release()
        try:
            return objective(trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker failed this trial (no heartbeat while this one was paused) and queued it again; Optuna's
            # own tell of it fails next with another error, so it is noted here.
            current["taken_over"] = True
            raise

    def count(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal ran
        ran += 1

    all_callbacks = [count, *([progress] if progress is not None else []), *callbacks, *keep_best_for(config, study),
                     *stop_callbacks(config)]
    # Stale trials are failed and queued again every heartbeat interval, not only when a worker asks for a trial.
    with StaleTrialWatcher(study, interval=poll_seconds):
        while max_trials is None or ran < max_trials:
            current.clear()
            try:
                with gate:
                    fail_stale_trials(study)
                    schedule_confirmations(study, config)  # under the gate: one worker queues them, once
                    finished, running_before = _room(study)
                    running = len(running_before)
                    if finished >= config.n_trials or stop_reason(study):  # budget spent, or --stop-when held
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
            except KeyboardInterrupt as interrupt:
                interrupt.trial = _requeue_interrupted(study, current.get("number"))
                raise
            except Exception as error:
                if current.get("taken_over") or _taken_over(study, current.get("number")):
                    log.warning("trial %d was taken over: it was failed and queued again while this worker was paused "
                                "(no heartbeat); dropped here, going on", current["number"])
                    continue
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
                    from sweep.progress import waiting_line

                    log.info(waiting_line(study, finished, running_before))
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


def _requeue_interrupted(study: optuna.Study, number: int | None) -> int | None:
    """The trial a stop signal cut short is FAIL (Optuna's doing); queue its params again for any worker.

    Returns its number when it was queued again.
    """
    if number is None:
        return None
    try:
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
        if trial.state == TrialState.FAIL:
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)
            return number
    except Exception as error:  # interrupted while the database is away: the heartbeat check retries it later
        log.warning("trial %d interrupted; could not queue it again: %s", number, describe_error(error))
    return None
