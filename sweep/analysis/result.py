"""The analysis result: verdicts, factors and recommendation of a sweep, as the plain data of the JSON contract."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution

from sweep.analysis.answer import answer_of
from sweep.analysis.baseline import compare_with_baseline
from sweep.analysis.chance import chance_level
from sweep.analysis.confirmation import confirmation_results
from sweep.analysis.curves import VERDICTS
from sweep.analysis.factors import find_factors
from sweep.analysis.importance import importances
from sweep.analysis.inputs import FINISHED_STATES, TrialRecord
from sweep.analysis.judged import PLATEAU_REMOVED, judge, observational
from sweep.analysis.open_regions import not_ruled_out
from sweep.analysis.regions import ALPHA, is_fixed
from sweep.analysis.robustness import robustness
from sweep.analysis.suspects import usual_suspects
from sweep.analysis.transitions import prefer_improving, transition_table


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, non-finite floats to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _recommended(factor: dict, distribution: BaseDistribution) -> list:
    region = factor["removes_plateau"]
    if "values" not in region:
        return [region["low"], region["high"]]
    if isinstance(distribution, CategoricalDistribution):
        return list(region["values"])
    return [min(region["values"]), max(region["values"])]  # an int range, as in DESIGN.md's example


def _best_trial(trials: list[dict]) -> dict | None:
    candidates = [t for t in trials if t["state"] in FINISHED_STATES and t["best_val_loss"] is not None]
    if not candidates:
        return None
    # Prefer a trial that also removed the plateau: the lowest loss of a stalled run is no answer.
    best = min(candidates, key=lambda t: (not t["plateau_removed"], t["best_val_loss"]))
    return {key: best[key] for key in ("number", "params", "best_val_loss", "verdict", "plateau_removed")}


def _factor_fields(entry: dict, importance: dict) -> dict:
    param = entry["param"]
    entry["importance"] = importance["plateau_removed"]["ped_anova"].get(param, 0.0)
    entry["importance_fanova"] = importance["plateau_removed"]["fanova"].get(param, 0.0)
    entry["importance_best_val_loss"] = importance["best_val_loss"]["ped_anova"].get(param, 0.0)
    return entry


def _overruled(factors: list[dict], others: list[dict], confirmation: dict | None) -> tuple[list[dict], list[dict]]:
    """Intervention beats observation: a factor whose baseline value a one-change run ruled out (and none confirmed)
    is no factor. The search's own sampling ties parameters together (TPE leaves the baseline's values behind
    all at once), so an observational test names bystanders that one run from a plateau-free setting clears."""
    if not confirmation:
        return factors, others
    cleared = set(confirmation["ruled_out"]) - set(confirmation["confirmed"]) - set(confirmation["inconclusive"])
    reasons = {entry["param"]: entry["reason"] for entry in confirmation["params"] if entry["outcome"] == "ruled_out"}
    kept = [factor for factor in factors if factor["param"] not in cleared]
    moved = []
    for factor in factors:
        if factor["param"] in cleared:
            entry = {key: value for key, value in factor.items()
                     if key not in ("removes_plateau", "given", "named_by", "among")}
            moved.append({**entry, "clearest_region": factor["removes_plateau"], "is_factor": False,
                          "ruled_out_by": reasons[factor["param"]]})
    return kept, others + moved


def _mark_factors(result: dict) -> dict:
    """Tell each baseline change and usual suspect whether its parameter is a factor, so no part contradicts another."""
    named = {factor["param"] for factor in result["factors"]}
    for entry in result["usual_suspects"] + (result["baseline_comparison"] or []):
        entry["is_factor"] = entry["param"] in named
    return result


def _mark_fragile(result: dict) -> dict:
    """Each factor's count of grid settings that name it too, and whether that is fewer than half."""
    by_param = {entry["param"]: entry for entry in result["robustness"]["params"]}
    for factor in result["factors"]:
        entry = by_param.get(factor["param"])
        factor["named_in_settings"] = entry["n_named"] if entry else 0
        factor["fragile"] = entry["fragile"] if entry else True
    return result


def analyze(
    records: list[TrialRecord],
    distributions: dict[str, BaseDistribution],
    *,
    study_name: str,
    patience: int = 2,
    min_delta: float = 0.01,
    baseline_number: int = 0,
    min_trials: int = 6,
) -> dict:
    """Verdict per trial, the parameters that separate plateau-free trials from the rest, what to run next, and
    how much of that answer holds at other plateau thresholds."""
    result = _analysis(records, distributions, study_name=study_name, patience=patience, min_delta=min_delta,
                       baseline_number=baseline_number, min_trials=min_trials)
    confirmed = {entry["param"]: [entry["value"]] for entry in (result["confirmation"] or {}).get("params", [])
                 if entry["outcome"] == "confirmed"}
    result["not_ruled_out"] = not_ruled_out(result["trials"], distributions, causes=confirmed,
                                            named=answer_of(result))
    known = {(patience, min_delta): answer_of(result)} if result["evidence"] == "ok" else {}
    result["robustness"] = robustness(records, distributions, baseline_number=baseline_number,
                                      min_trials=min_trials, known=known)
    return _plain(_mark_fragile(result))


