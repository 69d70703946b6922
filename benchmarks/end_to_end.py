"""The whole chain on simulated sweeps: how often the answer names every true cause, and what it costs the best loss.

    .venv/bin/python benchmarks/end_to_end.py [--studies 100] [--sizes 16 24 40] [--causes 1 2 3]
                                              [--onsets early late] [--generator both] [--jobs 2]

Each study is a real sweep of the default config (6 epochs, default space and baseline) on Optuna's in-memory
storage: created by ``create_or_resume`` (baseline enqueued, the sweep's sampler and pruner), run by the
worker's own loop, its trials through the objective's trial steps (record, report, pruning) with a curve drawn
by ``tests/simulated_curves.py`` in place of training, the one-change runs queued by the worker as in
``sweep start``, then judged and analysed by ``analyze_study``. Curves: one, two or three causes (each a region
of one parameter whose runs stall from its onset epoch; "early": onsets 1, 2, 1; "late": the first cause stalls
only from epoch 4), an overfitting parameter that is no cause, noise. Two generators: "tuning" (the shapes
the defaults were chosen on) and "held-out" (other parameters, regions and overfitting knob).

Per cell: every cause named (confirmed or observational), a non-cause named, the median ratio of the best
val loss to an unpruned TPE sweep of the same budget on the same curves, the same ratio for TPE with only
the trials left to the search (the floor of any sweep that spends CONFIRM_SHARE of its budget on proof), and
the epochs each spent.
Prints a markdown table; not a test.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the simulated curves are test fixtures
from simulated_curves import generator, simulated_sweep  # noqa: E402

from sweep.config import CONFIRM_SHARE, SweepConfig  # noqa: E402
from sweep.sampler import search_sampler  # noqa: E402
from sweep.study import analyze_study  # noqa: E402

EPOCHS = 6
SEED_BASE = {"tuning": 0, "held-out": 5_000_000}  # held-out seeds: never run while the defaults were chosen


def run_sweep(config: SweepConfig, gen, seed: int, plain_tpe: bool = False) -> optuna.Study:
    # plain_tpe: the reference, what a user gets from Optuna's TPE alone
    return simulated_sweep(optuna.storages.InMemoryStorage(), "simulated", config, gen, seed,
                           sampler=search_sampler(config, seed) if plain_tpe else None)


def epochs_spent(study: optuna.Study) -> int:
    return sum(len(trial.intermediate_values) for trial in study.get_trials(deepcopy=False))


# What each variant leaves out of the default chain, to price its parts.
VARIANTS = {"default": {}, "no-confirm": {"confirm": False}, "no-explore": {"plain_tpe": True},
            "search-only": {"confirm": False, "plain_tpe": True}}


def one_study(cell: tuple[str, int, str, int, str, int]) -> dict:
    name, n_causes, onsets, n_trials, variant, seed = cell
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("sweep").setLevel(logging.ERROR)
    gen = generator(name, n_causes, onsets)
    seed = SEED_BASE[name] + seed
    config = SweepConfig(n_trials=n_trials, epochs=EPOCHS, seed=seed, checkpoints=False,
                         confirm=VARIANTS[variant].get("confirm", True))
    ours = run_sweep(config, gen, seed, plain_tpe=VARIANTS[variant].get("plain_tpe", False))
    result, _, _ = analyze_study(ours, config)
    confirmed = set((result.get("confirmation") or {}).get("confirmed", []))
    observed = {factor["param"] for factor in result["factors"]}
    reference = run_sweep(replace(config, pruner="none", confirm=False), gen, seed, plain_tpe=True)
    # The floor of any sweep that proves causes with part of its budget: TPE alone with only the search's share
    search_share = n_trials - int(CONFIRM_SHARE * n_trials)
    fewer = run_sweep(replace(config, n_trials=search_share, pruner="none", confirm=False), gen, seed, plain_tpe=True)
    causes = {cause.param for cause in gen.causes}
    named = confirmed | observed
    return {
        "all_named": causes <= named,
        "each": {param: param in named for param in causes},
        "confirmed_all": causes <= confirmed,
        "false": bool(named - causes),
        "false_confirmed": bool(confirmed - causes),
        "false_observed": bool(observed - causes),
        "best_ratio": ours.best_value / reference.best_value,
        "floor_ratio": fewer.best_value / reference.best_value,
        "epochs": epochs_spent(ours),
        "epochs_reference": epochs_spent(reference),
        "n_confirmation": sum(1 for t in result["trials"] if t.get("confirmation")),
    }


def _share(flags: list[bool]) -> str:
    return f"{sum(flags) / len(flags):.0%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=100, help="seeded studies per cell")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 24, 40])
    parser.add_argument("--causes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--onsets", nargs="+", default=["early", "late"])
    parser.add_argument("--generator", choices=["tuning", "held-out", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--variant", choices=list(VARIANTS), default="default",
                        help="leave out a part of the chain to price it")
    args = parser.parse_args()

    generators = ["tuning", "held-out"] if args.generator == "both" else [args.generator]
    cells = [(g, c, o, n) for g in generators for c in args.causes for o in args.onsets for n in args.sizes]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        outcomes = list(pool.map(one_study, [(*cell, args.variant, seed) for cell in cells
                                             for seed in range(args.studies)],
                                 chunksize=4))
    print("| generator | causes | onsets | trials | every cause named | each cause named | every cause confirmed "
          "| a non-cause named (confirmed / observed) | best val loss vs unpruned TPE (median) | floor: TPE with the "
          "search's share of the trials | epochs vs unpruned TPE | one-change runs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for index, (name, n_causes, onsets, n_trials) in enumerate(cells):
        rows = outcomes[index * args.studies:(index + 1) * args.studies]
        each = ", ".join(f"{param} {_share([row['each'][param] for row in rows])}" for param in rows[0]["each"])
        ratio = statistics.median(row["best_ratio"] for row in rows)
        floor = statistics.median(row["floor_ratio"] for row in rows)
        epochs = sum(row["epochs"] for row in rows) / sum(row["epochs_reference"] for row in rows)
        runs = statistics.mean(row["n_confirmation"] for row in rows)
        print(f"| {name} | {n_causes} | {onsets} | {n_trials} | {_share([r['all_named'] for r in rows])} | {each} "
              f"| {_share([r['confirmed_all'] for r in rows])} | {_share([r['false'] for r in rows])} "
              f"({_share([r['false_confirmed'] for r in rows])} / {_share([r['false_observed'] for r in rows])}) "
              f"| {ratio:.3f}x | {floor:.3f}x | {epochs:.2f}x | {runs:.1f} |")
    print(f"\nvariant {args.variant}: {len(outcomes)} studies (each with its unpruned TPE reference) in {time.perf_counter() - started:.0f} s, "
          f"{args.jobs} processes")


if __name__ == "__main__":
    main()
