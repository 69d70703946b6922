"""Overhead of our machinery: one trial through the Objective (Optuna reporting, SQLite storage, pruning check,
history) vs. a plain timm/PyTorch loop with the same model, data, epochs and seed. Target: <= 1.02x.

    .venv/bin/python benchmarks/overhead.py                    # resnet18, 3 epochs, 256/128 digits images
    .venv/bin/python benchmarks/overhead.py --model resnet50 --epochs 8 --max-train 512 --max-val 256 --frozen-stages 4
                                                               # one trial of the default sweep (its baseline)

Runs plain and ours in turn (A B A B ...) in one process and prints the ratio of each pair and their median,
so a machine whose speed drifts (other processes on a shared CPU) skews both sides alike.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from _common import add_size_flags, config_from, machine, new_study, plain_trial, trial_params
from sweep.objective import Objective
from sweep.pruning import create_pruner
from sweep.record import TrialRecord
from sweep.storage import open_storage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_flags(parser)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--storage", choices=("sqlite", "memory"), default="sqlite",
                        help="memory: Optuna's in-memory storage, to tell storage writes from the rest")
    args = parser.parse_args()
    config = config_from(args)
    device = torch.device(args.device)
    objective = Objective(config, device)
    datasets = objective.datasets()  # both sides train on the same prepared data
    print(machine())
    print(f"{config.model}, {args.epochs} epochs, {len(datasets.train)} train / {len(datasets.val)} val images, "
          f"{config.image_size}px, frozen_stages={args.frozen_stages}")
    params = trial_params(args)
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        # One storage for the whole run, heartbeats on, as a sweep's process holds it: its connection
        # and SQLAlchemy's compiled statements are set up once per process, not once per trial.
        storage = open_storage(f"sqlite:///{Path(tmp) / 'overhead.db'}") if args.storage == "sqlite" else None
        # Warm-up of both sides: first-touch allocations, oneDNN kernel selection, the first queries.
        plain_trial(config, datasets, device, params)
        new_study(storage, params, create_pruner(config)).optimize(objective, n_trials=1)
        for pair in range(1, args.pairs + 1):
            started = time.perf_counter()
            plain_losses = plain_trial(config, datasets, device, params)
            plain = time.perf_counter() - started
            study = new_study(storage, params, create_pruner(config))  # the sweep's default pruner asks each epoch
            started = time.perf_counter()
            study.optimize(objective, n_trials=1)
            ours = time.perf_counter() - started
            ours_losses = [entry["val_loss"] for entry in TrialRecord.from_trial(study.trials[0]).history]
            ratios.append(ours / plain)
            print(f"pair {pair}: plain {plain:.2f} s, ours {ours:.2f} s, ratio {ours / plain:.3f}; "
                  f"last val loss plain {plain_losses[-1]:.4f} ours {ours_losses[-1]:.4f}")
    print(f"overhead ratio ours/plain: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}; target <= 1.02)")


if __name__ == "__main__":
    main()
