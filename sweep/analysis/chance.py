"""Whether the sweep's models learned at all: the best validation loss against the chance level, ln(classes), the
cross-entropy of a uniform guess. Below it verdicts describe learning; at it they describe noise."""

from __future__ import annotations

import math

from sweep.analysis.inputs import TrialRecord

AT_CHANCE = 0.9  # a best validation loss above this share of ln(classes) has not learned yet


def chance_level(records: list[TrialRecord], trials: list[dict]) -> dict | None:
    """``{n_classes, loss, best_val_loss, at_chance}`` from the classes the trials recorded, or None where none did
    (e.g. a study whose objective did not record them)."""
    classes = [record.n_classes for record in records if record.n_classes]
    losses = [trial["best_val_loss"] for trial in trials if trial["best_val_loss"] is not None]
    if not classes or not losses:
        return None
    n_classes = max(classes)
    loss, best = math.log(n_classes), min(losses)
    return {"n_classes": n_classes, "loss": round(loss, 4), "best_val_loss": best,
            "at_chance": n_classes > 1 and best >= AT_CHANCE * loss}
