"""Attribution: the parameters whose values or ranges removed the plateau, with counts, uncertainty and the naming test.

Each varied parameter is tested on its own over all judged trials (marginal) and, once factors are
named, among the runs inside their regions (conditional): a second cause can drown in the first
(only the conditional test sees it) or vanish inside the first one's region when that region
already holds few plateaus (only the marginal test sees it). A parameter is named a factor when one
of its tests beats chance after accounting for the search over regions (a permutation test) and for
every test run (Holm), and its effect is not tiny.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution

from sweep.analysis.regions import ALPHA, in_region, is_fixed, region_test

MIN_EFFECT = 0.15  # smallest plateau-rate difference (outside - inside) worth naming


def holm(p_values: list[float]) -> list[float]:
    adjusted, running = [0.0] * len(p_values), 0.0
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    for rank, index in enumerate(order):
        running = max(running, min(1.0, p_values[index] * (len(p_values) - rank)))
        adjusted[index] = running
    return adjusted


def _tests_among(population: list[int], judged_params: list[dict[str, Any]], kept: list[bool],
                 distributions: dict[str, BaseDistribution], among: dict[str, dict],
                 rng: np.random.Generator, quick: bool) -> list[dict]:
    """A test of each parameter over the trials in ``population`` (marginal when ``among`` is empty)."""
    kept_array = np.array([kept[i] for i in population], dtype=float)
    min_side = max(2, math.ceil(0.05 * len(population)))
    tests = []
    for param, distribution in distributions.items():
        values = [judged_params[i].get(param) for i in population]
        if sum(value is not None for value in values) < 2 * min_side:
            continue
        test = region_test(param, distribution, values, kept_array, min_side, rng, quick)
        tests.append({**test, "named_by": "conditional" if among else "marginal", "among": dict(among)})
    return tests


def holds(test: dict) -> bool:
    return test.get("p_adjusted") is not None and test["p_adjusted"] < ALPHA and test["effect"] >= MIN_EFFECT


def find_factors(
    judged_params: list[dict[str, Any]],
    kept: list[bool],
    distributions: dict[str, BaseDistribution],
    *,
    min_trials: int = 6,
    seed: int = 0,
    quick: bool = False,
) -> tuple[list[dict], list[dict], int]:
    """Factors, the other varied parameters, and how many tests the correction counted.

    ``kept[i]`` says whether judged trial i kept the plateau. Rounds: Holm over the open tests
    (those of parameters not yet named) names every parameter with a test that holds; then each
    parameter still open is tested again among the runs inside all named regions, and those tests
    join the family. A factor carries the evidence of the test that named it (``named_by``,
    ``among``); every other parameter carries its marginal evidence over all judged trials.

    ``quick`` draws fewer permutations (p resolved to 0.001) and leaves Fisher's p and the per-level
    counts out: for where only which factors are named matters (the robustness grid, the stop rule).
    """
    rng = np.random.default_rng(seed)
    varied = {name: d for name, d in distributions.items() if not is_fixed(d)}
    everyone = list(range(len(kept)))
    tests = _tests_among(everyone, judged_params, kept, varied, {}, rng, quick)
    named: dict[str, dict] = {}
    while True:
        open_tests = [t for t in tests if t["param"] not in named and "p_permutation" in t]
        for test, adjusted in zip(open_tests, holm([t["p_permutation"] for t in open_tests])):
            test["p_adjusted"] = round(adjusted, 4)
        holding = sorted((t for t in open_tests if holds(t)), key=lambda t: (t["p_adjusted"], -t["z"]))
        if not holding:
            break
        for test in holding:
            named.setdefault(test["param"], test)
        among = {param: test["region"] for param, test in named.items()}
        population = [i for i in everyone
                      if all(in_region(judged_params[i].get(param), region) for param, region in among.items())]
        sub_kept = [kept[i] for i in population]
        if len(population) < min_trials or all(sub_kept) or not any(sub_kept):
            break
        remaining = {name: d for name, d in varied.items() if name not in named}
        tests += _tests_among(population, judged_params, kept, remaining, among, rng, quick)
    return _factor_entries(named, tests), _other_entries(named, tests), len(tests)


def _summary(test: dict) -> dict:
    keys = ("named_by", "among", "n_population", "region", "n_inside", "n_outside", "n_plateau_inside",
            "n_plateau_outside", "fisher_p", "p_permutation", "p_adjusted")
    return {**{key: test[key] for key in keys if key in test}, "holds": holds(test)}


def _evidence(test: dict, tests: list[dict], leave_out: tuple[str, ...] = ()) -> dict:
    entry = {key: value for key, value in test.items() if key not in ("region", "effect", *leave_out)}
    entry["tests"] = [_summary(t) for t in tests if t["param"] == test["param"]]
    return entry


def _factor_entries(named: dict[str, dict], tests: list[dict]) -> list[dict]:
    factors = []
    for param, test in named.items():
        entry = _evidence(test, tests)
        # given: the regions its counts are among (as named_by/among say), empty for a marginal factor
        entry.update(removes_plateau=test["region"], given=dict(test["among"]), is_factor=True)
        factors.append(entry)
    return factors


def _other_entries(named: dict[str, dict], tests: list[dict]) -> list[dict]:
    """Not a factor: its clearest region over all judged trials is shown, not claimed to remove the plateau."""
    others = []
    for test in tests:
        if test["named_by"] != "marginal" or test["param"] in named:
            continue
        entry = _evidence(test, tests, leave_out=("named_by", "among"))
        entry.setdefault("p_adjusted", None)
        if "region" in test:
            entry["clearest_region"] = test["region"]
        entry["is_factor"] = False
        others.append(entry)
    return others
