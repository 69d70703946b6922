"""One parameter's region test: its judged trials grouped into levels, the region of levels that best separates the
runs that kept the plateau from those that lost it, the counts and intervals, and a permutation p-value that pays for
the search over regions. ``factors.py`` decides which tests name a factor."""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from scipy.special import xlogy
from scipy.stats import fisher_exact, norm

ALPHA = 0.05  # family-wise error rate over every test run
N_PERMUTATIONS = 4000  # resolves p-values well below ALPHA divided by a dozen tests
QUICK_PERMUTATIONS = 1000  # resolves 0.001: still below what Holm asks of a dozen tests, at a quarter of the cost
PERMUTATION_BATCH = 500
MAX_LEVELS = 12  # quantile bins for a float parameter (and an int one with many values)
NEAR_BEST = 0.05  # a region whose z is within this share of the best counts as equally clear
Z_95 = float(norm.ppf(0.975))
MAX_SUBSET_LEVELS = 10  # above this many categories, only contiguous runs of levels are tried


@dataclass(frozen=True)
class _Levels:
    """One parameter's judged trials grouped into ordered levels (values or quantile bins)."""

    param: str
    kind: str  # "values" (categorical or int) or "range" (float)
    level_of_trial: np.ndarray  # level index per judged trial, -1 where the trial lacks the param
    values: list[Any]  # the trials' raw values (None where missing)
    labels: list[Any]  # per level: the value, or (low, high) of the bin's observed values
    candidates: np.ndarray  # (n_levels, n_candidates) 0/1: which levels each candidate region holds


def is_fixed(distribution: BaseDistribution) -> bool:
    return distribution.single()


def wilson_interval(successes: int, trials: int) -> list[float] | None:
    """95% Wilson score interval for a rate, or None for no trials.

    scipy's ``binomtest(...).proportion_ci(method="wilson")`` gives the same numbers at a
    millisecond each; every level of every test needs one, so the closed form is written out.
    """
    if trials == 0:
        return None
    rate, z2 = successes / trials, Z_95**2
    centre = (rate + z2 / (2 * trials)) / (1 + z2 / trials)
    half = Z_95 * math.sqrt(rate * (1 - rate) / trials + z2 / (4 * trials**2)) / (1 + z2 / trials)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


@functools.cache
def _contiguous(n_levels: int) -> np.ndarray:
    columns = []
    for first in range(n_levels):
        for last in range(first, n_levels):
            if first == 0 and last == n_levels - 1:
                continue  # everything: no contrast
            column = np.zeros(n_levels)
            column[first : last + 1] = 1
            columns.append(column)
    return _frozen(np.array(columns).T if columns else np.zeros((n_levels, 0)))


@functools.cache
def _subsets(n_levels: int) -> np.ndarray:
    columns = []
    for size in range(1, n_levels):
        for members in itertools.combinations(range(n_levels), size):
            column = np.zeros(n_levels)
            column[list(members)] = 1
            columns.append(column)
    return _frozen(np.array(columns).T if columns else np.zeros((n_levels, 0)))


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)  # shared by every test through the cache
    return array


def _levels(param: str, distribution: BaseDistribution, values: list[Any]) -> _Levels:
    present = [value for value in values if value is not None]
    if isinstance(distribution, CategoricalDistribution):
        observed = set(present)
        labels = [choice for choice in distribution.choices if choice in observed]
        labels += sorted((value for value in observed if value not in labels), key=str)
        index = {label: position for position, label in enumerate(labels)}
        level_of_trial = np.array([index[v] if v is not None else -1 for v in values])
        many = len(labels) > MAX_SUBSET_LEVELS
        return _Levels(param, "values", level_of_trial, values, labels,
                       _contiguous(len(labels)) if many else _subsets(len(labels)))

    distinct = sorted(set(present))
    if isinstance(distribution, IntDistribution) and len(distinct) <= MAX_LEVELS:
        index = {value: position for position, value in enumerate(distinct)}
        level_of_trial = np.array([index[v] if v is not None else -1 for v in values])
        return _Levels(param, "values", level_of_trial, values, distinct, _contiguous(len(distinct)))

    log = getattr(distribution, "log", False) and all(value > 0 for value in present)
    scaled = np.log(np.array(present, dtype=float)) if log else np.array(present, dtype=float)
    n_bins = min(MAX_LEVELS, len(distinct))
    edges = np.unique(np.quantile(scaled, np.linspace(0, 1, n_bins + 1)[1:-1]))
    bins_of_present = np.searchsorted(edges, scaled, side="right")
    used = np.unique(bins_of_present)
    level_of_present = np.searchsorted(used, bins_of_present)  # bins renumbered 0.. without gaps
    level_of_trial = np.full(len(values), -1)
    level_of_trial[[position for position, value in enumerate(values) if value is not None]] = level_of_present
    # Each level's lowest and highest observed value, as given (an int stays an int).
    order = np.lexsort((scaled, level_of_present))
    in_order = level_of_present[order]
    first = np.searchsorted(in_order, np.arange(len(used)), side="left")
    last = np.searchsorted(in_order, np.arange(len(used)), side="right") - 1
    labels = [(present[order[low]], present[order[high]]) for low, high in zip(first, last)]
    kind = "values" if isinstance(distribution, IntDistribution) else "range"
    return _Levels(param, kind, level_of_trial, values, labels, _contiguous(len(used)))


