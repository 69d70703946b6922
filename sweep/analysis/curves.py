"""Verdicts on one training curve: is the validation loss improving, on a plateau, or stuck for another reason."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sweep.plateau import best_so_far, epochs_to_judge, stall_start, stalled_windows

VERDICTS = ("improving", "plateau", "overfitting", "oscillating", "diverged", "too_short")

# Validation ending above its first value and this many times its best: the run blew up.
BLOWUP_FACTOR = 3.0
# Training loss falling by at least this share over a validation stall: overfitting, not a plateau.
OVERFIT_TRAIN_DROP = 0.10
# A stall whose validation loss swings by at least this share of its level per epoch, up and down: oscillating.
OSCILLATION_SWING = 0.05


@dataclass(frozen=True)
class CurveVerdict:
    verdict: str  # one of VERDICTS
    plateau_epoch: int | None  # epoch whose best validation loss the rest of the run did not beat
    evidence: dict


@dataclass(frozen=True)
class _Point:
    epoch: int
    val_loss: float
    train_loss: float | None


def _loss(entry: dict, key: str) -> float | None:
    """The loss as a float (NaN and inf kept), or None where the entry has none."""
    value = entry.get(key)
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 6)


def _relative_change(first: float | None, last: float | None) -> float | None:
    if first is None or last is None or first == 0:
        return None
    return _rounded((last - first) / abs(first))


def _trend(change: float | None) -> str:
    if change is None:
        return "unknown"
    if change <= -OVERFIT_TRAIN_DROP:
        return "falling"
    if change >= OVERFIT_TRAIN_DROP:
        return "rising"
    return "flat"


# Failures the training loop records when the loss blows up (sweep.train.DivergedLoss).
DIVERGED_FAILURES = ("nan_loss", "exploding_loss")


def _divergence(history: list[dict], failure: str | None) -> str | None:
    """Why the run diverged (non-finite loss), or None."""
    if failure in DIVERGED_FAILURES:
        return f"the run stopped on a diverging loss (failure {failure})"
    for index, entry in enumerate(history):
        epoch = entry.get("epoch", index + 1)
        for key in ("val_loss", "train_loss"):
            value = _loss(entry, key)
            if value is None or math.isnan(value) and index < len(history) - 1:
                continue  # a NaN followed by finite epochs is a gap in the record, not a blow-up
            if not math.isfinite(value):
                return f"{key} is {value} at epoch {epoch}"
    return None


def _points(history: list[dict]) -> tuple[list[_Point], list[int]]:
    points, skipped = [], []
    for index, entry in enumerate(history):
        epoch = int(entry.get("epoch", index + 1))
        val_loss = _loss(entry, "val_loss")
        if val_loss is None or not math.isfinite(val_loss):
            skipped.append(epoch)
            continue
        train_loss = _loss(entry, "train_loss")
        if train_loss is not None and not math.isfinite(train_loss):
            train_loss = None
        points.append(_Point(epoch, val_loss, train_loss))
    return points, skipped


def _train_change(points: list[_Point]) -> float | None:
    train = [point.train_loss for point in points if point.train_loss is not None]
    return _relative_change(train[0], train[-1]) if len(train) >= 2 else None


def _oscillates(points: list[_Point]) -> bool:
    """Validation swinging up and down by a large step, with little net movement."""
    val = [point.val_loss for point in points]
    steps = [later - earlier for earlier, later in zip(val, val[1:]) if later != earlier]
    if len(steps) < 3:
        return False
    reversals = sum(1 for earlier, later in zip(steps, steps[1:]) if (earlier > 0) != (later > 0))
    travelled = sum(abs(step) for step in steps)
    net = abs(val[-1] - val[0])
    level = min(val)
    return (
        reversals >= 2
        and travelled / len(steps) >= OSCILLATION_SWING * abs(level)
        and travelled >= 3 * net
    )


@dataclass(frozen=True)
class PreparedCurve:
    """What a verdict needs of a history whatever the thresholds: read once, judged at many settings."""

    n_epochs: int
    divergence: str | None
    points: list[_Point]
    skipped: list[int]


def prepare_curve(history: list[dict], failure: str | None = None) -> PreparedCurve:
    divergence = _divergence(history, failure)
    points, skipped = ([], []) if divergence else _points(history)
    return PreparedCurve(len(history), divergence, points, skipped)


def classify_curve(
    history: list[dict],
    *,
    patience: int,
    min_delta: float,
    failure: str | None = None,
    prepared: PreparedCurve | None = None,
) -> CurveVerdict:
    """Verdict on one run's curve with the plateau rule of DESIGN.md.

    The run is on a plateau from epoch e when over the ``patience`` epochs after e the best
    validation loss does not improve by ``min_delta`` relative. The verdict describes how the run
    ended: stalled windows that a later improvement broke are reported as ``earlier_plateaus``.
    ``prepared`` (``prepare_curve`` of the same history and failure) saves reading it again.
    """
    if patience < 1:
        raise ValueError(f"patience must be at least 1 epoch (got {patience})")
    prepared = prepared or prepare_curve(history, failure)
    evidence: dict[str, Any] = {"n_epochs": prepared.n_epochs}
    if prepared.divergence:
        evidence["reason"] = prepared.divergence
        return CurveVerdict("diverged", None, evidence)

    points, skipped = prepared.points, prepared.skipped
    if skipped:
        evidence["skipped_epochs"] = list(skipped)
    val = [point.val_loss for point in points]
    if len(points) < epochs_to_judge(patience):
        evidence["reason"] = (
            f"{len(points)} epoch(s) with a validation loss; judging a plateau needs {epochs_to_judge(patience)}"
        )
        return CurveVerdict("too_short", None, evidence)

    best = min(val)
    evidence["best_val_loss"] = _rounded(best)
    # Measured from the best by its size, so a curve below zero (a negated accuracy) reads alike.
    if val[-1] - best > (BLOWUP_FACTOR - 1) * abs(best) and val[-1] > val[0]:
        evidence["reason"] = (
            f"validation loss ended at {val[-1]:.4g}, above its start {val[0]:.4g} and "
            f"{BLOWUP_FACTOR:g}x its best {best:.4g}"
        )
        return CurveVerdict("diverged", None, evidence)

    best_before = best_so_far(val)
    last_window = len(points) - 1 - patience
    stalled = stalled_windows(val, patience, min_delta)
    start = stall_start(stalled)
    earlier = [
        points[index].epoch
        for index in range(len(stalled))
        if stalled[index] and (index == 0 or not stalled[index - 1]) and index < start
    ]
    if earlier:
        evidence["earlier_plateaus"] = earlier  # stalls the run later broke out of

    evidence["best_val_before"] = _rounded(best_before[start])
    evidence["best_val_after"] = _rounded(min(val[start + 1 :]))
    if not stalled[last_window]:
        evidence["train_loss_change"] = _train_change(points)
        evidence["train_loss_trend"] = _trend(evidence["train_loss_change"])
        evidence["reason"] = (
            f"best validation loss went from {best_before[start]:.4g} to "
            f"{min(val[start + 1:]):.4g} in the last {patience} epoch(s)"
        )
        return CurveVerdict("improving", None, evidence)

    stall = points[start:]
    plateau_epoch = points[start].epoch
    evidence["train_loss_change"] = _train_change(stall)
    evidence["train_loss_trend"] = _trend(evidence["train_loss_change"])
    evidence["stalled_epochs"] = len(stall) - 1
    swing = points[max(0, min(start, len(points) - 4)) :]  # at least 4 points to see a swing
    if _oscillates(swing):
        evidence["reason"] = f"validation loss swings up and down from epoch {plateau_epoch} without a new best"
        return CurveVerdict("oscillating", plateau_epoch, evidence)
    train_change = evidence["train_loss_change"]
    if train_change is not None and train_change <= -OVERFIT_TRAIN_DROP:
        evidence["reason"] = (
            f"validation loss stopped improving after epoch {plateau_epoch} while training loss "
            f"fell {-train_change:.0%}"
        )
        return CurveVerdict("overfitting", plateau_epoch, evidence)
    evidence["reason"] = (
        f"best validation loss {best_before[start]:.4g} at epoch {plateau_epoch} improved by less "
        f"than {min_delta:g} (relative) over the {len(stall) - 1} epoch(s) after it"
    )
    return CurveVerdict("plateau", plateau_epoch, evidence)
