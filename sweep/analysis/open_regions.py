"""What the sweep could not rule out: per varied parameter, the values or ranges where no judged run was plateau-free.

A value is ruled out as a sole cause by one judged run that has it and no plateau (the logic of a one-change
run). Every value or range left is either a cause the analysis names or confirms, or open: too few runs
there to tell. Pure functions over the judged trial entries of ``judge``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

FLOAT_BINS = 4  # ranges a float (or a wide int) parameter is split into, on its own scale
MAX_LEVELS = 8  # an int parameter with more values than this is split into ranges too


def regions_of(distribution: BaseDistribution) -> list[dict]:
    """The values of a categorical or narrow int parameter, or ``FLOAT_BINS`` equal ranges on its scale."""
    if isinstance(distribution, CategoricalDistribution):
        return [{"values": [choice]} for choice in distribution.choices]
    if isinstance(distribution, IntDistribution) and (distribution.high - distribution.low) // distribution.step < MAX_LEVELS:
        return [{"values": [value]} for value in range(distribution.low, distribution.high + 1, distribution.step)]
    log = getattr(distribution, "log", False) and distribution.low > 0
    low, high = (math.log(distribution.low), math.log(distribution.high)) if log else (distribution.low, distribution.high)
    edges = [low + (high - low) * index / FLOAT_BINS for index in range(FLOAT_BINS + 1)]
    edges = [distribution.low, *(math.exp(edge) if log else edge for edge in edges[1:-1]), distribution.high]
    return [{"low": edges[index], "high": edges[index + 1]} for index in range(FLOAT_BINS)]


def in_region(value: Any, region: dict) -> bool:
    if value is None:
        return False
    if "values" in region:
        return value in region["values"]
    slack = 1e-9 * max(abs(region["low"]), abs(region["high"]))  # a value on an edge belongs to both ranges
    return region["low"] - slack <= value <= region["high"] + slack


def middle(region: dict, distribution: BaseDistribution) -> Any:
    """A value to try for the region: the value itself, or the middle of the range on the parameter's scale."""
    if "values" in region:
        return region["values"][0]
    low, high = region["low"], region["high"]
    value = math.sqrt(low * high) if getattr(distribution, "log", False) and low > 0 else (low + high) / 2
    if isinstance(distribution, IntDistribution):
        return int(round(value))
    return float(f"{value:.2g}")


def region_label(param: str, region: dict) -> str:
    if "values" in region:
        return f"{param} = {', '.join(map(str, region['values']))}"
    return f"{param} in [{region['low']:.3g}, {region['high']:.3g}]"


def _how_they_ended(runs: list[dict]) -> str:
    """"2 runs: 1 kept the plateau, 1 stopped at epoch 3 while improving"-like tally."""
    if not runs:
        return "no run"
    ends = Counter()
    for run in runs:
        if run["judged"]:
            ends["kept the plateau" if not run["plateau_removed"] else "removed it"] += 1
        elif run["state"] in ("WAITING", "RUNNING"):
            ends["still running or queued"] += 1
        elif run["verdict"] == "improving" and run.get("pruned_at"):
            ends[f"cut at epoch {run['pruned_at']} while improving"] += 1
        else:
            ends[f"not judged ({run['verdict']})"] += 1
    parts = [f"{count} {end}" if len(runs) > 1 else end for end, count in ends.most_common()]
    return f"{len(runs)} run{'s' if len(runs) > 1 else ''}: " + ", ".join(parts)


def not_ruled_out(trials: list[dict], distributions: dict[str, BaseDistribution], *,
                  causes: dict[str, list[Any]] | None = None, named: dict[str, dict] | None = None) -> list[dict]:
    """Each region of each varied parameter where no judged run removed the plateau.

    ``causes`` holds confirmed cause values per parameter and ``named`` the observational factors' regions that
    remove the plateau: a region they explain is ``"cause"``, any other ``"open"`` (the runs there say too little).
    """
    causes, named = causes or {}, named or {}
    entries = []
    for param, distribution in distributions.items():
        if distribution.single():
            continue
        for region in regions_of(distribution):
            runs = [t for t in trials if in_region(t["params"].get(param), region)]
            if any(run["judged"] and run["plateau_removed"] for run in runs):
                continue
            confirmed = any(in_region(value, region) for value in causes.get(param, ()))
            # A named factor's region removes the plateau; a region outside it is where its plateau lives.
            observed = param in named and not _overlaps(region, named[param])
            entries.append({
                "param": param,
                "region": region,
                "label": region_label(param, region),
                "n_runs": len(runs),
                "n_judged": sum(1 for run in runs if run["judged"]),
                "runs": _how_they_ended(runs),
                "status": "cause" if confirmed or observed else "open",
                "try_value": middle(region, distribution),
            })
    return entries


def _overlaps(region: dict, named: dict) -> bool:
    if "values" in named:
        return any(in_region(value, region) for value in named["values"])
    if "values" in region:
        return any(named["low"] <= value <= named["high"] for value in region["values"])
    return region["low"] < named["high"] and named["low"] < region["high"]
