"""How robust the answer is: the stored curves re-judged over a grid of plateau thresholds, no retraining.

Every verdict depends on ``patience`` and ``min_delta``; a factor named at one setting only is an
answer about the thresholds, not about the sweep. Each setting of the grid runs the quick factor
search alone: importances only rank factors, and with them the grid would cost seconds.
"""

from __future__ import annotations

from optuna.distributions import BaseDistribution

from sweep.analysis.answer import same_region
from sweep.analysis.curves import prepare_curve
from sweep.analysis.factors import find_factors
from sweep.analysis.inputs import TrialRecord
from sweep.analysis.judged import judge, observational

PATIENCES = (1, 2, 3, 5)
MIN_DELTAS = (0.001, 0.01, 0.05)
FRAGILE_BELOW = 0.5  # share of the settings a factor must be named in not to be fragile


def evidence_of(judged: list[dict], min_trials: int) -> str:
    """The result's evidence rule: enough judged trials, and some that removed the plateau and some that did not."""
    if len(judged) < min_trials:
        return "insufficient"
    n_removed = sum(1 for trial in judged if trial["plateau_removed"])
    return "no_contrast" if n_removed in (0, len(judged)) else "ok"


def named_factors(judged: list[dict], distributions: dict[str, BaseDistribution], min_trials: int) -> dict:
    """The factor search alone over judged trial entries: ``{param: region}``."""
    kept = [not trial["plateau_removed"] for trial in judged]
    factors, _, _ = find_factors([trial["params"] for trial in judged], kept, distributions, min_trials=min_trials,
                                 quick=True)
    return {factor["param"]: factor["removes_plateau"] for factor in factors}


def _setting(records: list[TrialRecord], distributions: dict[str, BaseDistribution], patience: int,
             min_delta: float, baseline_number: int, min_trials: int, searched: dict, prepared: dict,
             known: dict | None = None) -> dict:
    trials = judge(records, patience=patience, min_delta=min_delta, prepared=prepared)
    judged = observational(trials)
    evidence = evidence_of(judged, min_trials)
    factors = {}
    if evidence == "ok":
        # Neighbouring thresholds often judge every trial alike: search each distinct outcome once.
        key = tuple((trial["number"], trial["plateau_removed"]) for trial in judged)
        if key not in searched:
            searched[key] = known if known is not None else named_factors(judged, distributions, min_trials)
        factors = searched[key]
    return {"patience": patience, "min_delta": min_delta, "evidence": evidence, "n_judged": len(judged),
            "n_plateau_removed": sum(1 for trial in judged if trial["plateau_removed"]), "factors": factors}


def _param_summary(param: str, settings: list[dict], distribution: BaseDistribution | None) -> dict:
    regions: list[dict] = []
    for setting in settings:
        region = setting["factors"].get(param)
        if region is None:
            continue
        group = next((g for g in regions if same_region(g["region"], region, distribution)), None)
        if group is None:
            group = {"region": region, "n_settings": 0, "settings": []}
            regions.append(group)
        group["n_settings"] += 1
        group["settings"].append({"patience": setting["patience"], "min_delta": setting["min_delta"]})
    n_named = sum(group["n_settings"] for group in regions)
    return {"param": param, "n_named": n_named, "share": round(n_named / len(settings), 4),
            "fragile": n_named < FRAGILE_BELOW * len(settings),
            "regions": sorted(regions, key=lambda group: -group["n_settings"])}


def robustness(records: list[TrialRecord], distributions: dict[str, BaseDistribution], *, baseline_number: int,
               min_trials: int, known: dict[tuple[int, float], dict] | None = None) -> dict:
    """The answer at every setting of the grid, and per parameter named anywhere: in how many and with which regions.

    ``known`` maps (patience, min_delta) to the ``{param: region}`` already found there (the main analysis).
    """
    known = known or {}
    grid = [(patience, min_delta) for patience in PATIENCES for min_delta in MIN_DELTAS]
    searched: dict = {}
    prepared = {record.number: prepare_curve(record.history, record.failure) for record in records}
    by_setting = {}
    for patience, min_delta in sorted(grid, key=lambda setting: setting not in known):  # the known ones seed the cache
        by_setting[(patience, min_delta)] = _setting(records, distributions, patience, min_delta, baseline_number,
                                                     min_trials, searched, prepared, known.get((patience, min_delta)))
    settings = [by_setting[setting] for setting in grid]
    named = list(dict.fromkeys(param for setting in settings for param in setting["factors"]))
    return {
        "patience": list(PATIENCES),
        "min_delta": list(MIN_DELTAS),
        "n_settings": len(settings),
        "settings": settings,
        "params": sorted((_param_summary(param, settings, distributions.get(param)) for param in named),
                         key=lambda entry: (-entry["n_named"], entry["param"])),
    }
