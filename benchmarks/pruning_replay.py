"""Pruners replayed on stored learning curves: many seeds and pruners for the cost of one unpruned sweep each.

With the random sampler, a sweep proposes the same trials whatever its pruner does, and a trial
trains the same way up to the epoch it is cut at (it is seeded by its number). So the unpruned
sweep's curves say what every pruned sweep would have seen: replaying them through a pruner, trial
after trial as one worker runs them, gives the epochs it would have spent and the best loss it
would have kept, without training again.

    .venv/bin/python benchmarks/pruning.py --sampler random --pruners none --trials 24 --epochs 12 \\
        --seeds 0,1,2,3,4 --save-curves /tmp/curves.json
    .venv/bin/python benchmarks/pruning_replay.py /tmp/curves.json --pruners median,asha,plateau

A sweep's trials can come in any order (a worker of a distributed sweep sees them as the others
finish), and the order decides what a pruner has to compare with when. ``--orders N`` replays each
sweep in its own order and N - 1 random ones: how often the best is kept, out of sweeps x orders,
from the same curves.

    .venv/bin/python benchmarks/pruning_replay.py /tmp/curves.json --pruners median,quartile --orders 20

Each replayed trial gets the ``hold_until`` epoch a sweep records for it (``sweep.trial.hold_until``, from
its params and its initial weights), so the default pruner holds it exactly as in a sweep.

Target for the default pruner: best val loss within 1 % of no pruning with <= 35 % of its epochs.
The replay checks the pruners' decisions, not the sampler's: on TPE a pruned sweep also proposes
differently (benchmarks/pruning.py measures that).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
from pathlib import Path
from typing import Callable

import optuna

from sweep.config import SweepConfig
from sweep.pruning import PRUNERS, STARTUP_TRIALS, warmup_epochs
from sweep.record import TrialWriter
from sweep.trial import hold_until


def replay(pruner: optuna.pruners.BasePruner, trials: list[dict], config: SweepConfig, init: str,
           study_name: str = "replay") -> dict:
    """One worker's sweep with ``pruner`` over the stored curves: epochs spent, best val loss kept.

    ``config`` holds the stored sweep's epochs, patience and min_delta. ``init`` ("pretrained" or "random")
    stands for the trials' own record of their initial weights where the curves were saved without it.
    ``study_name`` is fixed because hyperband brackets trials by a hash of it: the same name, the same replay.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=study_name, pruner=pruner)
    epochs = config.epochs
    best, completed = math.inf, 0
    # Where the epochs went: runs to the end while fewer than STARTUP_TRIALS had finished, later runs to
    # the end, and cut runs (their first warm-up epochs, then the rest).
    spent_on = {"startup": 0, "not_cut": 0, "cut_warmup": 0, "cut_after": 0}
    for stored in trials:
        trial_init = stored.get("init") or init
        trial = study.ask()
        # What the objective records once the trial is built: its init and the epoch its rank may first be judged.
        TrialWriter(trial).built(trial_init, hold_until(config, stored["params"], trial_init))
        curve = stored["val_losses"]
        state = optuna.trial.TrialState.COMPLETE
        ran = 0
        for epoch, value in enumerate(curve, start=1):
            ran = epoch
            best = min(best, value)
            trial.report(value, step=epoch)
            if epoch < epochs and trial.should_prune():
                state = optuna.trial.TrialState.PRUNED
                break
        if stored.get("failure"):  # diverged or out of memory: the objective itself ended it there
            state = optuna.trial.TrialState.PRUNED
        if state == optuna.trial.TrialState.COMPLETE:
            spent_on["startup" if completed < STARTUP_TRIALS else "not_cut"] += ran
            completed += 1
        else:
            warmup = warmup_epochs(config.patience, epochs, trial_init)
            spent_on["cut_warmup"] += min(ran, warmup)
            spent_on["cut_after"] += max(0, ran - warmup)
        study.tell(trial, state=state, values=None if state == optuna.trial.TrialState.PRUNED else min(curve))
    return {"epochs": sum(spent_on.values()), "best": best, "spent_on": spent_on}


