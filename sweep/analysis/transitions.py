"""What replaced the plateau: of the runs that left it, how many kept improving, overfit, oscillated or diverged,
and the recommendation narrowed to where the runs kept improving.

Removing a plateau by overfitting is no fix, so each factor's region is also asked which part of it
ended ``improving``: the same region test as the factor search, with "did not end improving" in
place of "kept the plateau", among the runs the factor's counts are over.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution

from sweep.analysis.factors import holm, holds
from sweep.analysis.regions import in_region, region_test

LEFT_FOR = ("improving", "overfitting", "oscillating", "diverged")


def transition(trials: list[dict]) -> dict:
    """Counts over judged trial entries: how many kept the plateau, and what the others became."""
    verdicts = [trial["verdict"] for trial in trials]
    left = [verdict for verdict in verdicts if verdict != "plateau"]
    overfit_epochs = sorted(trial["plateau_epoch"] for trial in trials
                            if trial["verdict"] == "overfitting" and trial["plateau_epoch"] is not None)
    return {
        "n": len(trials),
        "n_plateau": verdicts.count("plateau"),
        "n_left_plateau": len(left),
        "to": {verdict: left.count(verdict) for verdict in LEFT_FOR},
        "improving_share": round(left.count("improving") / len(left), 4) if left else None,
        # the epoch whose validation loss the overfitting runs never beat again
        "overfit_from": {"first": overfit_epochs[0], "median": statistics.median_low(overfit_epochs),
                         "last": overfit_epochs[-1]} if overfit_epochs else None,
    }


def _inside_all(trial: dict, regions: dict[str, dict]) -> bool:
    return all(in_region(trial["params"].get(param), region) for param, region in regions.items())


def transition_table(judged: list[dict], factors: list[dict], recommended: dict[str, dict],
                     baseline_number: int) -> list[dict]:
    """Rows: every judged run but the baseline, each factor's region (among the runs its counts are over),
    and the recommended regions together when there are several or one was narrowed."""
    others = [trial for trial in judged if trial["number"] != baseline_number]
    rows = [{"scope": "sweep", "regions": {}, **transition(others)}] if others else []
    for factor in factors:
        regions = {**factor["among"], factor["param"]: factor["removes_plateau"]}
        rows.append({"scope": "factor", "param": factor["param"], "regions": regions,
                     **transition([trial for trial in judged if _inside_all(trial, regions)])})
    named = {factor["param"]: factor["removes_plateau"] for factor in factors}
    if len(recommended) > 1 or recommended != named:
        rows.append({"scope": "recommendation", "regions": dict(recommended),
                     **transition([trial for trial in judged if _inside_all(trial, recommended)])})
    return rows


def _improving_test(factor: dict, judged: list[dict], distribution: BaseDistribution,
                    rng: np.random.Generator) -> dict | None:
    """The part of a factor's region whose runs ended improving clearly more often than the rest of it."""
    param = factor["param"]
    population = [trial for trial in judged
                  if _inside_all(trial, {**factor["among"], param: factor["removes_plateau"]})]
    not_improving = np.array([trial["verdict"] != "improving" for trial in population], dtype=float)
    min_side = max(2, math.ceil(0.05 * len(population)))
    if len(population) < 2 * min_side or not_improving.all() or not not_improving.any():
        return None
    test = region_test(param, distribution, [trial["params"].get(param) for trial in population],
                       not_improving, min_side, rng)
    return test if "region" in test else None


def prefer_improving(factors: list[dict], judged: list[dict], distributions: dict[str, BaseDistribution],
                     *, seed: int = 0) -> dict[str, dict]:
    """Per factor: the region to recommend and why; a narrower one where its runs clearly ended improving more
    often (permutation p, Holm over the factors, and the factor search's smallest effect)."""
    rng = np.random.default_rng(seed)
    tests = {factor["param"]: _improving_test(factor, judged, distributions[factor["param"]], rng)
             for factor in factors}
    ran = [param for param, test in tests.items() if test is not None]
    for param, adjusted in zip(ran, holm([tests[param]["p_permutation"] for param in ran])):
        tests[param]["p_adjusted"] = round(adjusted, 4)
    basis: dict[str, dict[str, Any]] = {}
    for factor in factors:
        test = tests[factor["param"]]
        entry: dict[str, Any] = {"region": factor["removes_plateau"], "factor_region": factor["removes_plateau"],
                                 "narrowed": False}
        if test is not None:
            entry["test"] = {
                "region": test["region"], "n_inside": test["n_inside"], "n_outside": test["n_outside"],
                "n_improving_inside": test["n_inside"] - test["n_plateau_inside"],
                "n_improving_outside": test["n_outside"] - test["n_plateau_outside"],
                "p_permutation": test["p_permutation"], "p_adjusted": test["p_adjusted"], "holds": holds(test),
            }
            if holds(test):
                entry.update(region=test["region"], narrowed=True)
        basis[factor["param"]] = entry
    return basis
