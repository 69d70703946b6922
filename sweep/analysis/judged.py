"""Judging a sweep's trials: each one's verdict, and whether it counts as evidence for what removes the plateau."""

from __future__ import annotations

import math

from sweep.analysis.curves import CurveVerdict, PreparedCurve, classify_curve, prepare_curve
from sweep.analysis.inputs import FINISHED_STATES, TrialRecord

# Plateau removed = judged and not plateau/diverged; overfitting counts as removed (the optimisation moved, the stall left is generalisation) and is reported apart.
KEPT_VERDICTS = ("plateau", "diverged")
PLATEAU_REMOVED = (
    "a judged trial (finished: complete, pruned or failed; long enough for a verdict; if stopped early "
    "while improving, not before the epoch by which the latest plateau of the study showed) whose verdict is not "
    "plateau or diverged; overfitting and oscillating count as removed and are reported separately"
)


def _best_val_loss(record: TrialRecord) -> float | None:
    losses = [row["val_loss"] for row in record.history
              if row.get("val_loss") is not None and math.isfinite(row["val_loss"])]
    if losses:
        return min(losses)
    if record.value is not None and math.isfinite(record.value):
        return float(record.value)
    return None


def _not_judged(record: TrialRecord, verdict: CurveVerdict, clear_epoch: int | None) -> str | None:
    """Why a trial cannot say whether its settings remove the plateau, or None when it can."""
    if record.state not in FINISHED_STATES:
        return f"still {record.state.lower()}"
    if verdict.verdict == "too_short":
        return verdict.evidence.get("reason", "too short")
    last_epoch = int(record.history[-1].get("epoch", len(record.history))) if record.history else 0
    if verdict.verdict == "improving" and record.state != "COMPLETE" and clear_epoch is not None \
            and last_epoch < clear_epoch:
        # Early epochs improve in every run: a run stopped before the latest plateau seen could show has not
        # shown that its settings escape it (a cause whose plateau starts late would hide behind such runs).
        return (f"stopped at epoch {last_epoch} while improving, before epoch {clear_epoch} "
                "by which the latest plateau of the study showed")
    return None


def _trial_entry(record: TrialRecord, verdict: CurveVerdict, not_judged: str | None) -> dict:
    judged = not_judged is None
    return {
        "number": record.number,
        "state": record.state,
        "verdict": verdict.verdict,
        "plateau_epoch": verdict.plateau_epoch,
        "best_val_loss": _best_val_loss(record),
        "params": dict(record.params),
        "judged": judged,
        "not_judged": not_judged,
        "plateau_removed": (verdict.verdict not in KEPT_VERDICTS) if judged else None,
        "n_epochs": len(record.history),
        "failure": record.failure,
        "pruned_at": record.pruned_at,
        "evidence": verdict.evidence,
        "confirmation": record.confirmation,
    }


def observational(trials: list[dict]) -> list[dict]:
    """The judged search trials: what the observational tests count. One-change runs are left out: they sit around
    one reference by design, so the reference's values would all look tied to whatever the changes did."""
    return [trial for trial in trials if trial["judged"] and not trial.get("confirmation")]


def latest_plateau_shown(verdicts: list[CurveVerdict], curves: list[PreparedCurve], patience: int) -> int | None:
    """The step by which the latest-starting plateau of the study had shown, or None: its onset and ``patience``
    values more of its own curve (steps count as reported: epochs 1, 2, 3 or batches 100, 200, 300)."""
    shown = []
    for verdict, curve in zip(verdicts, curves):
        if verdict.verdict != "plateau" or verdict.plateau_epoch is None:
            continue
        steps = [point.epoch for point in curve.points]
        after = steps[steps.index(verdict.plateau_epoch):]
        shown.append(after[min(patience, len(after) - 1)])
    return max(shown) if shown else None


def judge(records: list[TrialRecord], *, patience: int, min_delta: float,
          prepared: dict[int, PreparedCurve] | None = None) -> list[dict]:
    """Every trial, in number order, as the result's trial entry: verdict, whether judged and whether it removed
    the plateau. ``prepared`` holds each trial's ``prepare_curve`` by number, for judging at many settings."""
    ordered = sorted(records, key=lambda r: r.number)
    prepared = prepared or {}
    curves = [prepared.get(record.number) or prepare_curve(record.history, record.failure) for record in ordered]
    verdicts = [
        classify_curve(record.history, patience=patience, min_delta=min_delta, failure=record.failure, prepared=curve)
        for record, curve in zip(ordered, curves)
    ]
    clear_epoch = latest_plateau_shown(verdicts, curves, patience)
    return [
        _trial_entry(record, verdict, _not_judged(record, verdict, clear_epoch))
        for record, verdict in zip(ordered, verdicts)
    ]
