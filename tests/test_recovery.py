"""Dead and paused workers on one PostgreSQL study (real processes): a dead worker's trial is failed and queued again
within the grace period plus one heartbeat interval, whatever the other trials' length, and a paused worker whose
trial was taken over drops it with one line and goes on."""

from __future__ import annotations

import signal
import time

import pytest

from test_workers import FAST_HEARTBEAT, by_state, create_study, start_worker, trials, wait_for

# trials far longer than the grace period: nothing frozen, the baseline included (a frozen trial's epochs are short)
LONG = ("--n-trials", "6", "--epochs", "60", "--pruner", "none", "--frozen-stages", "0", "--baseline", "frozen_stages=0")


def running_trial_of(worker, storage_url: str, name: str):
    def found():
        if worker.poll() is not None:
            raise AssertionError(f"worker exited {worker.returncode}: {worker.stderr.read()}")
        return [t for t in by_state(trials(storage_url, name), "RUNNING")
                if t.user_attrs.get("worker", {}).get("pid") == worker.pid]
    return wait_for(found, 120, f"a running trial of pid {worker.pid}")[0]


@pytest.mark.slow
def test_a_dead_workers_trial_is_retried_while_the_others_still_train(pg_url):
    create_study(pg_url, "dead", *LONG)
    victim = start_worker(pg_url, "dead")
    killed = running_trial_of(victim, pg_url, "dead")
    survivor = start_worker(pg_url, "dead", "--until-done")
    running_trial_of(survivor, pg_url, "dead")  # busy with a trial far longer than the grace period
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    killed_at = time.monotonic()

    wait_for(lambda: trials(pg_url, "dead")[killed.number].state.name == "FAIL",
             float(FAST_HEARTBEAT["SWEEP_GRACE_PERIOD"]) + 15, "the dead worker's trial failed")
    # grace 3 s + interval 1 s, with slack for a loaded machine; a trial of 60 epochs takes far longer
    recovered_in = time.monotonic() - killed_at
    survivor.send_signal(signal.SIGTERM)
    _, err = survivor.communicate(timeout=90)
    done = trials(pg_url, "dead")
    retries = [t for t in done if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert recovered_in < 12, recovered_in
    assert (f"trial {killed.number} of worker {killed.user_attrs['worker']['host']}:{victim.pid} failed: "
            f"no heartbeat for") in err and f"queued again as trial {retries[0].number}" in err, err


@pytest.mark.slow
def test_a_paused_worker_whose_trial_was_taken_over_drops_it_and_goes_on(pg_url):
    create_study(pg_url, "paused", *LONG)
    sleeper = start_worker(pg_url, "paused")
    taken = running_trial_of(sleeper, pg_url, "paused")
    sleeper.send_signal(signal.SIGSTOP)  # a frozen VM, a suspended job
    other = start_worker(pg_url, "paused", "--until-done")
    wait_for(lambda: trials(pg_url, "paused")[taken.number].state.name == "FAIL", 60, "the paused trial failed")
    sleeper.send_signal(signal.SIGCONT)
    # it notices at its next epoch, then asks for a new trial
    running_trial_of(sleeper, pg_url, "paused")
    for worker in (sleeper, other):
        worker.send_signal(signal.SIGTERM)
    _, err = sleeper.communicate(timeout=90)
    other.communicate(timeout=90)
    assert "Traceback" not in err, err
    assert f"trial {taken.number} was taken over" in err, err
    assert sleeper.returncode == 128 + signal.SIGTERM, err


@pytest.mark.postgres
def test_a_trial_that_never_sent_a_heartbeat_is_failed_and_queued_again(pg_url, monkeypatch):
    # The database went away between Optuna's creating the trial and its first heartbeat: no heartbeat row at all.
    import optuna

    from sweep.recovery import fail_stale_trials
    from sweep.storage import open_storage

    monkeypatch.setenv("SWEEP_HEARTBEAT_INTERVAL", "1")
    monkeypatch.setenv("SWEEP_GRACE_PERIOD", "2")
    study = optuna.create_study(study_name="silent", storage=open_storage(pg_url))
    orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # RUNNING, never beaten
    fail_stale_trials(study)
    assert study.trials[orphan.number].state.name == "RUNNING"  # younger than twice the grace period: left alone
    time.sleep(4.5)
    fail_stale_trials(study)
    states = [trial.state.name for trial in study.trials]
    assert states[orphan.number] == "FAIL" and states[-1] == "WAITING"  # queued again with the same params
    assert study.trials[-1].params == study.trials[orphan.number].params
