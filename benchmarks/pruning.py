"""Pruning: the same sweep (seeds, trial budget) with each pruner vs. none: best validation loss and epochs spent.

    .venv/bin/python benchmarks/pruning.py                              # resnet18, 8 trials x 6 epochs, 3 pruners
    .venv/bin/python benchmarks/pruning.py --trials 24 --epochs 12 --model resnet50 --max-train 0 --max-val 0

Target for the default pruner: best val loss within 1 % of no pruning with <= 35 % of its epochs.
Everything is measured in this one run, so ratios compare runs on the same machine state.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import optuna
import torch

from _common import add_size_flags, config_from, machine
from sweep.config import SweepConfig
from sweep.objective import Objective
from sweep.pruning import create_pruner
from sweep.record import trial_records
from sweep.sampler import create_sampler


def run_sweep(config: SweepConfig, objective: Objective, sampler: str = "tpe") -> dict:
    """One sweep with ``config.pruner``; ``objective`` trains the trials (one per seed, its data prepared once)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # random: every pruner sees the same proposals, so only its own decisions differ (an ablation);
    # tpe: the sweep's own sampler, which also learns from the pruned trials and so proposes differently.
    chosen = optuna.samplers.RandomSampler(seed=config.seed) if sampler == "random" else create_sampler(config)
    study = optuna.create_study(sampler=chosen, pruner=create_pruner(config))
    study.enqueue_trial(dict(config.baseline))
    started = time.perf_counter()
    study.optimize(objective, n_trials=config.n_trials)
    records = trial_records(study.trials)
    curves = [{"number": record.number, "params": record.params, "failure": record.failure, "init": record.init,
               "val_losses": [entry["val_loss"] for entry in record.history]}
              for record in records]
    return {
        "curves": curves,
        "best": min(value for curve in curves for value in curve["val_losses"]),
        "epochs": sum(len(curve["val_losses"]) for curve in curves),
        "pruned": sum(record.state == "PRUNED" for record in records),
        "seconds": time.perf_counter() - started,
    }


def best_within(curves: list[dict], epochs: int) -> float:
    """The best val loss a sweep had seen after its first ``epochs`` epochs (trials run one after another)."""
    seen = [value for curve in curves for value in curve["val_losses"]][:epochs]
    return min(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_flags(parser, epochs=6)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--pruners", default="none,quartile,plateau")
    parser.add_argument("--sampler", choices=("tpe", "random"), default="tpe",
                        help="random: the same proposals for every pruner, so the best trial is the same unless pruned")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds, one sweep per pruner each (default: --seed)")
    parser.add_argument("--save-curves", type=Path, default=None,
                        help="write every trial's val loss per epoch of the unpruned sweeps (JSON) for "
                             "benchmarks/pruning_replay.py; use with --sampler random")
    args = parser.parse_args()
    device = torch.device(args.device)
    seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else [args.seed]
    pruners = args.pruners.split(",")
    print(machine())
    results: dict[str, list[dict]] = {pruner: [] for pruner in pruners}
    for seed in seeds:
        # The pruner is the study's, not the objective's: one objective per seed trains every pruner's trials.
        objective = Objective(config_from(args, n_trials=args.trials, seed=seed), device)
        for pruner in pruners:
            config = config_from(args, pruner=pruner, n_trials=args.trials, seed=seed)
            r = run_sweep(config, objective, args.sampler)
            results[pruner].append(r)
            print(f"seed {seed} {pruner:>9}: best val loss {r['best']:.4f}, epochs {r['epochs']}/{args.trials * args.epochs}, "
                  f"pruned {r['pruned']}/{args.trials}, {r['seconds']:.0f} s", flush=True)
    if args.save_curves and "none" in results:
        stored = {"sampler": args.sampler, "model": args.model, "weights": args.weights, "data": args.data,
                  "epochs": args.epochs, "trials": args.trials, "patience": config.patience,
                  "min_delta": config.min_delta,
                  "sweeps": [{"seed": seed, "trials": run["curves"]} for seed, run in zip(seeds, results["none"])]}
        args.save_curves.write_text(json.dumps(stored, indent=1))
        print(f"wrote the unpruned sweeps' curves to {args.save_curves}")
    if "none" in results:
        none = results["none"]
        for pruner, runs in results.items():
            if pruner == "none":
                continue
            ratios = [r["best"] / n["best"] for r, n in zip(runs, none)]
            epochs = sum(r["epochs"] for r in runs) / sum(n["epochs"] for n in none)
            wall = sum(r["seconds"] for r in runs) / sum(n["seconds"] for n in none)
            within = sum(ratio <= 1.01 for ratio in ratios)
            # The same GPU budget instead of the same trial budget: what the unpruned sweep had found
            # after as many epochs as the pruned one spent in all.
            same_epochs = [r["best"] / best_within(n["curves"], r["epochs"]) for r, n in zip(runs, none)]
            print(f"{pruner} vs none over {len(seeds)} seed(s): best val loss "
                  f"{', '.join(f'{ratio:.3f}x' for ratio in ratios)} (median {statistics.median(ratios):.3f}x, "
                  f"{within}/{len(ratios)} within 1 %), epochs {epochs:.2f}x, wall {wall:.2f}x; "
                  f"vs none stopped at the same epochs: {', '.join(f'{ratio:.3f}x' for ratio in same_epochs)}")
    print(f"config: {config.model} ({args.weights} weights), {args.trials} trials x {args.epochs} epochs, {args.sampler} sampler, seeds {seeds}, "
          f"patience {config.patience}, min_delta {config.min_delta}; default search space")


if __name__ == "__main__":
    main()
