"""Attribution: for each parameter, the values or range whose trials lost the plateau, with counts and uncertainty.

A parameter is named a factor only when its best region beats chance after accounting for the
search over regions (a permutation test, Holm-corrected over parameters) and the effect is not tiny.
Factors are found one at a time, each among the trials inside the regions of those found before,
so that a second cause is not drowned by the first (as a decision tree would split).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from scipy.stats import binomtest, fisher_exact

ALPHA = 0.05  # family-wise error rate for naming a parameter a factor
MIN_EFFECT = 0.15  # smallest plateau-rate difference (outside - inside) worth naming
N_PERMUTATIONS = 400
MAX_LEVELS = 12  # quantile bins for a float parameter (and an int one with many values)
NEAR_BEST = 0.05  # a region whose z is within this share of the best counts as equally clear
MAX_SUBSET_LEVELS = 10  # above this many categories, only prefixes in plateau-rate order are tried


@dataclass(frozen=True)
class _Levels:
    """One parameter's judged trials grouped into ordered levels (values or quantile bins)."""

    param: str
    kind: str  # "values" (categorical or int) or "range" (float)
    level_of_trial: np.ndarray  # level index per judged trial, -1 where the trial lacks the param
    values: list[Any]  # the trials' raw values (None where missing)
    labels: list[Any]  # per level: the value, or (low, high) of the bin's observed values
    candidates: np.ndarray  # (n_levels, n_candidates) 0/1: which levels each candidate region holds
    ordered: bool  # candidates are contiguous runs of levels


def is_fixed(distribution: BaseDistribution) -> bool:
    return distribution.single()


def wilson_interval(successes: int, trials: int) -> list[float] | None:
    """95% Wilson score interval for a rate (scipy's), or None for no trials."""
    if trials == 0:
        return None
    interval = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(interval.low), 4), round(float(interval.high), 4)]


def _contiguous(n_levels: int) -> np.ndarray:
    columns = []
    for first in range(n_levels):
        for last in range(first, n_levels):
            if first == 0 and last == n_levels - 1:
                continue  # everything: no contrast
            column = np.zeros(n_levels)
            column[first : last + 1] = 1
            columns.append(column)
    return np.array(columns).T if columns else np.zeros((n_levels, 0))


def _subsets(n_levels: int) -> np.ndarray:
    columns = []
    for size in range(1, n_levels):
        for members in itertools.combinations(range(n_levels), size):
            column = np.zeros(n_levels)
            column[list(members)] = 1
            columns.append(column)
    return np.array(columns).T if columns else np.zeros((n_levels, 0))


def _levels(param: str, distribution: BaseDistribution, values: list[Any]) -> _Levels:
    present = [value for value in values if value is not None]
    if isinstance(distribution, CategoricalDistribution):
        observed = set(present)
        labels = [choice for choice in distribution.choices if choice in observed]
        labels += sorted((value for value in observed if value not in labels), key=str)
        index = {label: position for position, label in enumerate(labels)}
        level_of_trial = np.array([index[v] if v is not None else -1 for v in values])
        ordered = len(labels) > MAX_SUBSET_LEVELS
        candidates = _contiguous(len(labels)) if ordered else _subsets(len(labels))
        return _Levels(param, "values", level_of_trial, values, labels, candidates, ordered)

    distinct = sorted(set(present))
    if isinstance(distribution, IntDistribution) and len(distinct) <= MAX_LEVELS:
        index = {value: position for position, value in enumerate(distinct)}
        level_of_trial = np.array([index[v] if v is not None else -1 for v in values])
        return _Levels(param, "values", level_of_trial, values, distinct, _contiguous(len(distinct)), True)

    log = getattr(distribution, "log", False) and all(value > 0 for value in present)
    scaled = np.log(np.array(present, dtype=float)) if log else np.array(present, dtype=float)
    n_bins = min(MAX_LEVELS, len(distinct))
    edges = np.unique(np.quantile(scaled, np.linspace(0, 1, n_bins + 1)[1:-1]))
    bins_of_present = np.searchsorted(edges, scaled, side="right")
    used = np.unique(bins_of_present)
    renumber = {old: new for new, old in enumerate(used)}
    level_of_trial = np.full(len(values), -1)
    present_positions = [position for position, value in enumerate(values) if value is not None]
    for position, bin_index in zip(present_positions, bins_of_present):
        level_of_trial[position] = renumber[bin_index]
    labels = []
    for level in range(len(used)):
        inside = [values[p] for p in present_positions if level_of_trial[p] == level]
        labels.append((min(inside), max(inside)))
    kind = "values" if isinstance(distribution, IntDistribution) else "range"
    return _Levels(param, kind, level_of_trial, values, labels, _contiguous(len(used)), True)


