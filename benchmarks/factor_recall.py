"""How often the factor search names each true cause of a plateau, and how often it names a parameter that is none.

    .venv/bin/python benchmarks/factor_recall.py [--studies 200] [--sizes 12 16 24 40] [--generator both]

A study: trial 0 is the baseline, which keeps the plateau; every other trial draws all parameters at
random; a run keeps the plateau when any cause holds, and 5 % of the other runs flip. With two
causes each cause's region holds 40-50 % of the space, so each cause alone (no other cause present)
accounts for about a third of the plateaus and both together for the last third; with three, each
region holds 20-40 % and each cause alone 14-29 % of the plateaus (the table under the results
gives the measured shares). With no cause, 70 % of the runs keep the plateau at random: every
name is false. The other parameters are no cause. The search runs on the plateau labels: curves
and verdicts have their own tests.

Two generators: "tuning" (the shapes the rule was tuned on: thresholds on frozen_stages, lr and
scheduler = none) and "held-out" (other seeds, other shapes: a threshold on a linear float, a
categorical value set, an integer range in the middle, and one more parameter that is no cause).
"ceiling" is no rule but a bound: each cause told its true region and tested once, uncorrected
(one-sided Fisher at 0.05, on all runs or among the runs free of the other causes, the better);
"ceiling, corrected" is the same oracle at 0.05 divided by two tests for each varied parameter.
Prints a markdown table; not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
from optuna.distributions import IntDistribution
from scipy.stats import fisher_exact

from conditional_only import conditional_only_factors
from sweep.analysis.factors import find_factors
from sweep.analysis.regions import ALPHA

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the synthetic sweeps are test fixtures
from synthetic_studies import BASELINE, SPACE, draw  # noqa: E402

# The rules compared, each named by how it selects factors.
RULES: dict[str, Callable[..., tuple[list[dict], list[dict], int]]] = {
    "conditional-only": conditional_only_factors,
    "marginal + conditional": find_factors,
}

FLIP_RATE = 0.05
NO_CAUSE_PLATEAU_RATE = 0.7
Cause = tuple[str, Callable[[Any], bool]]  # (parameter, does this value cause the plateau)

CAUSES: dict[tuple[str, int], list[Cause]] = {
    ("tuning", 0): [],
    ("held-out", 0): [],
    ("tuning", 2): [("frozen_stages", lambda v: v >= 3), ("lr", lambda v: v < 1e-3)],
    ("tuning", 3): [("frozen_stages", lambda v: v >= 4), ("lr", lambda v: v < 1e-4),
                    ("scheduler", lambda v: v == "none")],
    ("held-out", 2): [("dropout", lambda v: v > 0.3), ("scheduler", lambda v: v in ("none", "step"))],
    ("held-out", 3): [("dropout", lambda v: v > 0.45), ("batch_size", lambda v: v == 64),
                      ("frozen_stages", lambda v: v in (1, 2))],
}
SEED_BASE = {"tuning": 0, "held-out": 7_000_000}  # held-out seeds: never run while the rule was chosen
HELD_OUT_SPACE = {**SPACE, "warmup_epochs": IntDistribution(0, 5)}
HELD_OUT_BASELINE = {**BASELINE, "dropout": 0.5, "batch_size": 64, "frozen_stages": 1, "warmup_epochs": 0}


def study(generator: str, n_causes: int, n_trials: int, seed: int) -> tuple[list[dict], list[bool], dict]:
    space = SPACE if generator == "tuning" else HELD_OUT_SPACE
    baseline = BASELINE if generator == "tuning" else HELD_OUT_BASELINE
    causes = CAUSES[generator, n_causes]
    rng = np.random.default_rng([SEED_BASE[generator], n_trials, n_causes, seed])
    params, kept = [dict(baseline)], [True]
    for _ in range(n_trials - 1):
        drawn = {name: draw(distribution, rng) for name, distribution in space.items()}
        if causes:
            caused = any(test(drawn[param]) for param, test in causes)
        else:
            caused = rng.uniform() < NO_CAUSE_PLATEAU_RATE
        params.append(drawn)
        kept.append(caused != (rng.uniform() < FLIP_RATE))
    return params, kept, space


def _ceiling(params: list[dict], kept: list[bool], causes: list[Cause], alpha: float) -> set[str]:
    """The causes an oracle that knows each true region names with one test each, at ``alpha``."""
    named = set()
    for param, test in causes:
        others = [t for p, t in causes if p != param]
        free = [all(not t(row[p]) for p, t in causes if p != param) for row in params]
        p_values = []
        for among in ([True] * len(params), free) if others else ([True] * len(params),):
            rows = [(test(row[param]), k) for row, k, keep in zip(params, kept, among) if keep]
            table = [[sum(c and k for c, k in rows), sum(c and not k for c, k in rows)],
                     [sum(not c and k for c, k in rows), sum(not c and not k for c, k in rows)]]
            p_values.append(fisher_exact(table, alternative="greater")[1])
        if min(p_values) < alpha:
            named.add(param)
    return named


def alone_shares(generator: str, n_causes: int, n_studies: int, n_trials: int = 40) -> dict[str, float]:
    """Per cause: the share of plateaus in runs where it is the only cause present."""
    causes = CAUSES[generator, n_causes]
    alone, plateaus = dict.fromkeys((param for param, _ in causes), 0), 0
    for seed in range(n_studies):
        params, kept, _ = study(generator, n_causes, n_trials, seed)
        for row, plateau in zip(params[1:], kept[1:]):
            present = [param for param, test in causes if test(row[param])]
            plateaus += plateau
            if plateau and len(present) == 1:
                alone[present[0]] += 1
    return {param: count / max(plateaus, 1) for param, count in alone.items()}


def one_cell(cell: tuple[str, int, int, int]) -> dict[str, list[set[str]]]:
    """Names per rule for each study of one cell (generator, causes, trials)."""
    generator, n_causes, n_trials, n_studies = cell
    names: dict[str, list[set[str]]] = {rule: [] for rule in RULES}
    if n_causes:
        names["ceiling"], names["ceiling, corrected"] = [], []
    for seed in range(n_studies):
        params, kept, space = study(generator, n_causes, n_trials, seed)
        if all(kept) or not any(kept):
            for rule in names:
                names[rule].append(set())
            continue
        for rule, search in RULES.items():
            factors, _, _ = search(params, kept, space)
            names[rule].append({factor["param"] for factor in factors})
        if n_causes:
            causes = CAUSES[generator, n_causes]
            names["ceiling"].append(_ceiling(params, kept, causes, ALPHA))
            # a marginal and a conditional test for each varied parameter: what any search must correct for
            names["ceiling, corrected"].append(_ceiling(params, kept, causes, ALPHA / (2 * len(space))))
    return names


def _share(hits: int, total: int) -> str:
    return f"{hits / total:.0%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=200, help="studies (seeds) per cell")
    parser.add_argument("--sizes", type=int, nargs="+", default=[12, 16, 24, 40])
    parser.add_argument("--generator", choices=["tuning", "held-out", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    args = parser.parse_args()

    generators = ["tuning", "held-out"] if args.generator == "both" else [args.generator]
    cells = [(g, c, n, args.studies) for g in generators for c in (2, 3, 0) for n in args.sizes]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(one_cell, cells))
    print("| generator | causes | trials | rule | each cause named | all causes named | a non-cause named |")
    print("|---|---|---|---|---|---|---|")
    for (generator, n_causes, n_trials, n_studies), names in zip(cells, results):
        causes = [param for param, _ in CAUSES[generator, n_causes]]
        for rule, found in names.items():
            each = ", ".join(f"{param} {_share(sum(param in f for f in found), n_studies)}" for param in causes) or "-"
            every = _share(sum(set(causes) <= f for f in found), n_studies) if causes else "-"
            false = "-" if rule.startswith("ceiling") else _share(sum(bool(f - set(causes)) for f in found), n_studies)
            print(f"| {generator} | {n_causes} | {n_trials} | {rule} | {each} | {every} | {false} |")
    print("\n| generator | causes | share of the plateaus each cause accounts for alone (40 trials) |")
    print("|---|---|---|")
    for generator in generators:
        for n_causes in (2, 3):
            shares = alone_shares(generator, n_causes, args.studies)
            print(f"| {generator} | {n_causes} | " + ", ".join(f"{p} {s:.0%}" for p, s in shares.items()) + " |")
    print(f"\n{len(cells) * args.studies} studies per rule in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
