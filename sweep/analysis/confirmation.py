"""One-change confirmation: from a plateau-free run, each varied parameter set back to the baseline's value alone.

A baseline value that alone brings the plateau back is a confirmed cause; one that does not is ruled out as
a sole cause. This is how an engineer proves a cause by hand, and it needs one or two runs per parameter
where an observational test needs many. Pure functions over the judged trial entries of ``judge``.
"""

from __future__ import annotations

from typing import Any

from optuna.distributions import BaseDistribution

from sweep.analysis.baseline import changed_from

OUTCOMES = ("confirmed", "ruled_out", "inconclusive", "pending")


def reference_of(trials: list[dict]) -> dict | None:
    """The plateau-free run to start from: a search run trained to the end and still improving, the lowest loss.

    Overfitting runs are no reference: their validation loss stalled too, only for another reason.
    """
    candidates = [t for t in trials if t["judged"] and t["state"] == "COMPLETE" and t["verdict"] == "improving"
                  and not t.get("confirmation") and t["best_val_loss"] is not None]
    return min(candidates, key=lambda t: (t["best_val_loss"], t["number"])) if candidates else None


def changed_params(reference: dict[str, Any], baseline: dict[str, Any],
                   distributions: dict[str, BaseDistribution]) -> list[str]:
    """The varied parameters whose reference value is not the baseline's: one one-change run each."""
    return [param for param, distribution in distributions.items()
            if not distribution.single() and param in baseline and param in reference
            and changed_from(reference[param], baseline[param], distribution)]


def plan_runs(reference: dict, changes: list[tuple[str, Any]], *, slots: int, replicates: int = 1) -> list[dict]:
    """The one-change runs from ``reference``, one per ``(param, value)`` change and replicate, at most ``slots``:
    ``{"params", "confirmation"}`` each, all first replicates before any second."""
    runs = []
    for replicate in range(1, replicates + 1):
        for param, value in changes:
            runs.append({
                "params": {**reference["params"], param: value},
                "confirmation": {"reference": reference["number"], "param": param, "value": value,
                                 "replicate": replicate},
            })
    return runs[:slots]


def _outcome(runs: list[dict]) -> tuple[str, str]:
    judged = [run for run in runs if run["judged"]]
    kept = [run for run in judged if not run["plateau_removed"]]
    unfinished = [run for run in runs if run["state"] in ("WAITING", "RUNNING")]
    if not judged:
        if unfinished:
            return "pending", f"{len(unfinished)} run(s) queued or running"
        return "inconclusive", "no run could be judged (" + ", ".join(
            f"trial {run['number']}: {run['not_judged'] or run['verdict']}" for run in runs) + ")"
    numbers = ", ".join(str(run["number"]) for run in judged)
    if len(kept) == len(judged):
        onsets = sorted({run["plateau_epoch"] for run in kept if run["plateau_epoch"] is not None})
        when = f" from epoch {'/'.join(map(str, onsets))}" if onsets else ""
        return "confirmed", f"the plateau came back{when} in {len(kept)} of {len(judged)} run(s) (trial {numbers})"
    if not kept:
        return "ruled_out", f"no plateau in {len(judged)} run(s) (trial {numbers}): not a sole cause"
    return "inconclusive", f"the plateau came back in {len(kept)} of {len(judged)} runs (trial {numbers})"


def confirmation_results(trials: list[dict], baseline: dict[str, Any] | None,
                         distributions: dict[str, BaseDistribution]) -> dict | None:
    """Per varied parameter, what the one-change runs showed; None when the study has none."""
    runs = [t for t in trials if t.get("confirmation")]
    if not runs or not baseline:
        return None
    references = sorted({run["confirmation"]["reference"] for run in runs})
    reference_number = references[-1]
    reference = next((t for t in trials if t["number"] == reference_number), None)
    entries = []
    tested = {}
    for run in runs:
        if run["confirmation"]["reference"] == reference_number:
            tested.setdefault(run["confirmation"]["param"], []).append(run)
    for param, distribution in distributions.items():
        if distribution.single() or param not in baseline:
            continue
        entry: dict[str, Any] = {"param": param, "baseline_value": baseline[param],
                                 "reference_value": reference["params"].get(param) if reference else None}
        if param in tested:
            param_runs = sorted(tested[param], key=lambda run: run["number"])
            entry["value"] = param_runs[0]["confirmation"]["value"]
            entry["outcome"], entry["reason"] = _outcome(param_runs)
            entry["runs"] = [{"number": run["number"], "replicate": run["confirmation"]["replicate"],
                              "state": run["state"], "verdict": run["verdict"], "judged": run["judged"],
                              "plateau_epoch": run["plateau_epoch"]} for run in param_runs]
        elif reference and not changed_from(reference["params"].get(param), baseline[param], distribution):
            entry["value"] = baseline[param]
            entry["outcome"] = "ruled_out"
            entry["reason"] = f"trial {reference_number} is plateau-free with the baseline's value: not a sole cause"
            entry["runs"] = []
        else:
            continue
        entries.append(entry)
    return {
        "reference": reference_number,
        "reference_params": reference["params"] if reference else None,
        "reference_best_val_loss": reference["best_val_loss"] if reference else None,
        "params": entries,
        **{outcome: [e["param"] for e in entries if e["outcome"] == outcome] for outcome in OUTCOMES},
    }