def _z_scores(kept_in: np.ndarray, n_in: np.ndarray, kept_total: np.ndarray, n_total: int) -> np.ndarray:
    """Pooled two-proportion z of (plateau rate outside - inside); large means the region helps."""
    n_out = n_total - n_in
    kept_out = kept_total[..., None] - kept_in
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = kept_total[..., None] / n_total
        spread = np.sqrt(pooled * (1 - pooled) * (1 / n_in + 1 / n_out))
        z = (kept_out / n_out - kept_in / n_in) / spread
    return np.where(np.isfinite(z), z, 0.0)


def _region_counts(levels: _Levels, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per level: number of trials and number that kept the plateau."""
    n_levels = len(levels.labels)
    mask = levels.level_of_trial >= 0
    n_level = np.bincount(levels.level_of_trial[mask], minlength=n_levels)
    kept_level = np.bincount(levels.level_of_trial[mask], weights=kept[mask], minlength=n_levels)
    return n_level, kept_level


def _best_region(levels: _Levels, kept: np.ndarray, min_side: int) -> tuple[int | None, float]:
    n_level, kept_level = _region_counts(levels, kept)
    n_total = int(n_level.sum())
    n_in = n_level @ levels.candidates
    allowed = (n_in >= min_side) & (n_total - n_in >= min_side)
    if not allowed.any():
        return None, 0.0
    z = _z_scores(kept_level @ levels.candidates, n_in, np.array(kept_level.sum()), n_total)
    z = np.where(allowed, z, -np.inf)
    # Of the regions nearly as clear as the best, take the widest: one noisy trial at an edge
    # should not carve a hole in the recommendation.
    near_best = np.flatnonzero(z >= z.max() - NEAR_BEST * abs(z.max()))
    best = int(near_best[np.argmax(n_in[near_best])])
    return best, float(z[best])


def _null_maxima(levels: _Levels, permuted_kept: np.ndarray, min_side: int) -> np.ndarray:
    """Best region score under each permutation of the kept/removed labels."""
    mask = levels.level_of_trial >= 0
    n_levels = len(levels.labels)
    one_hot = np.zeros((int(mask.sum()), n_levels))
    one_hot[np.arange(one_hot.shape[0]), levels.level_of_trial[mask]] = 1
    n_level = one_hot.sum(axis=0)
    n_total = int(n_level.sum())
    n_in = n_level @ levels.candidates
    allowed = (n_in >= min_side) & (n_total - n_in >= min_side)
    if not allowed.any():
        return np.zeros(permuted_kept.shape[0])
    kept_level = permuted_kept[:, mask] @ one_hot
    z = _z_scores(kept_level @ levels.candidates, n_in, kept_level.sum(axis=1), n_total)
    return np.where(allowed, z, -np.inf).max(axis=1)


def _holm(p_values: dict[str, float]) -> dict[str, float]:
    adjusted, running = {}, 0.0
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    for rank, (param, p_value) in enumerate(ordered):
        running = max(running, min(1.0, p_value * (len(ordered) - rank)))
        adjusted[param] = running
    return adjusted


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


def attribute(
    judged_params: list[dict[str, Any]],
    kept: list[bool],
    distributions: dict[str, BaseDistribution],
    *,
    seed: int = 0,
) -> list[dict]:
    """Per varied parameter: the region whose trials lost the plateau most clearly, with its evidence.

    ``kept[i]`` says whether judged trial i kept the plateau (verdict plateau or diverged).
    Returns one entry per parameter with ``is_factor`` saying whether it passed the tests.
    """
    kept_array = np.array(kept, dtype=float)
    n_judged = len(kept)
    min_side = max(2, math.ceil(0.05 * n_judged))
    rng = np.random.default_rng(seed)
    permuted = np.array([rng.permutation(kept_array) for _ in range(N_PERMUTATIONS)])

    entries, raw_p = {}, {}
    for param, distribution in distributions.items():
        if is_fixed(distribution):
            continue
        values = [params.get(param) for params in judged_params]
        if sum(value is not None for value in values) < 2 * min_side:
            continue
        levels = _levels(param, distribution, values)
        best, score = _best_region(levels, kept_array, min_side)
        rows = _level_rows(levels, kept_array)
        entry: dict[str, Any] = {"param": param, "levels": rows}
        if best is not None:
            column = levels.candidates[:, best]
            inside = np.isin(levels.level_of_trial, np.flatnonzero(column))
            present = levels.level_of_trial >= 0
            outside = present & ~inside
            n_in, n_out = int(inside.sum()), int(outside.sum())
            kept_in, kept_out = int(kept_array[inside].sum()), int(kept_array[outside].sum())
            _, fisher_p = fisher_exact([[kept_in, n_in - kept_in], [kept_out, n_out - kept_out]])
            null = _null_maxima(levels, permuted, min_side)
            raw_p[param] = float((1 + np.sum(null >= score - 1e-12)) / (1 + len(null)))
            entry.update(
                removes_plateau=_region(levels, column),
                plateau_rate_inside=_rate(kept_in, n_in),
                plateau_rate_outside=_rate(kept_out, n_out),
                n_inside=n_in,
                n_outside=n_out,
                n_plateau_inside=kept_in,
                n_plateau_outside=kept_out,
                plateau_rate_inside_ci=wilson_interval(kept_in, n_in),
                plateau_rate_outside_ci=wilson_interval(kept_out, n_out),
                fisher_p=float(fisher_p),
                z=round(score, 4),
            )
        entries[param] = entry

    adjusted = _holm(raw_p)
    for param, entry in entries.items():
        if param not in adjusted:
            entry.update(p_adjusted=None, is_factor=False)
            continue
        effect = entry["plateau_rate_outside"] - entry["plateau_rate_inside"]
        entry["p_adjusted"] = round(adjusted[param], 4)
        entry["is_factor"] = bool(adjusted[param] < ALPHA and effect >= MIN_EFFECT)
    return list(entries.values())


def find_factors(
    judged_params: list[dict[str, Any]],
    kept: list[bool],
    distributions: dict[str, BaseDistribution],
    *,
    min_trials: int = 6,
) -> tuple[list[dict], list[dict]]:
    """Factors (each with ``given``: the regions of the factors found before it) and the other parameters.

    The other parameters carry their evidence over all judged trials.
    """
    marginal = attribute(judged_params, kept, distributions)
    factors: list[dict] = []
    given: dict[str, dict] = {}
    population = list(range(len(kept)))
    entries = marginal
    while True:
        candidates = [e for e in entries if e["is_factor"] and e["param"] not in given]
        if not candidates:
            break
        factor = min(candidates, key=lambda e: (e["p_adjusted"], -e["z"]))
        factor["given"] = dict(given)
        factor["n_population"] = len(population)
        factors.append(factor)
        given[factor["param"]] = factor["removes_plateau"]
        population = [i for i in population if _inside(judged_params[i].get(factor["param"]), factor["removes_plateau"])]
        sub_kept = [kept[i] for i in population]
        if len(population) < min_trials or not any(sub_kept) or all(sub_kept):
            break
        remaining = {name: d for name, d in distributions.items() if name not in given}
        entries = attribute([judged_params[i] for i in population], sub_kept, remaining)
    named = {factor["param"] for factor in factors}
    others = [entry for entry in marginal if entry["param"] not in named]
    for entry in others:  # not a factor: its clearest region is shown, not claimed to remove the plateau
        if "removes_plateau" in entry:
            entry["clearest_region"] = entry.pop("removes_plateau")
    return factors, others


def _inside(value: Any, region: dict) -> bool:
    if value is None:
        return False
    if "values" in region:
        return value in region["values"]
    return region["low"] <= value <= region["high"]
