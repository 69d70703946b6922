"""The answer of an analysis, the named factors and their regions, and when two answers count as the same.

A float range's ends are observed values, and where between two runs a boundary lies stays
uncertain for long: one more trial or another threshold moves an end. Two ranges are the same
answer when their overlap is at least half their union, on the parameter's own scale.
"""

from __future__ import annotations

import math

from optuna.distributions import BaseDistribution, FloatDistribution

# Share of their union that two ranges must share to be the same region (on the log scale for a log parameter).
SAME_RANGE_OVERLAP = 0.5


def answer_of(result: dict) -> dict[str, dict]:
    """The named factors and the regions that removed the plateau, as ``{param: region}``."""
    return {factor["param"]: factor["removes_plateau"] for factor in result.get("factors") or []}


def _scaled(region: dict, distribution: BaseDistribution | None) -> tuple[float, float]:
    low, high = float(region["low"]), float(region["high"])
    if isinstance(distribution, FloatDistribution) and distribution.log and low > 0 and high > 0:
        return math.log(low), math.log(high)
    return low, high


def same_region(first: dict, second: dict, distribution: BaseDistribution | None = None) -> bool:
    if "values" in first or "values" in second:
        return set(first.get("values", ())) == set(second.get("values", ()))
    (low_a, high_a), (low_b, high_b) = _scaled(first, distribution), _scaled(second, distribution)
    union = max(high_a, high_b) - min(low_a, low_b)
    if union <= 0:
        return True  # both the same single point
    overlap = max(0.0, min(high_a, high_b) - max(low_a, low_b))
    return overlap / union >= SAME_RANGE_OVERLAP


def same_answer(first: dict[str, dict], second: dict[str, dict],
                distributions: dict[str, BaseDistribution]) -> bool:
    """The same parameters named, each with the same region."""
    return first.keys() == second.keys() and all(
        same_region(first[param], second[param], distributions.get(param)) for param in first
    )
