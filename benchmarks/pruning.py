"""Pruning: the same sweep (seeds, trial budget) with each pruner vs. none: best validation loss and epochs spent.

    .venv/bin/python benchmarks/pruning.py                              # resnet18, 8 trials x 6 epochs, 3 pruners
    .venv/bin/python benchmarks/pruning.py --trials 24 --epochs 12 --model resnet50 --max-train 0 --max-val 0

Issue target for the default pruner: best val loss within 1 % of no pruning with <= 35 % of its epochs.
Everything is measured in this one run, so ratios compare runs on the same machine state.
"""

from __future__ import annotations

import argparse
import time

import optuna
import torch

from _common import add_size_flags, config_from, machine
from sweep.config import SweepConfig
from sweep.objective import Objective
from sweep.pruners import create_pruner, create_sampler


def run_sweep(config: SweepConfig, device: torch.device, datasets) -> dict:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=create_sampler(config), pruner=create_pruner(config))
    study.enqueue_trial(dict(config.baseline))
    objective = Objective(config, device)
    objective._datasets = datasets  # same prepared data for every pruner
    started = time.perf_counter()
    study.optimize(objective, n_trials=config.n_trials)
    histories = [trial.user_attrs.get("history", []) for trial in study.trials]
    return {
        "best": min(entry["val_loss"] for history in histories for entry in history),
        "epochs": sum(len(history) for history in histories),
        "pruned": sum(trial.state == optuna.trial.TrialState.PRUNED for trial in study.trials),
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_flags(parser, epochs=6)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--pruners", default="none,median,plateau")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(machine())
    results = {}
    datasets = None
    for pruner in args.pruners.split(","):
        config = config_from(args, pruner=pruner, n_trials=args.trials)
        if datasets is None:
            datasets = Objective(config, device).datasets()
        results[pruner] = run_sweep(config, device, datasets)
        r = results[pruner]
        print(f"{pruner:>9}: best val loss {r['best']:.4f}, epochs {r['epochs']}/{args.trials * args.epochs}, "
              f"pruned {r['pruned']}/{args.trials}, {r['seconds']:.0f} s", flush=True)
    if "none" in results:
        none = results["none"]
        for pruner, r in results.items():
            if pruner != "none":
                print(f"{pruner} vs none: best val loss {r['best'] / none['best']:.3f}x, "
                      f"epochs {r['epochs'] / none['epochs']:.2f}x, wall {r['seconds'] / none['seconds']:.2f}x")
    print(f"config: {config.model}, {args.trials} trials x {args.epochs} epochs, seed {args.seed}, "
          f"patience {config.patience}, min_delta {config.min_delta}; default search space")


if __name__ == "__main__":
    main()
