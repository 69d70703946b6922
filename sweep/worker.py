"""A worker: the ask-train-tell loop over a study's global trial budget, and the stop signals that end it cleanly.

The loop is flat: each ``step`` starts at most one trial and says what happened (``Outcome``); ``run_trials`` only
decides whether to go on. ``run_here`` is what `sweep start` and `sweep worker` both run.
"""

from __future__ import annotations

import enum
import logging
import os
import signal
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import optuna
from optuna.trial import TrialState
from rich.console import Console

from sweep import study as study_module
from sweep.admission import BudgetGate
from sweep.artifacts import keep_best_for, open_study_store
from sweep.config import SweepConfig
from sweep.confirm import schedule_confirmations
from sweep.dashboard import TrialNotes
from sweep.logs import interrupted
from sweep.optuna_internals import holds_queued_run, study_storage
from sweep.progress import SweepProgress, waiting_line
from sweep.recovery import StaleTrialWatcher, fail_stale_trials
from sweep.stopping import stop_callbacks
from sweep.storage import (
    MAX_RETRY, OUTAGE_ERRORS, describe_error, heartbeat_settings, mask_url, open_storage, storage_reachable,
    wait_for_storage,
)
from sweep.study import BUDGET_STATES, finished_count
from sweep.study_record import stop_reason, taken_over

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
    name = worker_name(worker_index)
    storage = open_storage(storage_url)
    study, config = study_module.load(storage, study_name, worker=name)
    config = study_module.set_stop_rule(study, config, stop_when, stop_after)
    log.info("worker %s joined study %r in %s: %d/%d trials finished; training on %s",
             name, study_name, mask_url(storage_url), finished_count(study), config.n_trials, device)
    # One line per trial, never live bars: workers share a terminal or a container log.
    ran = run_here(study, config, storage, device, until_done=until_done, quiet=quiet, max_trials=max_trials,
                   bars=False)
    stopped = stop_reason(study)
    return (f"worker {name} done: {ran} trials here, {finished_count(study)}/{config.n_trials} in the study"
            + (f"; stopped before the budget: {stopped['reason']}" if stopped else ""))


def run_here(study: optuna.Study, config: SweepConfig, storage: optuna.storages.BaseStorage, device: torch.device, *,
             until_done: bool, quiet: bool, max_trials: int | None = None, bars: bool = True) -> int:
    """Train the study's trials in this process, with progress and dashboard notes, until a stop signal raises
    ``Interrupted``: what `sweep start` and `sweep worker` both run. Returns how many trials ran here.

    ``bars``: live progress bars on a terminal; otherwise one line per trial."""
    console = None if bars else Console(stderr=True, force_terminal=False)
    with stop_signals(), SweepProgress(config.n_trials, finished_count(study), config.epochs, quiet=quiet,
                                       console=console) as progress:
        return run_trials(study, config, device, storage=storage, progress=progress, max_trials=max_trials,
                          until_done=until_done, callbacks=(TrialNotes(config.patience, config.min_delta),))


class Outcome(enum.Enum):
    """What one step of the loop did."""

    RAN = "ran"  # a trial ran here
    NO_ROOM = "no room"  # the budget is handed out while other workers' trials run
    BUDGET_SPENT = "budget spent"
    STOPPED = "stopped"  # the study's --stop-when rule held
    TAKEN_OVER = "taken over"  # another worker failed and queued again our trial while this one was paused
    STORAGE_AWAY = "storage away"  # the database did not answer: waited until it did


@dataclass(frozen=True)
class Step:
    """What one step did, and what it saw of the study's budget."""

    outcome: Outcome
    ran: int = 0  # trials that ended here and were told, whatever came after
    finished: int = 0  # the study's finished trials when the step looked
    running: int = 0  # its running trials then
    running_trials: frozenset[int] = frozenset()  # their numbers, for the line that says what a worker waits for


@dataclass(frozen=True)
class TrialLoop:
    """What every step of one worker's loop uses."""

    study: optuna.Study
    config: SweepConfig
    storage: optuna.storages.BaseStorage | None  # None: no budget lock across processes, no waiting for a database
    gate: BudgetGate
    objective: Callable[[optuna.Trial], float]
    callbacks: tuple


def trial_loop(study: optuna.Study, config: SweepConfig, device: torch.device, *,
               storage: optuna.storages.BaseStorage | None = None, progress=None, callbacks: tuple = (),
               objective: Callable[[optuna.Trial], float] | None = None) -> TrialLoop:
    """The loop's parts: the budget gate, the objective (the sweep's ``Objective`` unless given) and the callbacks
    after each trial (progress, the caller's, keep-best, stop rule)."""
    if objective is None:
        from sweep.objective import Objective  # torch: imported only by a worker that trains

        objective = Objective(config, device, progress)
    store = open_study_store(config, storage if storage is not None else study_storage(study))
    after_trial = (*([progress] if progress is not None else []), *callbacks, *keep_best_for(config, store),
                   *stop_callbacks(config))
    return TrialLoop(study, config, storage, BudgetGate(storage, study.study_name), objective, after_trial)


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
    loop = trial_loop(study, config, device, storage=storage, progress=progress, callbacks=callbacks,
                      objective=objective)
    poll_seconds = poll_seconds or max(1.0, float(heartbeat_settings().heartbeat_interval))
    ran, waiting = 0, False
    # Stale trials are failed and queued again every heartbeat interval, not only when a worker asks for a trial.
    with StaleTrialWatcher(study, interval=poll_seconds):
        while max_trials is None or ran < max_trials:
            done = step(loop)
            ran += done.ran
            if done.outcome in (Outcome.BUDGET_SPENT, Outcome.STOPPED):
                break
            if done.outcome is Outcome.NO_ROOM and not until_done:
                break
            if done.outcome is Outcome.NO_ROOM:
                _wait_for_room(study, done, poll_seconds, said=waiting)
            waiting = done.outcome is Outcome.NO_ROOM
    return ran


