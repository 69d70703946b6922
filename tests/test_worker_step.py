"""The worker loop's one step says what happened: a trial ran, no room, budget spent, stopped, taken over."""

from __future__ import annotations

import warnings

import optuna
import pytest

from sweep.config import SweepConfig
from sweep.storage import open_storage
from sweep.study import create_or_resume
from sweep.study_record import StudyWriter
from sweep.worker import Outcome, step, trial_loop


@pytest.fixture
def study(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'steps.db'}")
    study, _ = create_or_resume(storage, "steps", SweepConfig(n_trials=3, epochs=1, checkpoints=False))
    return study, storage


def loop_for(study, storage, objective=lambda trial: 1.0):
    config = SweepConfig(n_trials=3, epochs=1, checkpoints=False)
    return trial_loop(study, config, None, storage=storage, objective=objective)


def test_steps_run_trials_until_the_budget_is_handed_out_then_spent(study):
    study, storage = study
    loop = loop_for(study, storage)
    assert [step(loop).outcome for _ in range(2)] == [Outcome.RAN, Outcome.RAN]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ask/tell on a heartbeat storage warns
        other = study.ask()  # another worker's trial, running
    done = step(loop)
    assert (done.outcome, done.ran, done.finished, done.running) == (Outcome.NO_ROOM, 0, 2, 1)
    study.tell(other, 1.0)
    done = step(loop)
    assert (done.outcome, done.finished) == (Outcome.BUDGET_SPENT, 3)


def test_a_stopped_study_starts_no_trial(study):
    study, storage = study
    StudyWriter(study).stopped({"rule": "answered", "reason": "settled", "n_finished": 0})
    assert step(loop_for(study, storage)).outcome is Outcome.STOPPED
    assert study.get_trials(states=(optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.COMPLETE)) == []


def test_a_trial_another_worker_took_over_is_dropped_and_the_loop_goes_on(study):
    study, storage = study

    def taken(trial):
        raise optuna.exceptions.UpdateFinishedTrialError("failed by another worker")

    done = step(loop_for(study, storage, taken))
    assert (done.outcome, done.ran) == (Outcome.TAKEN_OVER, 0)


def test_a_stop_signal_that_surfaces_as_a_database_error_stops_the_step_and_queues_its_trial_again(study):
    """SIGTERM inside a database call: the call that next finds the connection cut raises a database error whose
    context is the KeyboardInterrupt. That is a stop, not an outage to wait out and go on from."""
    import sqlalchemy.exc

    study, storage = study

    def cut(trial):
        try:
            raise KeyboardInterrupt  # the stop handler, inside the driver
        except KeyboardInterrupt:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("can't change 'autocommit' now"))

    with pytest.raises(KeyboardInterrupt) as stopped:
        step(loop_for(study, storage, cut))
    assert stopped.value.trial == 0
    states = [trial.state.name for trial in study.get_trials()]
    assert states == ["FAIL", "WAITING"]  # the baseline failed and queued again for the next worker


class StopWhileAsking(optuna.samplers.BaseSampler):
    """The sweep's sampler, with a stop signal landing in Optuna's ask: the trial is RUNNING, the objective not yet."""

    def __init__(self, sampler):
        self.sampler = sampler

    def before_trial(self, study, trial):
        raise KeyboardInterrupt

    def infer_relative_search_space(self, study, trial):
        return self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.sampler.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.sampler.sample_independent(study, trial, param_name, param_distribution)


def test_a_queued_run_a_stop_signal_catches_before_its_objective_stays_queued(study):
    """Between Optuna's ask (the queued trial popped, RUNNING) and the objective: the trial is failed, and the run
    it held (here the baseline; a retry or a one-change run alike) is queued again, not lost."""
    study, storage = study
    baseline = study.get_trials()[0].system_attrs["fixed_params"]  # Optuna keeps a queued run's params there
    loop = loop_for(study, storage)
    loop.study.sampler = StopWhileAsking(loop.study.sampler)
    with pytest.raises(KeyboardInterrupt):
        step(loop)
    trials = study.get_trials()
    assert [trial.state.name for trial in trials] == ["FAIL", "WAITING"]
    assert trials[1].system_attrs["fixed_params"] == baseline and trials[1].system_attrs["failed_trial"] == 0
