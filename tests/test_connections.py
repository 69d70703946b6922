"""What a worker costs PostgreSQL: at most ``CONNECTIONS_PER_PROCESS`` connections each, however many workers share the
study, counted from the server's own ``pg_stat_activity`` while the workers run (real worker loop, tiny objective)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import optuna
import pytest

from conftest import _pg_admin_connect
from sweep.storage import CONNECTIONS_PER_PROCESS
from tiny_worker import create_study

TINY_WORKER = Path(__file__).with_name("tiny_worker.py")


class ConnectionWatch:
    """Samples the connections to one database by application name (each worker sets its own PGAPPNAME)."""

    def __init__(self, database: str, period: float = 0.1):
        self.database = database
        self.period = period
        self.peak_total = 0
        self.peak_by_worker: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        with _pg_admin_connect() as connection:  # on the admin database: not counted
            while not self._stop.wait(self.period):
                rows = connection.execute("SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = %s "
                                          "GROUP BY application_name", (self.database,)).fetchall()
                self.peak_total = max(self.peak_total, sum(count for _, count in rows))
                for name, count in rows:
                    self.peak_by_worker[name] = max(self.peak_by_worker[name], count)

    def __enter__(self) -> "ConnectionWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_tiny_workers(storage_url: str, study_name: str, n_workers: int, tmp_path: Path,
                     epoch_seconds: float = 0.05) -> list[subprocess.CompletedProcess]:
    processes = []
    for index in range(n_workers):
        env = {**os.environ, "SWEEP_STORAGE": storage_url, "PGAPPNAME": f"tiny-worker-{index}",
               "SWEEP_ARTIFACTS": str(tmp_path / "artifacts"), "OMP_NUM_THREADS": "1"}
        log = open(tmp_path / f"worker-{index}.log", "w+")
        processes.append((subprocess.Popen([sys.executable, str(TINY_WORKER), "--study", study_name,
                                            "--epoch-seconds", str(epoch_seconds), "--worker-index", str(index)],
                                           env=env, stdout=log, stderr=subprocess.STDOUT), log))
    results = []
    for process, log in processes:
        process.wait(timeout=600)
        log.seek(0)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, log.read(), ""))
        log.close()
    return results


def _database(storage_url: str) -> str:
    return urlsplit(storage_url).path.lstrip("/")


@pytest.mark.slow
def test_thirty_workers_finish_the_budget_within_two_connections_each(pg_url, tmp_path):
    n_workers, n_trials = 30, 60
    create_study(pg_url, "tiny", n_trials)
    with ConnectionWatch(_database(pg_url)) as watch:
        results = run_tiny_workers(pg_url, "tiny", n_workers, tmp_path)

    assert [result.returncode for result in results] == [0] * n_workers, [r.stdout[-2000:] for r in results if r.returncode]
    trials = optuna.load_study(study_name="tiny", storage=pg_url).trials
    states = Counter(trial.state.name for trial in trials)
    assert states["COMPLETE"] + states["PRUNED"] == n_trials and states["RUNNING"] == 0 and states["FAIL"] == 0, states
    assert len(watch.peak_by_worker) == n_workers  # every worker was seen connected
    assert max(watch.peak_by_worker.values()) <= CONNECTIONS_PER_PROCESS, watch.peak_by_worker
    assert watch.peak_total <= CONNECTIONS_PER_PROCESS * n_workers
    ran_here = [int(result.stdout.rsplit("ran ", 1)[1].split()[0]) for result in results]
    assert sum(ran_here) == n_trials and sum(1 for ran in ran_here if ran) > 1  # the work was shared


@pytest.mark.postgres
def test_one_worker_takes_both_of_its_connections_and_no_more(pg_url, tmp_path):
    create_study(pg_url, "tiny", 12)
    with ConnectionWatch(_database(pg_url), period=0.02) as watch:
        [result] = run_tiny_workers(pg_url, "tiny", 1, tmp_path, epoch_seconds=0.1)
    assert result.returncode == 0, result.stdout
    # Two: the budget lock's connection and the one its threads share; a third thread or a held session would show.
    assert watch.peak_by_worker == {"tiny-worker-0": CONNECTIONS_PER_PROCESS}
