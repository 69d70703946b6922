"""Trials per minute with 1, 2 and 4 local workers on one PostgreSQL study, and per-trial storage cost vs study size.

    .venv/bin/python benchmarks/workers.py                       # needs PostgreSQL at SWEEP_TEST_PG (default 127.0.0.1:5432)
    .venv/bin/python benchmarks/workers.py --only storage-cost   # per-trial cost vs study size only

Throughput is counted from the trials' own start/end times, so process start-up (importing torch) is left out.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import subprocess
import sys
import time
from urllib.parse import urlsplit

import optuna

from _common import PG_ADMIN, drop_database, fresh_database

TINY = ["--model", "resnet18", "--weights", "none", "--data", "synthetic:64", "--image-size", "32",
        "--max-train", "32", "--max-val", "16", "--epochs", "2", "--batch-size", "16"]


def trials_per_minute(url: str, study_name: str) -> float:
    trials = [t for t in optuna.load_study(study_name=study_name, storage=url).trials if t.datetime_complete]
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    return len(trials) / span * 60


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
        from sweep.worker import _fail_stale_trials, _room

        with self.gate:
            _fail_stale_trials(self.study)
            finished, running = _room(self.study)
            if finished + len(running) >= budget:
                return False
            self.study.optimize(self._objective, n_trials=1, gc_after_trial=False)
            return True


def trivial_worker(url: str, study_name: str, n_trials: int) -> None:
    worker = TrivialWorker(url, study_name)
    while worker.step(n_trials):
        pass


def trivial(n_workers: int, n_trials: int = 200) -> float:
    name, url = fresh_database()
    try:
        optuna.create_study(study_name="bench", storage=url)
        processes = [multiprocessing.Process(target=trivial_worker, args=(url, "bench", n_trials)) for _ in range(n_workers)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        return trials_per_minute(url, "bench")
    finally:
        drop_database(name)


def tiny_real(n_workers: int, trials_per_worker: int = 4) -> float:
    name, url = fresh_database()
    env = {**os.environ, "SWEEP_STORAGE": url, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // n_workers))}
    try:
        n_trials = str(n_workers * trials_per_worker)
        subprocess.run([sys.executable, "-m", "sweep.cli", "start", "--study", "bench", *TINY, "--n-trials", n_trials,
                        "--pruner", "none", "--workers", "0"], env=env, check=True, capture_output=True)
        workers = [subprocess.Popen([sys.executable, "-m", "sweep.cli", "worker", "--study", "bench", "--quiet",
                                     "--worker-index", str(i), "--device", "cpu"], env=env) for i in range(n_workers)]
        for worker in workers:
            worker.wait()
        return trials_per_minute(url, "bench")
    finally:
        drop_database(name)


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
    parser.add_argument("--sizes", default="10,500,2000", help="study sizes for the storage cost (default: %(default)s)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"optuna {optuna.__version__}, PostgreSQL at {urlsplit(PG_ADMIN).hostname}")
    if args.only != "storage-cost":
        for label, run in (("trivial objective", trivial), ("tiny real trials", tiny_real)):
            base = None
            for n in (1, 2, 4):
                rate = run(n)
                base = base or rate
                print(f"{label:18s} {n} worker(s): {rate:8.1f} trials/min  ratio {rate / base:4.2f} (ideal {n})",
                      flush=True)
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