def _wait_for_room(study: optuna.Study, done: Step, seconds: float, said: bool) -> None:
    if not said:
        log.info(waiting_line(study, done.finished, done.running_trials))
    time.sleep(seconds)


class _Admitted:
    """The objective Optuna runs for one step: it hands the gate back once the trial is RUNNING (every other worker
    counts it then) and notes the trial's number, whether it was told, and whether another worker took it over."""

    def __init__(self, loop: TrialLoop):
        self.loop = loop
        self.number: int | None = None
        self.told = 0
        self.taken_over = False

    def __call__(self, trial: optuna.Trial) -> float:
        self.number = trial.number
        self.loop.gate.release()
        try:
            return self.loop.objective(trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker failed this trial (no heartbeat while this one was paused) and queued it again; Optuna's
            # own tell of it fails next with another error, so it is noted here.
            self.taken_over = True
            raise

    def count(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.told += 1


def step(loop: TrialLoop) -> Step:
    """Start one trial if the budget has room and say what happened. A stop signal raises ``KeyboardInterrupt``
    with its trial failed and queued again; an error that is neither a take-over nor the database away is raised."""
    admitted = _Admitted(loop)
    try:
        with loop.gate:
            fail_stale_trials(loop.study)
            schedule_confirmations(loop.study, loop.config)  # under the gate: one worker plans them, once
            finished, running = _room(loop.study)
            if finished >= loop.config.n_trials:
                return Step(Outcome.BUDGET_SPENT, finished=finished, running=len(running))
            if stop_reason(loop.study):
                return Step(Outcome.STOPPED, finished=finished, running=len(running))
            if finished + len(running) >= loop.config.n_trials:
                return Step(Outcome.NO_ROOM, finished=finished, running=len(running), running_trials=frozenset(running))
            _run_one(loop, admitted, running)
        return Step(Outcome.RAN, admitted.told, finished, len(running))
    except KeyboardInterrupt as interrupt:
        interrupt.trial = _requeue_interrupted(loop.study, admitted.number)
        raise
    except Exception as error:
        if interrupted(error):
            # A stop signal inside a database call reaches here as the error of the call that found the connection
            # cut (Optuna's tell of the interrupted trial): a stop, not an outage to wait out.
            interrupt = KeyboardInterrupt()
            interrupt.trial = _requeue_interrupted(loop.study, admitted.number)
            raise interrupt from error
        handled = _after_error(loop, admitted, error)
        if handled is None:
            raise
        return handled


def _run_one(loop: TrialLoop, admitted: _Admitted, running_before: set[int]) -> None:
    try:
        loop.study.optimize(admitted, n_trials=1, callbacks=[admitted.count, *loop.callbacks], gc_after_trial=False)
    except KeyboardInterrupt:
        if admitted.number is None:  # between Optuna's ask and our objective: the gate is still ours
            admitted.number = _fail_unadmitted(loop.study, loop.storage, running_before)  # the step queues it again
        raise


def _after_error(loop: TrialLoop, admitted: _Admitted, error: Exception) -> Step | None:
    """The step's outcome when ``error`` is a take-over or the database away (waited for); None for any other."""
    if admitted.taken_over or _taken_over(loop.study, admitted.number):
        log.warning("trial %d was taken over: it was failed and queued again while this worker was paused "
                    "(no heartbeat); dropped here, going on", admitted.number)
        return Step(Outcome.TAKEN_OVER, admitted.told)
    # Optuna's own error handling can fail with another exception type while the database is
    # down (e.g. its tell of the abandoned trial), so ask the database, not the exception.
    if loop.storage is None or (not isinstance(error, OUTAGE_ERRORS) and storage_reachable(loop.storage)):
        return None
    wait_for_storage(loop.storage, describe_error(error))
    return Step(Outcome.STORAGE_AWAY, admitted.told)


def _taken_over(study: optuna.Study, number: int | None) -> bool:
    """Whether another worker failed this worker's trial and queued it again. Asked of the database: where the
    pause ended decides which of Optuna's calls fails first, and with which error."""
    try:
        return taken_over(study, number)
    except Exception:  # the database away: not a take-over that can be told
        return False


def _room(study: optuna.Study) -> tuple[int, set[int]]:
    """(finished count, numbers of the running trials): a new trial may start only while finished + running < budget."""
    trials = study.get_trials(deepcopy=False, states=(*BUDGET_STATES, TrialState.RUNNING))
    running = {trial.number for trial in trials if trial.state == TrialState.RUNNING}
    return len(trials) - len(running), running


def _fail_unadmitted(study: optuna.Study, storage: optuna.storages.BaseStorage | None,
                     running_before: set[int]) -> int | None:
    """Fail the trial a Ctrl-C caught after Optuna made it RUNNING but before our objective ran; its number where it
    held a queued run (the baseline, a retry, a one-change run: fixed params), which the step queues again.

    Optuna fails a trial interrupted inside the objective; one interrupted in between has neither a heartbeat (so no
    worker would ever fail it as stale) nor params of its own. While this worker holds the budget gate no other
    worker creates or starts a trial, so every trial RUNNING now that was not before is this worker's.
    """
    storage = study_storage(study) if storage is None else storage
    study_id = storage.get_study_id_from_name(study.study_name)
    queued = None
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.number not in running_before:
            storage.set_trial_state_values(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number),
                                           TrialState.FAIL)
            log.warning("trial %d interrupted before it started: marked failed", trial.number)
            if holds_queued_run(trial):
                queued = trial.number
    return queued


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