def unpruned_winner(trials: list[dict]) -> dict:
    """The stored trial that reached the lowest val loss: the unpruned sweep's best run."""
    return min(trials, key=lambda trial: min(trial["val_losses"]))


def tail_wander(trials: list[dict]) -> float:
    """How much the unpruned best run's val loss moves epoch to epoch over its last third, relative to its level.

    The standard deviation of the epoch-to-epoch changes over sqrt(2) (the noise of one epoch's value
    if the trend were flat), over the mean: the scale below which "the same best" cannot be told apart.
    """
    curve = unpruned_winner(trials)["val_losses"]
    tail = curve[len(curve) * 2 // 3:]
    if len(tail) < 3:
        return math.nan
    steps = [later - earlier for earlier, later in zip(tail, tail[1:])]
    return statistics.pstdev(steps) / math.sqrt(2) / statistics.mean(tail)


def winner_rank(trials: list[dict], epoch: int) -> int:
    """Where the unpruned best run stood at ``epoch`` among the runs that got there (1 = lowest val loss)."""
    reached = [trial for trial in trials if len(trial["val_losses"]) >= epoch]
    winner = unpruned_winner(trials)
    if winner not in reached:
        return 0
    return 1 + sum(trial["val_losses"][epoch - 1] < winner["val_losses"][epoch - 1] for trial in reached)


def orders(trials: list[dict], count: int, seed: int) -> list[list[dict]]:
    """The sweep's own order of ``trials`` and ``count - 1`` random permutations of it, the same for every pruner."""
    shuffler = random.Random(seed)
    return [trials] + [shuffler.sample(trials, len(trials)) for _ in range(count - 1)]


def load_curves(paths: list[Path]) -> dict:
    """One set of curves from the files of ``pruning.py --save-curves``, which must share a sweep's shape."""
    stored = None
    for path in paths:
        try:
            curves = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: cannot read curves ({error}); expected the JSON of pruning.py --save-curves") from error
        if curves["sampler"] != "random":
            raise ValueError(f"{path}: curves of a {curves['sampler']} sweep; replay needs --sampler random, whose "
                             "proposals do not depend on the pruner")
        if stored is None:
            stored = curves
            continue
        shape = ("epochs", "trials", "patience", "min_delta", "weights")
        differs = [key for key in shape if curves[key] != stored[key]]
        if differs:
            raise ValueError(f"{path}: {', '.join(f'{key} {curves[key]}' for key in differs)} where {paths[0]} has "
                             f"{', '.join(f'{key} {stored[key]}' for key in differs)}; replay files of one shape together")
        stored["sweeps"] = stored["sweeps"] + curves["sweeps"]
    return stored


def main(extra_pruners: dict[str, Callable] | None = None, description: str = __doc__) -> None:
    """The replay's command line; ``extra_pruners`` (name -> factory(config)) adds pruners the sweep does not offer."""
    pruners = {**PRUNERS, **(extra_pruners or {})}
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("curves", type=Path, nargs="+", help="JSON written by benchmarks/pruning.py --save-curves "
                                                            "(several files of one sweep shape are replayed together)")
    parser.add_argument("--pruners", default="quartile,median,asha,hyperband,patient,plateau",
                        help=f"comma-separated, some of {', '.join(pruners)}")
    parser.add_argument("--orders", type=int, default=1,
                        help="replay each sweep in its own order and this many minus one random orders of its trials")
    args = parser.parse_args()
    if args.orders < 1:
        parser.error(f"--orders {args.orders}: expected 1 (the sweep's own order) or more")
    try:
        stored = load_curves(args.curves)
    except ValueError as error:
        parser.error(str(error))
    unknown = [name for name in args.pruners.split(",") if name not in pruners]
    if unknown:
        parser.error(f"--pruners {','.join(unknown)}: expected some of {', '.join(pruners)}")
    epochs = stored["epochs"]
    # The stored sweep's shape; the pruner of each replay is set below.
    config = SweepConfig(epochs=epochs, patience=stored["patience"], min_delta=stored["min_delta"])
    init = "random" if stored["weights"] == "none" else "pretrained"
    print(f"curves: {stored['model']} ({stored['weights']} weights) on {stored['data']}, {stored['trials']} trials x "
          f"{epochs} epochs, seeds {[sweep['seed'] for sweep in stored['sweeps']]}"
          + (f", each in its own order and {args.orders - 1} random ones" if args.orders > 1 else ""))
    wander = [tail_wander(sweep["trials"]) for sweep in stored["sweeps"]]
    print(f"the unpruned best run's val loss wanders {', '.join(f'{w:.0%}' for w in wander)} epoch to epoch over "
          "its last third: a best within 1 % is a finer difference than one epoch's noise where that is above 1 %")
    first_chance = stored["patience"] + 1  # the default pruner's first cut of a run from pretrained weights
    ranks = [winner_rank(sweep["trials"], first_chance) for sweep in stored["sweeps"]]
    print(f"the unpruned best run stood {', '.join(map(str, ranks))} of {stored['trials']} at epoch {first_chance}")
    # Per sweep, what no pruner changes: the unpruned best val loss and epochs, and the orders replayed.
    # Listed by position: files of two backbones may hold sweeps of the same seed.
    unpruned = [(min(unpruned_winner(sweep["trials"])["val_losses"]),
                 sum(len(trial["val_losses"]) for trial in sweep["trials"]))
                for sweep in stored["sweeps"]]
    ordered = [orders(sweep["trials"], args.orders, sweep["seed"]) for sweep in stored["sweeps"]]
    warmup = warmup_epochs(stored["patience"], epochs, init)
    floor = (STARTUP_TRIALS * epochs + (stored["trials"] - STARTUP_TRIALS) * warmup) / (stored["trials"] * epochs)
    print(f"floor of the default pruners at this shape: {floor:.0%} of the epochs ({STARTUP_TRIALS} startup runs to "
          f"the end, {warmup} epochs for every other run)")
    for name in args.pruners.split(","):
        ratios, shares, kept, worst = [], [], [], []
        spent_on = {part: [] for part in ("startup", "not_cut", "cut_warmup", "cut_after")}
        for position, sweep in enumerate(stored["sweeps"]):
            unpruned_best, total = unpruned[position]
            sweep_ratios, sweep_shares = [], []
            for trials in ordered[position]:
                result = replay(pruners[name](config), trials, config, init, f"replay-seed-{sweep['seed']}")
                sweep_ratios.append(result["best"] / unpruned_best)
                sweep_shares.append(result["epochs"] / total)
                for part, spent in result["spent_on"].items():
                    spent_on[part].append(spent / total)
            ratios.append(sweep_ratios[0])
            shares.append(statistics.mean(sweep_shares))
            kept.append(sum(ratio <= 1.01 for ratio in sweep_ratios))
            worst.append(max(sweep_ratios))
        mean = {part: statistics.mean(values) for part, values in spent_on.items()}
        where = (f"startup runs {mean['startup']:.1%}, later runs not cut {mean['not_cut']:.1%}, runs cut or failed "
                 f"{mean['cut_warmup'] + mean['cut_after']:.1%} ({mean['cut_after']:.1%} past their warm-up)")
        if args.orders == 1:
            print(f"{name:>9}: best {', '.join(f'{r:.3f}x' for r in ratios)} (median {statistics.median(ratios):.3f}x, "
                  f"{sum(kept)}/{len(ratios)} within 1 %), epochs {statistics.mean(shares):.0%} "
                  f"({', '.join(f'{s:.0%}' for s in shares)}; {where})")
        else:
            print(f"{name:>9}: best within 1 % in {sum(kept)}/{len(kept) * args.orders} sweeps x orders "
                  f"({', '.join(f'{k}/{args.orders}' for k in kept)}; worst {', '.join(f'{w:.2f}x' for w in worst)}), "
                  f"epochs {statistics.mean(shares):.0%} ({', '.join(f'{s:.0%}' for s in shares)}; {where}); "
                  f"own order: {', '.join(f'{r:.3f}x' for r in ratios)}")


if __name__ == "__main__":
    main()
