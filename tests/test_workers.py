"""Many workers on one PostgreSQL study: exact global budget, dead workers, Ctrl-C, status (real processes)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import optuna
import pytest
from click.testing import CliRunner

from sweep.cli import main
from sweep.storage import open_storage

# Tiny trials: resnet18 at 32 px on a few synthetic images, two epochs.
TINY = [
    "--model", "resnet18", "--weights", "none", "--data", "synthetic:64", "--image-size", "32",
    "--max-train", "32", "--max-val", "16", "--epochs", "2", "--batch-size", "16",
]
# Heartbeat every second, a trial silent for 3 s is stale: the kill test waits seconds, not minutes.
FAST_HEARTBEAT = {"SWEEP_HEARTBEAT_INTERVAL": "1", "SWEEP_GRACE_PERIOD": "3"}


def sweep_env(storage_url: str, **extra: str) -> dict:
    return {**os.environ, "SWEEP_STORAGE": storage_url, "OMP_NUM_THREADS": "1", **FAST_HEARTBEAT, **extra}


def create_study(storage_url: str, name: str, *args: str) -> None:
    """`sweep start --workers 0`, in this process: the command's own code, without a second import of torch."""
    result = CliRunner().invoke(main, ["start", "--study", name, *TINY, *args, "--workers", "0", "--no-doctor"],
                                env=sweep_env(storage_url))
    assert result.exit_code == 0, result.output


def start_worker(storage_url: str, name: str, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sweep.cli", "worker", "--study", name, *args],
        env=sweep_env(storage_url), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, **popen,
    )


