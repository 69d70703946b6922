"""What a trial's epoch costs in storage, against the number of trials already in the study.

    .venv/bin/python benchmarks/epoch_cost.py                      # SQLite file and PostgreSQL (SWEEP_TEST_PG)
    .venv/bin/python benchmarks/epoch_cost.py --sizes 10,2000 --epochs 50

Per epoch the Objective writes the trial's history (user attr), reports the validation loss and
asks the pruner (the default quartile pruner reads the study's finished trials). The profile of one
trial (BENCHMARKS.md) measured this at 1 % of a toy epoch with no other trials in the study; this
script measures whether it grows as the study fills up, which a sweep of hundreds of trials meets.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna

from _common import drop_database, fresh_database

from sweep.config import SweepConfig
from sweep.pruning import create_pruner
from sweep.record import TrialWriter
from sweep.storage import open_storage


def epoch_cost(url: str, prefill: int, epochs: int) -> float:
    """Median seconds of one epoch's storage work for a trial in a study already holding ``prefill`` finished trials."""
    config = SweepConfig(epochs=epochs)
    distribution = optuna.distributions.FloatDistribution(0, 1)
    optuna.create_study(study_name="bench", storage=url).add_trials([
        optuna.trial.create_trial(params={"x": i / prefill}, distributions={"x": distribution}, value=1.0,
                                  intermediate_values={step: 1.0 + 1 / step for step in range(1, epochs + 1)})
        for i in range(prefill)])
    study = optuna.load_study(study_name="bench", storage=open_storage(url, heartbeat=False), pruner=create_pruner(config))
    study.get_trials(deepcopy=False)  # a worker's one-time read of the study, not an epoch's cost
    trial = study.ask()
    record = TrialWriter(trial)
    costs = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "train_loss": 1.0, "val_loss": 0.5, "val_acc": 0.5, "lr": 1e-3, "seconds": 1.0}
        started = time.perf_counter()
        record.epoch(row)
        trial.report(0.5, step=epoch)
        trial.should_prune()
        costs.append(time.perf_counter() - started)
    study.tell(trial, 0.5)
    return statistics.median(costs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,500,2000", help="finished trials already in the study")
    parser.add_argument("--epochs", type=int, default=30, help="epochs timed per size (median reported)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sizes = [int(size) for size in args.sizes.split(",")]
    for backend in args.backends.split(","):
        costs = {}
        for size in sizes:
            if backend == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    costs[size] = epoch_cost(f"sqlite:///{Path(tmp) / 'bench.db'}", size, args.epochs)
            else:
                name, url = fresh_database()
                try:
                    costs[size] = epoch_cost(url, size, args.epochs)
                finally:
                    drop_database(name)
            print(f"{backend:10s} {size:5d} trials in the study: {costs[size] * 1000:5.1f} ms of storage per epoch",
                  flush=True)
        print(f"{backend:10s} {max(sizes)} vs {min(sizes)} trials: {costs[max(sizes)] / costs[min(sizes)]:.2f}x "
              "(flat: 1.00x)")


if __name__ == "__main__":
    main()
