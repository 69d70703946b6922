"""The analysis of studies that `sweep start` did not make: plain Optuna code that calls ``trial.report``."""

from __future__ import annotations

import math

import optuna
import pytest

from sweep.analysis import TrialRecord, analyze, classify_curve

optuna.logging.set_verbosity(optuna.logging.WARNING)

PLATEAU_FROM_REPORT_3 = [2.0, 1.2, 1.0, 0.99, 0.99, 0.99, 0.99, 0.99]
IMPROVING = [2.0, 1.6, 1.3, 1.05, 0.85, 0.7, 0.58, 0.48]


def _steps(values: list[float], every: int = 100) -> list[dict]:
    return [{"epoch": every * (index + 1), "val_loss": value} for index, value in enumerate(values)]


def test_a_run_cut_while_improving_counts_only_past_the_report_by_which_a_plateau_showed(valid_analysis):
    """Steps every 100 batches: the plateau from step 300 shows at step 500 (patience 2 counts reports)."""
    records = [TrialRecord(0, "COMPLETE", {"x": 0.0}, _steps(PLATEAU_FROM_REPORT_3))]
    records += [TrialRecord(n, "COMPLETE", {"x": float(n)}, _steps(IMPROVING)) for n in range(1, 7)]
    records += [TrialRecord(7, "PRUNED", {"x": 7.0}, _steps(IMPROVING[:4]), pruned_at=400),
                TrialRecord(8, "PRUNED", {"x": 8.0}, _steps(IMPROVING[:5]), pruned_at=500)]
    space = {"x": optuna.distributions.FloatDistribution(0.0, 10.0)}
    by_number = {t["number"]: t for t in valid_analysis(analyze(records, space, study_name="s"))["trials"]}
    assert by_number[0]["verdict"] == "plateau" and by_number[0]["plateau_epoch"] == 300
    assert not by_number[7]["judged"] and "before epoch 500" in by_number[7]["not_judged"]
    assert by_number[8]["judged"] and by_number[8]["plateau_removed"]


def test_a_curve_below_zero_that_stalls_is_a_plateau_not_a_blow_up():
    """A negated accuracy that ends just under its start: "3x its best" read literally on a negative best is 3x
    further below, so any such end would count as a blow-up."""
    accuracy = [0.50, 0.70, 0.72, 0.72, 0.71, 0.49]
    verdict = classify_curve(_steps([-value for value in accuracy], every=1), patience=2, min_delta=0.01)
    assert verdict.verdict == "plateau" and verdict.plateau_epoch == 3
    collapsed = classify_curve(_steps([0.5, 0.2, 0.15, 0.15, 3.0], every=1), patience=2, min_delta=0.01)
    assert collapsed.verdict == "diverged"  # the rule for a positive loss is as before
