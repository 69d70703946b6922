"""One-change confirmation: from a plateau-free run, each varied parameter set back to the baseline's value alone.

A baseline value that alone brings the plateau back is a confirmed cause; one that does not is ruled out as
a sole cause. This is how an engineer proves a cause by hand, and it needs one or two runs per parameter
where an observational test needs many. A control (the reference run again, unchanged, with another seed)
shows that the reference itself is reliably plateau-free: a reference that was plateau-free only by noise
would make every change look like a cause. Pure functions over the judged trial entries of ``judge``.
"""

from __future__ import annotations

from typing import Any

from optuna.distributions import BaseDistribution

from sweep.analysis.baseline import changed_from

OUTCOMES = ("confirmed", "ruled_out", "inconclusive", "pending")


def plateau_free(trials: list[dict]) -> list[dict]:
    """The runs a plan may start from, the lowest loss first: search runs trained to the end and still improving.

    Overfitting runs are no reference: their validation loss stalled too, only for another reason.
    """
    candidates = [t for t in trials if t["judged"] and t["state"] == "COMPLETE" and t["verdict"] == "improving"
                  and not t.get("confirmation") and t["best_val_loss"] is not None]
    return sorted(candidates, key=lambda t: (t["best_val_loss"], t["number"]))


def reference_of(trials: list[dict]) -> dict | None:
    """The plateau-free run to start from: the first of ``plateau_free``."""
    ranked = plateau_free(trials)
    return ranked[0] if ranked else None


def changed_params(reference: dict[str, Any], baseline: dict[str, Any],
                   distributions: dict[str, BaseDistribution]) -> list[str]:
    """The varied parameters whose reference value is not the baseline's: one one-change run each."""
    return [param for param, distribution in distributions.items()
            if not distribution.single() and param in baseline and param in reference
            and changed_from(reference[param], baseline[param], distribution)]


def plan_runs(reference: dict, changes: list[tuple[str, Any]], *, slots: int, replicates: int = 1,
              control: bool = True) -> list[dict]:
    """The runs from ``reference``: the control first (``param`` None), then one per ``(param, value)`` change and
    replicate, all first replicates before any second; at most ``slots``. ``{"params", "confirmation"}`` each."""
    def run(param: str | None, value: Any, replicate: int) -> dict:
        params = dict(reference["params"]) if param is None else {**reference["params"], param: value}
        return {"params": params, "confirmation": {"reference": reference["number"], "param": param, "value": value,
                                                   "replicate": replicate}}

    runs = [run(None, None, 1)] if control else []
    runs += [run(param, value, replicate) for replicate in range(1, replicates + 1) for param, value in changes]
    return runs[:slots]


def _judged_counts(runs: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """(judged, kept the plateau, queued or running) of ``runs``."""
    judged = [run for run in runs if run["judged"]]
    return (judged, [run for run in judged if not run["plateau_removed"]],
            [run for run in runs if run["state"] in ("WAITING", "RUNNING")])


def control_outcome(runs: list[dict]) -> str | None:
    """"plateau-free", "kept" or "pending" for the control runs of one reference; None without a judged or
    unfinished control (one that failed says nothing)."""
    judged, kept, unfinished = _judged_counts(runs)
    if kept:
        return "kept"
    return "plateau-free" if judged else "pending" if unfinished else None


def _outcome(runs: list[dict], control: str | None) -> tuple[str, str]:
    judged, kept, unfinished = _judged_counts(runs)
    if not judged:
        if unfinished:
            return "pending", f"{len(unfinished)} run(s) queued or running"
        return "inconclusive", "no run could be judged (" + ", ".join(
            f"trial {run['number']}: {run['not_judged'] or run['verdict']}" for run in runs) + ")"
    numbers = ", ".join(str(run["number"]) for run in judged)
    if kept and control == "kept":
        return "inconclusive", (f"the plateau came back in {len(kept)} of {len(judged)} run(s) (trial {numbers}), "
                                "but so it did in the reference rerun unchanged")
    if len(kept) == len(judged):
        if control == "pending":
            return "pending", f"the plateau came back (trial {numbers}); the reference rerun unchanged is not done"
        onsets = sorted({run["plateau_epoch"] for run in kept if run["plateau_epoch"] is not None})
        when = f" from epoch {'/'.join(map(str, onsets))}" if onsets else ""
        return "confirmed", f"the plateau came back{when} in {len(kept)} of {len(judged)} run(s) (trial {numbers})"
    if not kept:
        return "ruled_out", f"no plateau in {len(judged)} run(s) (trial {numbers}): not a sole cause"
    return "inconclusive", f"the plateau came back in {len(kept)} of {len(judged)} runs (trial {numbers})"


def _run_rows(runs: list[dict]) -> list[dict]:
    return [{"number": run["number"], "replicate": run["confirmation"]["replicate"], "state": run["state"],
             "verdict": run["verdict"], "judged": run["judged"], "plateau_epoch": run["plateau_epoch"]}
            for run in sorted(runs, key=lambda run: run["number"])]


def confirmation_results(trials: list[dict], baseline: dict[str, Any] | None,
                         distributions: dict[str, BaseDistribution]) -> dict | None:
    """Per change tried from the latest reference, what its runs showed; None when the study has no such runs."""
    runs = [t for t in trials if t.get("confirmation")]
    if not runs or not baseline:
        return None
    reference_number = max(run["confirmation"]["reference"] for run in runs)
    reference = next((t for t in trials if t["number"] == reference_number), None)
    mine = [run for run in runs if run["confirmation"]["reference"] == reference_number]
    controls = [run for run in mine if run["confirmation"]["param"] is None]
    control = control_outcome(controls)
    tested: dict[tuple[str, str], list[dict]] = {}
    for run in mine:
        if run["confirmation"]["param"] is not None:
            tested.setdefault((run["confirmation"]["param"], repr(run["confirmation"]["value"])), []).append(run)
    entries = []
    for (param, _), param_runs in tested.items():
        outcome, reason = _outcome(param_runs, control)
        entries.append({"param": param, "baseline_value": baseline.get(param),
                        "reference_value": reference["params"].get(param) if reference else None,
                        "value": param_runs[0]["confirmation"]["value"], "outcome": outcome, "reason": reason,
                        "runs": _run_rows(param_runs)})
    for param, distribution in distributions.items():
        if (reference and control != "kept" and param in baseline and not distribution.single()
                and param not in {entry["param"] for entry in entries}
                and not changed_from(reference["params"].get(param), baseline[param], distribution)):
            entries.append({"param": param, "baseline_value": baseline[param], "reference_value": baseline[param],
                            "value": baseline[param], "outcome": "ruled_out", "runs": [],
                            "reason": f"trial {reference_number} is plateau-free with the baseline's value: "
                                      "not a sole cause"})
    order = list(distributions)
    entries.sort(key=lambda entry: order.index(entry["param"]) if entry["param"] in order else len(order))
    return {
        "reference": reference_number,
        "reference_params": reference["params"] if reference else None,
        "reference_best_val_loss": reference["best_val_loss"] if reference else None,
        "control": {"outcome": control, "runs": _run_rows(controls)} if controls else None,
        "params": entries,
        **{outcome: sorted({e["param"] for e in entries if e["outcome"] == outcome}) for outcome in OUTCOMES},
    }