def _z_scores(kept_in: np.ndarray, n_in: np.ndarray, kept_total: np.ndarray, n_total: int) -> np.ndarray:
    """Signed root of the likelihood-ratio statistic of inside vs outside; large means the region helps.

    A z scale, but unlike the pooled score z it does not rate a region of three plateau-free runs
    above a clear split of dozens when plateaus are common (that overrating inflates the null).
    """
    # Counts are whole numbers up to n_total, so x log x is looked up, not computed for every permutation.
    x_log_x = xlogy(np.arange(n_total + 1), np.arange(n_total + 1))
    kept_in, n_in = np.rint(kept_in).astype(np.intp), np.asarray(n_in, dtype=np.intp)
    kept_total = np.rint(kept_total).astype(np.intp)[..., None]
    n_out, kept_out = n_total - n_in, kept_total - kept_in
    statistic = 2 * (_log_likelihood(x_log_x, kept_in, n_in) + _log_likelihood(x_log_x, kept_out, n_out)
                     - _log_likelihood(x_log_x, kept_total, n_total))
    # The sign of rate outside minus rate inside, in whole numbers; an empty side has no contrast.
    sign = np.sign(kept_out * n_in - kept_in * n_out) * ((n_in > 0) & (n_out > 0))
    return sign * np.sqrt(np.maximum(statistic, 0.0))


def _log_likelihood(x_log_x: np.ndarray, kept: np.ndarray, n: Any) -> np.ndarray:
    """Binomial log-likelihood of ``kept`` of ``n`` at its own rate (0 log 0 = 0): k log(k/n) + (n-k) log((n-k)/n)."""
    return x_log_x[kept] + x_log_x[n - kept] - x_log_x[n]