def _analysis(records: list[TrialRecord], distributions: dict[str, BaseDistribution], *, study_name: str,
              patience: int, min_delta: float, baseline_number: int, min_trials: int) -> dict:
    trials = judge(records, patience=patience, min_delta=min_delta)
    judged = observational(trials)
    n_removed = sum(1 for t in judged if t["plateau_removed"])
    every_judged = [t for t in trials if t["judged"]]

    baseline_trial = next((t for t in trials if t["number"] == baseline_number), None)
    baseline = {
        "number": baseline_number,
        "verdict": baseline_trial["verdict"] if baseline_trial else None,
        "plateau_epoch": baseline_trial["plateau_epoch"] if baseline_trial else None,
        "best_val_loss": baseline_trial["best_val_loss"] if baseline_trial else None,
        "params": baseline_trial["params"] if baseline_trial else None,
        "evidence": baseline_trial["evidence"] if baseline_trial else None,
    }
    result: dict[str, Any] = {
        "study": study_name,
        "n_trials": len(trials),
        "n_judged": len(every_judged),
        "n_plateau_removed": sum(1 for t in every_judged if t["plateau_removed"]),
        "settings": {"patience": patience, "min_delta": min_delta, "min_trials": min_trials,
                     "baseline_number": baseline_number},
        "plateau_removed_means": PLATEAU_REMOVED,
        "verdict_counts": {verdict: sum(1 for t in trials if t["verdict"] == verdict) for verdict in VERDICTS},
        "baseline": baseline,
        "trials": trials,
        "factors": [],
        "other_params": [],
        "recommendation": {},
        "best_trial": _best_trial(trials),
        "chance": chance_level(records, trials),
        "importance": None,
        "baseline_comparison": None,
        "usual_suspects": [],
        "transitions": transition_table(judged, [], {}, baseline_number),
        "confirmation": confirmation_results(trials, baseline["params"], distributions),
    }

    if len(judged) < min_trials:
        result["evidence"] = "insufficient"
        result["message"] = (
            f"Too little evidence: {len(judged)} finished trial(s) could be judged and at least "
            f"{min_trials} are needed to say which settings remove the plateau."
        )
        return _plain(result)
    if n_removed in (0, len(judged)):
        result["evidence"] = "no_contrast"
        result["message"] = (
            "No judged trial removed the plateau: nothing in this sweep separates better settings "
            "from worse; widen the search space." if n_removed == 0 else
            "Every judged trial removed the plateau: no setting in this sweep brings it back, so "
            "none can be blamed for it."
        )
    else:
        result["evidence"] = "ok"

    varied = [name for name, distribution in distributions.items() if not is_fixed(distribution)]
    judged_params = [t["params"] for t in judged]
    kept = [not t["plateau_removed"] for t in judged]
    with_loss = [t for t in judged if t["best_val_loss"] is not None]
    importance = {
        "plateau_removed": importances(judged_params, [float(k) for k in kept], distributions, varied, binary=True),
        "best_val_loss": importances([t["params"] for t in with_loss], [t["best_val_loss"] for t in with_loss],
                                     distributions, varied),
    }
    result["importance"] = importance
    judged_tuples = [(t["params"], t["verdict"], t["plateau_removed"]) for t in judged]
    result["usual_suspects"] = usual_suspects(judged_tuples, distributions)
    if baseline_trial and baseline_trial["params"]:
        others = [(t["params"], t["plateau_removed"]) for t in judged if t["number"] != baseline_number]
        result["baseline_comparison"] = compare_with_baseline(baseline_trial["params"], others, distributions)
    if result["evidence"] != "ok":
        return _plain(_mark_factors(result))

    factors, others, n_tests = find_factors(judged_params, kept, distributions, min_trials=min_trials)
    factors, others = _overruled(factors, others, result["confirmation"])
    result["n_factor_tests"] = n_tests
    by_importance = lambda entry: (-entry["importance"], entry["param"])  # noqa: E731
    result["factors"] = sorted((_factor_fields(e, importance) for e in factors), key=by_importance)
    result["other_params"] = sorted((_factor_fields(e, importance) for e in others), key=by_importance)
    basis = prefer_improving(result["factors"], judged, distributions)
    result["recommendation_basis"] = basis
    result["recommendation"] = {
        param: _recommended({"removes_plateau": entry["region"]}, distributions[param]) for param, entry in basis.items()
    }
    recommended = {param: entry["region"] for param, entry in basis.items()}
    result["transitions"] = transition_table(judged, result["factors"], recommended, baseline_number)
    if not result["factors"]:
        result["message"] = (
            "No parameter separated the plateau-free trials from the others clearly enough "
            f"(family-wise error {ALPHA:g} over the {n_tests} tests run)."
        )
    return _plain(_mark_factors(result))
