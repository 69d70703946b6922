"""Trials per minute of 1, 2, 4 and 8 workers on one PostgreSQL study, with the connections they held; and the
storage cost of one trial against the size of the study.

    .venv/bin/python benchmarks/workers.py --only throughput --out /tmp/workers_bench.md
    .venv/bin/python benchmarks/workers.py --only storage-cost     # PostgreSQL at SWEEP_TEST_PG (default 127.0.0.1:5432)

Each worker is tests/tiny_worker.py: `sweep worker`'s own loop (budget lock, heartbeat, stale-trial watcher, sampler,
pruner, trial record, dashboard notes) around a pure-Python objective that sleeps --epoch-seconds an epoch, as a GPU
trial leaves the CPU to the rest. None imports torch (a worker that does holds about 1 GiB). Throughput is counted from
the trials' own start and end times, so process start-up is left out; connections are sampled from pg_stat_activity.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import optuna

from _common import PG_ADMIN, drop_database, fresh_database

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from tiny_worker import ConnectionWatch, create_study, run_tiny_workers  # noqa: E402

WORKER_COUNTS = (1, 2, 4, 8)


def trials_per_minute(url: str, study_name: str) -> float:
    trials = [t for t in optuna.load_study(study_name=study_name, storage=url).trials if t.datetime_complete]
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    return len(trials) / span * 60


def throughput(n_workers: int, trials_per_worker: int, epochs: int, epoch_seconds: float) -> dict:
    """One sweep of ``n_workers`` tiny workers: trials/min, the budget, peak connections (all, and the most of one)."""
    name, url = fresh_database()
    try:
        n_trials = n_workers * trials_per_worker
        create_study(url, "bench", n_trials, epochs=epochs)
        with tempfile.TemporaryDirectory() as logs, ConnectionWatch(PG_ADMIN, name) as watch:
            results = run_tiny_workers(url, "bench", n_workers, Path(logs), epoch_seconds=epoch_seconds)
        failed = [result.stdout[-500:] for result in results if result.returncode]
        assert not failed, failed
        return {"workers": n_workers, "trials": n_trials, "rate": trials_per_minute(url, "bench"),
                "connections": watch.peak_total, "per_worker": max(watch.peak_by_worker.values())}
    finally:
        drop_database(name)


def machine() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")),
                 platform.processor() or platform.machine())
    return (f"{model}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start; Python "
            f"{platform.python_version()}, optuna {optuna.__version__}, PostgreSQL at {urlsplit(PG_ADMIN).hostname}")


def throughput_table(rows: list[dict], command: str, host: str, epochs: int, epoch_seconds: float,
                     trials_per_worker: int) -> str:
    base = rows[0]["rate"]
    lines = [
        f"Command: `{command}`",
        f"Machine: {host}; load average {os.getloadavg()[0]:.1f} at the end",
        f"Trials: {trials_per_worker} a worker, {epochs} epochs of {epoch_seconds:g} s each (sleep: the CPU stays free as "
        "with a GPU trial), the real worker loop with a pure-Python objective (tests/tiny_worker.py, no torch).",
        "",
        "| workers | trials | trials/min | ratio to 1 worker (ideal) | peak connections, all / one worker |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['workers']} | {row['trials']} | {row['rate']:,.0f} | ×{row['rate'] / base:.2f} "
                     f"(×{row['workers']}) | {row['connections']} / {row['per_worker']} |")
    return "\n".join(lines) + "\n"


class TrivialWorker:
    """`sweep worker`'s loop (budget lock, stale-trial check, budget count, one ``optimize`` per trial)
    with an objective that costs nothing and the random sampler: what is timed is storage cost."""

    def __init__(self, url: str, study_name: str):
        from sweep.admission import BudgetGate
        from sweep.storage import open_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(url)  # a worker process starting: nothing of the study cached yet
        self.study = optuna.load_study(study_name=study_name, storage=storage, sampler=optuna.samplers.RandomSampler())
        self.gate = BudgetGate(storage, study_name)

    def _objective(self, trial) -> float:
        self.gate.release()
        return trial.suggest_float("x", 0, 1) ** 2

    def step(self, budget: int) -> bool:
        """Run one trial if the study has room for it; False once the budget is handed out."""
        from sweep.recovery import fail_stale_trials
        from sweep.worker import _room

        with self.gate:
            fail_stale_trials(self.study)
            finished, running = _room(self.study)
            if finished + len(running) >= budget:
                return False
            self.study.optimize(self._objective, n_trials=1, gc_after_trial=False)
            return True


def per_trial_cost(prefill: int, measured: int = 40) -> tuple[float, float]:
    """(first trial, then seconds per trivial trial) of one worker joining a study already holding ``prefill``.

    The first trial is timed apart: it is when the worker's process reads the study's existing trials
    once (Optuna's per-process trial cache); every later trial reads only what changed.
    """
    name, url = fresh_database()
    try:
        distribution = optuna.distributions.FloatDistribution(0, 1)
        optuna.create_study(study_name="bench", storage=url).add_trials(
            [optuna.trial.create_trial(params={"x": i / prefill}, distributions={"x": distribution}, value=i)
             for i in range(prefill)])
        worker = TrivialWorker(url, "bench")
        budget = prefill + 1 + measured
        start = time.perf_counter()
        worker.step(budget)
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(measured):
            assert worker.step(budget)
        return first, (time.perf_counter() - start) / measured
    finally:
        drop_database(name)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("throughput", "storage-cost"), help="run one part only")
    parser.add_argument("--trials-per-worker", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--epoch-seconds", type=float, default=0.1)
    parser.add_argument("--out", type=Path, help="also write the throughput table here (markdown)")
    parser.add_argument("--sizes", default="10,500,2000", help="study sizes for the storage cost (default: %(default)s)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    host = machine()
    print(host, flush=True)
    if args.only != "storage-cost":
        rows = []
        for n in WORKER_COUNTS:
            rows.append(throughput(n, args.trials_per_worker, args.epochs, args.epoch_seconds))
            print(f"{n} worker(s): {rows[-1]['rate']:7.0f} trials/min, ratio {rows[-1]['rate'] / rows[0]['rate']:.2f} "
                  f"(ideal {n}), peak connections {rows[-1]['connections']} (one worker: {rows[-1]['per_worker']})",
                  flush=True)
        command = " ".join([".venv/bin/python", "benchmarks/workers.py", *sys.argv[1:]])
        table = throughput_table(rows, command, host, args.epochs, args.epoch_seconds, args.trials_per_worker)
        print(table)
        if args.out:
            args.out.write_text(table)
    if args.only != "throughput":
        costs = {}
        for size in (int(s) for s in args.sizes.split(",")):
            first, costs[size] = per_trial_cost(size)
            print(f"study holding {size:5d} trials: first trial of a new worker {first * 1000:7.1f} ms, "
                  f"then {costs[size] * 1000:5.1f} ms per trial", flush=True)
        smallest, largest = min(costs), max(costs)
        print(f"per-trial cost, {largest} vs {smallest} trials: {costs[largest] / costs[smallest]:.2f}x (flat: 1.00x)")


if __name__ == "__main__":
    main()