def trials(storage_url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    # Polled every 0.2 s: an engine left to the garbage collector keeps its connection open, and
    # a few hundred of them run the server out of connections (seen in CI: "too many clients").
    storage = optuna.storages.RDBStorage(storage_url)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    finally:
        storage.engine.dispose()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def by_state(all_trials, *states: str) -> list[optuna.trial.FrozenTrial]:
    return [trial for trial in all_trials if trial.state.name in states]


@pytest.mark.slow
def test_three_workers_finish_the_global_budget_exactly(pg_url):
    create_study(pg_url, "three", "--n-trials", "6")
    workers = [start_worker(pg_url, "three", "--worker-index", str(index), "--quiet") for index in range(3)]
    outputs = [worker.communicate(timeout=240) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], [err for _, err in outputs]

    done = trials(pg_url, "three")
    assert len(by_state(done, "COMPLETE", "PRUNED")) == 6  # the budget, not 3 x 6
    assert by_state(done, "RUNNING", "WAITING", "FAIL") == []  # no surplus trial started and dropped
    numbers = [trial.number for trial in done]
    assert sorted(numbers) == list(range(6))
    for trial in done:
        history = trial.user_attrs["history"]
        assert [row["epoch"] for row in history] == list(range(1, len(history) + 1)) and history
        assert trial.intermediate_values == {row["epoch"]: row["val_loss"] for row in history}
    assert done[0].user_attrs["baseline"] is True
    # Sampled trials differ: the workers' samplers are seeded apart.
    sampled = [tuple(sorted(trial.params.items())) for trial in done[1:]]
    assert len(set(sampled)) == len(sampled)


@pytest.mark.slow
def test_worker_killed_mid_trial_is_failed_and_its_params_retried(pg_url):
    create_study(pg_url, "kill", "--n-trials", "2", "--pruner", "none")
    # The victim starts alone: with both started at once, a fast survivor could run both trials
    # before the victim asked for one (seen once in CI).
    victim = start_worker(pg_url, "kill", "--worker-index", "0")

    def victims_trial():
        if victim.poll() is not None:
            raise AssertionError(f"victim exited {victim.returncode} before its trial: {victim.stderr.read()}")
        return [t for t in by_state(trials(pg_url, "kill"), "RUNNING")
                if t.user_attrs.get("worker", {}).get("pid") == victim.pid]

    # Killed as soon as its trial runs the objective (building data or training).
    killed = wait_for(victims_trial, 120, "the victim's running trial")[0]
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    survivor = start_worker(pg_url, "kill", "--worker-index", "1", "--until-done")

    out, err = survivor.communicate(timeout=240)
    assert survivor.returncode == 0, err
    done = trials(pg_url, "kill")
    assert done[killed.number].state.name == "FAIL"
    retries = [t for t in done if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1
    assert retries[0].params == killed.params and retries[0].state.name == "COMPLETE"
    assert retries[0].user_attrs["worker"]["pid"] == survivor.pid
    assert by_state(done, "RUNNING", "WAITING") == []
    assert len(by_state(done, "COMPLETE", "PRUNED")) == 2


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupting_start_with_workers_leaves_nothing_running(pg_url, how):
    create_study(pg_url, "stop", "--n-trials", "20", "--epochs", "30")
    parent = subprocess.Popen(
        [sys.executable, "-m", "sweep.cli", "start", "--study", "stop", *TINY, "--n-trials", "20",
         "--epochs", "30", "--workers", "2", "--quiet"],
        env=sweep_env(pg_url), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    wait_for(lambda: len(by_state(trials(pg_url, "stop"), "RUNNING")) == 2, 120, "both workers running a trial")
    if how == "ctrl-c":
        os.killpg(parent.pid, signal.SIGINT)  # what the terminal does: every process of the job gets it
    else:
        parent.send_signal(signal.SIGTERM)  # only the parent: it passes the stop on
    out, err = parent.communicate(timeout=60)
    assert parent.returncode == (130 if how == "ctrl-c" else 143), err
    assert "Traceback" not in err

    done = trials(pg_url, "stop")
    assert by_state(done, "RUNNING") == []
    failed = by_state(done, "FAIL")
    assert len(failed) == 2
    # every run is queued again; a trial the signal caught in Optuna's ask, before it had params, held none
    failed = [t for t in failed if t.params or "fixed_params" in t.system_attrs]
    queued = by_state(done, "WAITING")
    assert sorted(t.system_attrs["failed_trial"] for t in queued) == sorted(t.number for t in failed), err
    assert {tuple(sorted(t.params.items())) for t in queued} == {tuple(sorted(t.params.items())) for t in failed}


# The test stands in for workers with ask() on a heartbeat storage, which Optuna warns is not how heartbeats run.
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_status_shows_workers_alive_and_heartbeats_never_the_password(pg_url):
    secret_url = pg_url.replace("postgres@", "postgres:s3cret-pw@")  # trust auth ignores the password
    result = CliRunner().invoke(main, ["start", "--study", "st", *TINY, "--n-trials", "4", "--workers", "0"],
                                env={"SWEEP_STORAGE": secret_url})
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output and "***" in result.output

    storage = open_storage(pg_url)
    study = optuna.load_study(study_name="st", storage=storage)
    beating = study.ask()  # pops the baseline
    beating.set_user_attr("worker", {"host": "gpu-box-1", "pid": 4242, "device": "cuda:0"})
    storage.record_heartbeat(beating._trial_id)
    silent = study.ask()
    silent.set_user_attr("worker", {"host": "gpu-box-2", "pid": 77, "device": "cuda:1"})

    result = CliRunner().invoke(main, ["status", "--study", "st"], env={"SWEEP_STORAGE": secret_url})
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output
    assert "workers alive: 1 " in result.output
    assert re.search(r"running: trial 0 epoch 0 on gpu-box-1 pid 4242 cuda:0, since \S+, last heartbeat \d+s ago", result.output)
    assert re.search(r"running: trial 1 epoch 0 on gpu-box-2 pid 77 cuda:1, since \S+, no heartbeat yet", result.output)

    # A wrong host: the error names the URL, masked.
    result = CliRunner().invoke(main, ["status", "--study", "st"],
                                env={"SWEEP_STORAGE": "postgresql+psycopg://sweep:s3cret-pw@127.0.0.1:1/nope"})
    assert result.exit_code == 1
    assert "s3cret-pw" not in result.output and "sweep:***@127.0.0.1:1/nope" in result.output


def test_worker_on_a_missing_study_is_a_usage_error(pg_url):
    result = CliRunner().invoke(main, ["worker", "--study", "nope"], env={"SWEEP_STORAGE": pg_url})
    assert result.exit_code == 2
    assert "no study named 'nope'" in result.output and "Traceback" not in result.output


def test_start_with_zero_workers_only_creates_the_study(pg_url):
    result = CliRunner().invoke(main, ["start", "--study", "zero", *TINY, "--n-trials", "3", "--workers", "0"],
                                env={"SWEEP_STORAGE": pg_url})
    assert result.exit_code == 0, result.output
    assert "sweep worker --study zero" in result.stdout
    study = optuna.load_study(study_name="zero", storage=pg_url)
    assert [t.state.name for t in study.trials] == ["WAITING"]  # the baseline, queued for the workers
    assert study.user_attrs["sweep_config"]["n_trials"] == 3


@pytest.mark.slow
def test_local_workers_on_the_embedded_store_meet_the_budget_exactly(tmp_path):
    # Several processes on one SQLite file: the budget check is held under a file lock beside it.
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "sweep.cli", "start", "--study", "local", *TINY, "--n-trials", "4",
         "--workers", "2", "--no-doctor", "--quiet"],
        env=sweep_env(storage), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Study local: 4 trials" in result.stdout  # the analysis at the end
    done = trials(storage, "local")
    assert len(by_state(done, "COMPLETE", "PRUNED")) == 4
    assert by_state(done, "RUNNING", "WAITING", "FAIL") == []