def _region_counts(levels: _Levels, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per level: number of trials and number that kept the plateau."""
    n_levels = len(levels.labels)
    mask = levels.level_of_trial >= 0
    n_level = np.bincount(levels.level_of_trial[mask], minlength=n_levels)
    kept_level = np.bincount(levels.level_of_trial[mask], weights=kept[mask], minlength=n_levels)
    return n_level, kept_level


def _region_scores(levels: _Levels, n_level: np.ndarray, kept_level: np.ndarray, min_side: int) -> np.ndarray:
    """z of every candidate region (rows: one per row of ``kept_level``), -inf where a side is too small."""
    n_total = int(n_level.sum())
    n_in = n_level @ levels.candidates
    allowed = (n_in >= min_side) & (n_total - n_in >= min_side)
    z = np.full((*kept_level.shape[:-1], len(n_in)), -np.inf)
    if allowed.any():  # only the allowed regions are scored: the others never win
        z[..., allowed] = _z_scores(kept_level @ levels.candidates[:, allowed], n_in[allowed],
                                    kept_level.sum(axis=-1), n_total)
    return z


def _best_region(levels: _Levels, kept: np.ndarray, min_side: int) -> tuple[int | None, float]:
    """The region to show (index into the candidates) and the best score, which the permutation test judges."""
    n_level, kept_level = _region_counts(levels, kept)
    z = _region_scores(levels, n_level, kept_level, min_side)
    if not np.isfinite(z).any():
        return None, 0.0
    # Of the regions nearly as clear as the best, take the widest: one noisy trial at an edge
    # should not carve a hole in the recommendation.
    near_best = np.flatnonzero(z >= z.max() - NEAR_BEST * abs(z.max()))
    n_in = n_level @ levels.candidates
    best = int(near_best[np.argmax(n_in[near_best])])
    return best, float(z.max())


def _permutation_p(levels: _Levels, kept: np.ndarray, score: float, min_side: int, rng: np.random.Generator,
                   n_permutations: int = N_PERMUTATIONS) -> float:
    """Share of label shuffles whose best region scores at least ``score``: the search over regions is in the null.

    A shuffle only moves plateau counts between levels, so the counts are drawn directly
    (multivariate hypergeometric): the cost does not grow with the number of trials.
    """
    n_level, kept_level = _region_counts(levels, kept)
    drawn = at_least = 0
    batch = min(PERMUTATION_BATCH, n_permutations // 4)  # a quick test looks after a quarter of its draws
    while drawn < n_permutations:
        shuffled = rng.multivariate_hypergeometric(n_level.astype(np.int64), int(kept_level.sum()),
                                                   size=batch, method="marginals")
        null = _region_scores(levels, n_level, shuffled.astype(float), min_side).max(axis=1)
        drawn, at_least = drawn + batch, at_least + int(np.sum(null >= score - 1e-12))
        p_value = (1 + at_least) / (1 + drawn)
        if p_value - 3 * math.sqrt(p_value * (1 - p_value) / drawn) > ALPHA:
            break  # clearly above ALPHA: no correction can make it hold, more draws change nothing
    return float(p_value)


def _rate(kept: int, n: int) -> float | None:
    return round(kept / n, 4) if n else None


def _level_rows(levels: _Levels, kept: np.ndarray) -> list[dict]:
    n_level, kept_level = _region_counts(levels, kept)
    rows = []
    for label, n, n_kept in zip(levels.labels, n_level.astype(int), kept_level.astype(int)):
        row: dict[str, Any] = {"n": int(n), "n_plateau": int(n_kept), "plateau_rate": _rate(n_kept, n),
                               "plateau_rate_ci": wilson_interval(int(n_kept), int(n))}
        if isinstance(label, tuple):
            row["low"], row["high"] = label
        else:
            row["value"] = label
        rows.append(row)
    return rows


def _region(levels: _Levels, column: np.ndarray) -> dict:
    members = [label for label, inside in zip(levels.labels, column) if inside]
    if levels.kind == "range":
        return {"low": min(low for low, _ in members), "high": max(high for _, high in members)}
    values = []
    for member in members:
        values.extend([member] if not isinstance(member, tuple) else
                      sorted({v for v in levels.values if v is not None and member[0] <= v <= member[1]}))
    return {"values": values}


def region_test(param: str, distribution: BaseDistribution, values: list[Any], kept: np.ndarray,
                min_side: int, rng: np.random.Generator, quick: bool = False) -> dict:
    """One parameter's clearest region among the given trials, its counts and its permutation p-value
    (and, unless ``quick``, Fisher's p and the counts per level)."""
    levels = _levels(param, distribution, values)
    best, score = _best_region(levels, kept, min_side)
    test: dict[str, Any] = {"param": param, "levels": [] if quick else _level_rows(levels, kept),
                            "n_population": len(values)}
    if best is None:
        return test
    column = levels.candidates[:, best]
    inside = np.isin(levels.level_of_trial, np.flatnonzero(column))
    outside = (levels.level_of_trial >= 0) & ~inside
    n_in, n_out = int(inside.sum()), int(outside.sum())
    kept_in, kept_out = int(kept[inside].sum()), int(kept[outside].sum())
    if not quick:
        test["fisher_p"] = float(fisher_exact([[kept_in, n_in - kept_in], [kept_out, n_out - kept_out]])[1])
    test.update(
        region=_region(levels, column),
        plateau_rate_inside=_rate(kept_in, n_in),
        plateau_rate_outside=_rate(kept_out, n_out),
        n_inside=n_in,
        n_outside=n_out,
        n_plateau_inside=kept_in,
        n_plateau_outside=kept_out,
        plateau_rate_inside_ci=wilson_interval(kept_in, n_in),
        plateau_rate_outside_ci=wilson_interval(kept_out, n_out),
        z=round(score, 4),
        p_permutation=round(_permutation_p(levels, kept, score, min_side, rng,
                                           QUICK_PERMUTATIONS if quick else N_PERMUTATIONS), 6),
        effect=kept_out / n_out - kept_in / n_in,
    )
    return test


def in_region(value: Any, region: dict) -> bool:
    if value is None:
        return False
    if "values" in region:
        return value in region["values"]
    return region["low"] <= value <= region["high"]
