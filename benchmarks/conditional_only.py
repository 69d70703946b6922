"""The conditional-only factor search, the comparison row of benchmarks/factor_recall.py.

One factor a round, each round's tests alone corrected, and after the first round only tests among the
runs inside the named regions. The sweep's own search (sweep.analysis.factors.find_factors) also keeps
every parameter's marginal test in one corrected family, so a second cause whose plateaus lie mostly
outside the first one's region is named on its own; this rule misses it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution

# The sweep's own test and entry builders, so the two rules differ only in how they select.
from sweep.analysis.factors import _factor_entries, _other_entries, _tests_among, holds, holm
from sweep.analysis.regions import in_region, is_fixed


def conditional_only_factors(judged_params: list[dict[str, Any]], kept: list[bool],
                             distributions: dict[str, BaseDistribution], *, min_trials: int = 6,
                             seed: int = 0) -> tuple[list[dict], list[dict], int]:
    """Factors, the other varied parameters and the number of tests, as find_factors returns them."""
    rng = np.random.default_rng(seed)
    varied = {name: d for name, d in distributions.items() if not is_fixed(d)}
    population, among = list(range(len(kept))), {}
    named: dict[str, dict] = {}
    tests: list[dict] = []
    while True:
        remaining = {name: d for name, d in varied.items() if name not in named}
        round_tests = _tests_among(population, judged_params, kept, remaining, among, rng, False)
        tests += round_tests
        candidates = [test for test in round_tests if "p_permutation" in test]
        for test, adjusted in zip(candidates, holm([test["p_permutation"] for test in candidates])):
            test["p_adjusted"] = round(adjusted, 4)
        holding = [test for test in candidates if holds(test)]
        if not holding:
            break
        first = min(holding, key=lambda test: (test["p_adjusted"], -test["z"]))
        named[first["param"]] = first
        among = {param: test["region"] for param, test in named.items()}
        population = [i for i in range(len(kept))
                      if all(in_region(judged_params[i].get(param), region) for param, region in among.items())]
        inside_kept = [kept[i] for i in population]
        if len(population) < min_trials or all(inside_kept) or not any(inside_kept):
            break
    return _factor_entries(named, tests), _other_entries(named, tests), len(tests)
