"""What a worker costs PostgreSQL: at most ``CONNECTIONS_PER_PROCESS`` connections each, however many workers share the
study, counted from the server's own ``pg_stat_activity`` while the workers run (real worker loop, tiny objective)."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

import optuna
import pytest

from conftest import PG_ADMIN_DSN
from sweep.storage import CONNECTIONS_PER_PROCESS
from tiny_worker import ConnectionWatch, create_study, run_tiny_workers


def _database(storage_url: str) -> str:
    return urlsplit(storage_url).path.lstrip("/")


@pytest.mark.slow
def test_thirty_workers_finish_the_budget_within_two_connections_each(pg_url, tmp_path):
    n_workers, n_trials = 30, 40
    create_study(pg_url, "tiny", n_trials)
    with ConnectionWatch(PG_ADMIN_DSN, _database(pg_url)) as watch:
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
    with ConnectionWatch(PG_ADMIN_DSN, _database(pg_url), period=0.02) as watch:
        [result] = run_tiny_workers(pg_url, "tiny", 1, tmp_path, epoch_seconds=0.1)
    assert result.returncode == 0, result.stdout
    # Two: the budget lock's connection and the one its threads share; a third thread or a held session would show.
    assert watch.peak_by_worker == {"tiny-worker-0": CONNECTIONS_PER_PROCESS}
