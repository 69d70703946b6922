"""Did the next sweep fix it: one study's analysis against an earlier one's (typically the sweep made from its
``--emit-config``), as plain data added to the later study's result."""

from __future__ import annotations

import math
from typing import Any

from sweep.analysis.curves import VERDICTS
from sweep.analysis.inputs import TrialRecord

N_BEST_CURVES = 5
# Settings that make two sweeps' losses and verdicts incomparable when they differ: what is trained on what, how
# long, and the plateau rule.
SETUP_SETTINGS = ("model", "weights", "data", "image_size", "max_train", "max_val", "val_fraction", "epochs",
                  "patience", "min_delta")


def setup_differences(this: dict[str, Any], against: dict[str, Any]) -> list[dict]:
    """The setup settings (of two stored sweep configs) that differ, each as {setting, this, against}."""
    return [{"setting": name, "this": this.get(name), "against": against.get(name)}
            for name in SETUP_SETTINGS if this.get(name) != against.get(name)]


def _curve(record: TrialRecord | None, trial: dict | None) -> dict | None:
    if record is None or trial is None:
        return None
    rows = [(row.get("epoch", index + 1), row.get("val_loss")) for index, row in enumerate(record.history)]
    return {"number": record.number, "verdict": trial["verdict"], "best_val_loss": trial["best_val_loss"],
            "epochs": [int(epoch) for epoch, _ in rows],
            "val_loss": [value if value is not None and math.isfinite(value) else None for _, value in rows]}


def _removed(result: dict) -> dict:
    judged, removed = result["n_judged"], result["n_plateau_removed"]
    return {"n_judged": judged, "n_plateau_removed": removed, "rate": round(removed / judged, 4) if judged else None}


def _best(result: dict) -> dict | None:
    best = result.get("best_trial")
    return None if best is None else {key: best[key] for key in ("number", "best_val_loss", "verdict", "plateau_removed")}


def compare_studies(this: dict, against: dict, this_records: list[TrialRecord], against_records: list[TrialRecord],
                    differences: list[dict]) -> dict:
    """``this`` study's result against the ``against`` study's: the earlier baseline's curve and the new best
    plateau-free curves, verdict counts side by side, and whether the new best beats the old one and by how much."""
    this_by_number = {record.number: record for record in this_records}
    against_by_number = {record.number: record for record in against_records}
    baseline_number = against["baseline"]["number"]
    baseline_trial = next((t for t in against["trials"] if t["number"] == baseline_number), None)
    best_removed = sorted((t for t in this["trials"] if t["plateau_removed"] and t["best_val_loss"] is not None),
                          key=lambda t: t["best_val_loss"])[:N_BEST_CURVES]
    new, old = _best(this), _best(against)
    best: dict[str, Any] = {"this": new, "against": old, "beats": None, "improvement": None,
                            "relative_improvement": None}
    if new and old and new["best_val_loss"] is not None and old["best_val_loss"] is not None:
        improvement = old["best_val_loss"] - new["best_val_loss"]
        best.update(beats=improvement > 0, improvement=improvement,
                    relative_improvement=improvement / abs(old["best_val_loss"]) if old["best_val_loss"] else None)
    return {
        "against": against["study"],
        "differences": differences,
        "verdict_counts": {verdict: {"this": this["verdict_counts"].get(verdict, 0),
                                     "against": against["verdict_counts"].get(verdict, 0)} for verdict in VERDICTS},
        "plateau_removed": {"this": _removed(this), "against": _removed(against)},
        "best": best,
        "baseline_curve": _curve(against_by_number.get(baseline_number), baseline_trial),
        "best_curves": [_curve(this_by_number[t["number"]], t) for t in best_removed if t["number"] in this_by_number],
    }
