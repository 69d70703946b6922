"""`sweep worker`'s loop (budget lock, heartbeat, stale-trial watcher, Optuna's sampler and pruner, the trial record and
dashboard notes) with a pure-Python objective in place of training: many workers on a 2-core machine, for the
connection test and benchmarks/workers.py. A worker that imports torch holds about 1 GiB; this one, no torch at all.

    SWEEP_STORAGE=postgresql+psycopg://... python tests/tiny_worker.py --study tiny --epoch-seconds 0.05
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import optuna


def create_study(storage_url: str, study_name: str, n_trials: int, epochs: int = 3) -> None:
    """A sweep with the default config but ``n_trials`` and ``epochs``, created as `sweep start --workers 0` does."""
    from sweep import study as study_module
    from sweep.config import SweepConfig
    from sweep.storage import open_storage

    storage = open_storage(storage_url, heartbeat=False)
    study_module.create_or_resume(storage, study_name, SweepConfig(n_trials=n_trials, epochs=epochs, checkpoints=False))
    storage.engine.dispose()


class TinyObjective:
    """A made-up validation curve from the sampled params, one ``epoch_seconds`` pause and one report per epoch."""

    def __init__(self, space: dict, epochs: int, epoch_seconds: float):
        self.space = space
        self.epochs = epochs
        self.epoch_seconds = epoch_seconds

    def __call__(self, trial: optuna.Trial) -> float:
        from sweep.trial_steps import end_of_epoch, start_trial

        started = start_trial(trial, self.space, {"host": socket.gethostname(), "pid": os.getpid(), "device": "cpu",
                                                  "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")})
        floor = 0.2 + 0.1 * abs(math.log10(started.params["lr"]) + 3)
        for epoch in range(1, self.epochs + 1):
            time.sleep(self.epoch_seconds)
            val_loss = floor + 1.0 / epoch
            end_of_epoch(trial, started, {"epoch": epoch, "train_loss": val_loss * 0.9, "val_loss": val_loss,
                                          "val_acc": 1 - val_loss / 2, "lr": started.params["lr"],
                                          "seconds": self.epoch_seconds}, self.epochs)
        return min(row["val_loss"] for row in started.record.history)


def run(storage_url: str, study_name: str, epoch_seconds: float, worker_index: int | None) -> int:
    """What ``run_worker`` does, with the tiny objective; the trials run here."""
    from sweep import study as study_module
    from sweep.dashboard import TrialNotes
    from sweep.storage import open_storage
    from sweep.worker import run_trials, stop_signals, worker_name

    storage = open_storage(storage_url)
    study, config = study_module.load(storage, study_name, worker=worker_name(worker_index))
    with stop_signals():
        return run_trials(study, config, None, storage=storage, until_done=True,
                          objective=TinyObjective(config.space, config.epochs, epoch_seconds),
                          callbacks=(TrialNotes(config.patience, config.min_delta),))


def run_tiny_workers(storage_url: str, study_name: str, n_workers: int, log_dir: Path,
                     epoch_seconds: float = 0.05) -> list[subprocess.CompletedProcess]:
    """``n_workers`` processes of this file on one study until its budget has finished; each sets PGAPPNAME
    tiny-worker-INDEX, so that ``ConnectionWatch`` tells their connections apart."""
    started = []
    for index in range(n_workers):
        env = {**os.environ, "SWEEP_STORAGE": storage_url, "PGAPPNAME": f"tiny-worker-{index}", "OMP_NUM_THREADS": "1"}
        log = open(log_dir / f"tiny-worker-{index}.log", "w+")
        started.append((subprocess.Popen([sys.executable, __file__, "--study", study_name, "--epoch-seconds",
                                          str(epoch_seconds), "--worker-index", str(index)],
                                         env=env, stdout=log, stderr=subprocess.STDOUT), log))
    results = []
    for process, log in started:
        process.wait(timeout=900)
        log.seek(0)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, log.read(), ""))
        log.close()
    return results


class ConnectionWatch:
    """Samples, from the server's pg_stat_activity, the connections to one database: the peak of all of them and of
    each application name. Its own connection goes to the admin database, so it is not counted."""

    def __init__(self, admin_dsn: str, database: str, period: float = 0.1):
        self.admin_dsn = admin_dsn
        self.database = database
        self.period = period
        self.peak_total = 0
        self.peak_by_worker: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as connection:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", required=True)
    parser.add_argument("--epoch-seconds", type=float, default=0.05)
    parser.add_argument("--worker-index", type=int)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ran = run(os.environ["SWEEP_STORAGE"], args.study, args.epoch_seconds, args.worker_index)
    print(f"ran {ran}", file=sys.stderr)


if __name__ == "__main__":
    main()
