"""Comparison with the baseline trial: which changes from it the plateau-free trials have in common."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

SHARED_BY = 0.75  # share of plateau-free trials that must have made the change
MORE_THAN_KEPT_BY = 0.2  # ...and by how much more often than the trials that kept the plateau


def _direction(value: Any, baseline_value: Any, distribution: BaseDistribution) -> str:
    """"lower", "higher", "different" or "same" relative to the baseline's value."""
    if value is None:
        return "missing"
    if isinstance(distribution, CategoricalDistribution) or isinstance(value, str):
        return "same" if value == baseline_value else "different"
    if isinstance(distribution, FloatDistribution):
        # Floats count as changed only beyond 10% (log scale) or 5% of the range (linear).
        if distribution.log and value > 0 and baseline_value > 0:
            if abs(math.log(value / baseline_value)) <= math.log(1.1):
                return "same"
        elif abs(value - baseline_value) <= 0.05 * max(distribution.high - distribution.low, 1e-12):
            return "same"
    elif value == baseline_value:
        return "same"
    return "lower" if value < baseline_value else "higher"


def changed_from(value: Any, baseline_value: Any, distribution: BaseDistribution) -> bool:
    """Whether ``value`` is a change from the baseline's, by the same tolerance as the comparison."""
    return _direction(value, baseline_value, distribution) not in ("same", "missing")


def compare_with_baseline(
    baseline_params: dict[str, Any],
    judged: list[tuple[dict[str, Any], bool]],
    distributions: dict[str, BaseDistribution],
) -> list[dict]:
    """Per varied parameter: how the plateau-free and the plateau-keeping trials differ from the baseline.

    ``judged`` holds (params, plateau removed) for each judged trial other than the baseline.
    """
    removed = [params for params, was_removed in judged if was_removed]
    kept = [params for params, was_removed in judged if not was_removed]
    changes = []
    for param, distribution in distributions.items():
        if distribution.single() or param not in baseline_params:
            continue
        base = baseline_params[param]
        removed_directions = Counter(_direction(p.get(param), base, distribution) for p in removed)
        kept_directions = Counter(_direction(p.get(param), base, distribution) for p in kept)
        changed = [(d, n) for d, n in removed_directions.most_common() if d not in ("same", "missing")]
        direction, n_direction = changed[0] if changed else ("same", removed_directions["same"])
        share_removed = n_direction / len(removed) if removed else None
        share_kept = kept_directions[direction] / len(kept) if kept else None
        discrete = not isinstance(distribution, FloatDistribution)
        with_change = [p[param] for p in removed if _direction(p.get(param), base, distribution) == direction]
        typical = Counter(with_change).most_common(1) if discrete else []
        changes.append({
            "param": param,
            "baseline_value": base,
            "direction": direction,
            "n_removed_with_change": n_direction,
            "n_removed": len(removed),
            "share_removed": None if share_removed is None else round(share_removed, 4),
            "n_kept_with_change": kept_directions[direction],
            "n_kept": len(kept),
            "share_kept": None if share_kept is None else round(share_kept, 4),
            "most_common_value": typical[0][0] if typical else None,
            "shared": bool(
                direction != "same"
                and share_removed is not None
                and share_removed >= SHARED_BY
                and (share_kept is None or share_removed - share_kept >= MORE_THAN_KEPT_BY)
            ),
        })
    return changes
