"""Every command that trains stops on SIGTERM and SIGHUP as on Ctrl-C: its running trial failed and queued again,
one line on stderr, exit 128 + the signal (real processes on PostgreSQL)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from test_workers import TINY, by_state, create_study, sweep_env, trials, wait_for

COMMANDS = {
    "start": ["start", "--study", "stop", *TINY, "--n-trials", "6", "--epochs", "40", "--no-doctor"],
    "start --workers 2": ["start", "--study", "stop", *TINY, "--n-trials", "6", "--epochs", "40", "--workers", "2",
                          "--no-doctor"],
    "worker": ["worker", "--study", "stop", "--until-done"],
}


@pytest.mark.slow
# every command that trains, and both signals (one handler serves all three commands)
@pytest.mark.parametrize("command, signum", [("start", signal.SIGTERM), ("start --workers 2", signal.SIGTERM),
                                             ("worker", signal.SIGHUP)])
def test_a_stop_signal_fails_and_requeues_the_running_trials(pg_url, command, signum):
    create_study(pg_url, "stop", "--n-trials", "6", "--epochs", "40")
    running = 2 if "--workers" in COMMANDS[command] else 1
    process = subprocess.Popen([sys.executable, "-m", "sweep.cli", *COMMANDS[command], "--quiet"],
                               env=sweep_env(pg_url), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    wait_for(lambda: len(by_state(trials(pg_url, "stop"), "RUNNING")) == running, 120, "its trials running")
    process.send_signal(signum)
    _, err = process.communicate(timeout=90)

    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err
    name = signal.Signals(signum).name
    # one line from each process (a launcher passes SIGTERM on to its workers), the last one the command's own
    own_lines = [line for line in err.splitlines() if line.startswith("interrupted by")]
    assert len(own_lines) == (1 if running == 1 else 1 + running) and name in own_lines[-1], err
    assert [line for line in err.splitlines() if "failed with" in line] == [], err
    done = trials(pg_url, "stop")
    assert by_state(done, "RUNNING") == []
    failed = by_state(done, "FAIL")
    assert len(failed) == running
    queued = [trial for trial in by_state(done, "WAITING") if "failed_trial" in trial.system_attrs]
    assert sorted(trial.system_attrs["failed_trial"] for trial in queued) == sorted(trial.number for trial in failed)
    if running == 1:
        assert f"trial {failed[0].number} failed and queued again" in own_lines[0]
