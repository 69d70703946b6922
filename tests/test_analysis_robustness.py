"""How robust the answer is: the stored curves re-judged over the grid of plateau thresholds, on hand-made curves,
and `sweep analyze --patience/--min-delta` re-judging a stored study."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
from click.testing import CliRunner
from optuna.distributions import FloatDistribution, IntDistribution

from sweep.analysis import TrialRecord, analyze, json_schema, render_html, render_text
from sweep.analysis.answer import same_answer, same_region
from sweep.analysis.robustness import MIN_DELTAS, PATIENCES, robustness
from sweep.cli import main
from synthetic_studies import store_study

# Flat to 0.02%: a plateau at every threshold of the grid.
FLAT = [2.0, 1.5, 1.4, 1.4002, 1.3999, 1.4001, 1.3998, 1.4001]
# Falling 10% an epoch: improving at every threshold.
FAST = [2.0 * 0.9 ** epoch for epoch in range(8)]
# Falling 0.3% an epoch after epoch 3: improving when min_delta is 0.001, or 0.01 over 5 epochs (1.5%); else a plateau.
SLOW = [2.0, 1.5, 1.4] + [1.4 * 0.997 ** epoch for epoch in range(1, 6)]
LR = {"lr": FloatDistribution(1e-5, 1e-1, log=True)}


def history(val_losses):
    return [{"epoch": epoch, "train_loss": val, "val_loss": val} for epoch, val in enumerate(val_losses, start=1)]


def lr_sweep(removed_curve, n=15):
    """n low learning rates that stay flat (the baseline first), then n high ones with ``removed_curve``."""
    low = [1e-5 * 1.1 ** i for i in range(n)]
    high = [1e-3 * 1.1 ** i for i in range(n)]
    runs = [(lr, FLAT) for lr in low] + [(lr, removed_curve) for lr in high]
    return [TrialRecord(number, "COMPLETE", {"lr": lr}, history(curve), value=min(curve))
            for number, (lr, curve) in enumerate(runs)]


def test_a_factor_named_at_every_threshold_is_not_fragile(valid_analysis):
    result = valid_analysis(analyze(lr_sweep(FAST), LR, study_name="fast"))
    (factor,) = result["factors"]
    assert (factor["named_in_settings"], factor["fragile"]) == (12, False)
    (entry,) = result["robustness"]["params"]
    assert (entry["param"], entry["n_named"], entry["share"]) == ("lr", 12, 1.0)
    assert len(entry["regions"]) == 1 and entry["regions"][0]["n_settings"] == 12
    assert "fragile" not in render_text(result)


def test_a_factor_that_shows_only_at_the_loosest_thresholds_is_fragile(valid_analysis):
    result = valid_analysis(analyze(lr_sweep(SLOW), LR, study_name="slow", patience=2, min_delta=0.001))
    (factor,) = result["factors"]
    assert factor["fragile"] and factor["named_in_settings"] == 5
    named = {(s["patience"], s["min_delta"]) for s in result["robustness"]["settings"] if s["factors"]}
    assert named == {(patience, 0.001) for patience in PATIENCES} | {(5, 0.01)}
    no_contrast = [s for s in result["robustness"]["settings"] if s["evidence"] == "no_contrast"]
    assert len(no_contrast) == 7 and all(s["n_plateau_removed"] == 0 for s in no_contrast)
    text = render_text(result)
    assert "fragile: named at only 5 of the 12 plateau thresholds tried" in text
    assert "lr: named at 5 of 12 settings — fragile, fewer than half: lr in [0.001, 0.0038] at 5" in text


def test_at_thresholds_where_nothing_is_named_the_grid_still_says_where_the_answer_holds(valid_analysis):
    result = valid_analysis(analyze(lr_sweep(SLOW), LR, study_name="slow"))  # patience 2, min_delta 0.01
    assert result["evidence"] == "no_contrast" and result["factors"] == []
    (entry,) = result["robustness"]["params"]
    assert (entry["param"], entry["n_named"], entry["fragile"]) == ("lr", 5, True)
    assert "lr (not a factor at your thresholds): named at 5 of 12" in render_text(result)


def test_the_grid_covers_every_patience_and_min_delta_and_judges_each_anew():
    records = lr_sweep(SLOW)
    grid = robustness(records, LR, baseline_number=0, min_trials=6)
    assert [(s["patience"], s["min_delta"]) for s in grid["settings"]] == \
        [(patience, min_delta) for patience in PATIENCES for min_delta in MIN_DELTAS]
    removed = {(s["patience"], s["min_delta"]): s["n_plateau_removed"] for s in grid["settings"]}
    assert removed[(1, 0.001)] == removed[(5, 0.01)] == 15 and removed[(3, 0.01)] == removed[(5, 0.05)] == 0


def test_a_known_answer_is_reused_at_every_setting_that_judges_the_trials_alike():
    records = lr_sweep(FAST)  # every setting of the grid judges these alike
    planted = {"lr": {"low": 1.0, "high": 2.0}}  # not what a search would find: shows it was taken as given
    grid = robustness(records, LR, baseline_number=0, min_trials=6, known={(2, 0.01): planted})
    assert all(setting["factors"] == planted for setting in grid["settings"])
    searched = robustness(records, LR, baseline_number=0, min_trials=6)
    assert all(setting["factors"]["lr"]["low"] == pytest.approx(1e-3) for setting in searched["settings"])


@pytest.mark.parametrize(("first", "second", "same"), [
    ({"low": 1e-4, "high": 1e-2}, {"low": 1.1e-4, "high": 0.95e-2}, True),  # ends moved by one trial
    ({"low": 1e-4, "high": 1e-2}, {"low": 3e-3, "high": 1e-2}, False),  # a quarter of it on the log scale
    ({"values": [0, 1, 2]}, {"values": [2, 1, 0]}, True),
    ({"values": [0, 1, 2]}, {"values": [0, 1]}, False),
])
def test_same_region_compares_ranges_by_overlap_on_the_parameters_scale(first, second, same):
    assert same_region(first, second, LR["lr"]) is same
    assert same_answer({"lr": first}, {"lr": second}, LR) is same


def test_a_range_that_overlaps_most_on_a_linear_scale_but_not_on_the_log_scale_differs():
    wide, narrow = {"low": 1e-5, "high": 1e-1}, {"low": 1e-2, "high": 1e-1}
    assert not same_region(wide, narrow, LR["lr"])
    assert same_region(wide, narrow, FloatDistribution(1e-5, 1e-1))
    assert not same_answer({"lr": wide}, {"lr": wide, "frozen_stages": {"values": [0]}},
                           {**LR, "frozen_stages": IntDistribution(0, 4)})


def test_robustness_in_the_schema_and_the_html(valid_analysis):
    records = lr_sweep(SLOW)
    result = valid_analysis(analyze(records, LR, study_name="slow", patience=2, min_delta=0.001))
    validator = jsonschema.Draft202012Validator(json_schema())
    broken = copy.deepcopy(result)
    del broken["robustness"]["settings"][0]["factors"]
    assert not validator.is_valid(broken)
    broken = copy.deepcopy(result)
    broken["factors"][0]["fragile"] = "yes"
    assert not validator.is_valid(broken)
    page = render_html(result, records, LR)
    assert '<table id="robustness-grid"' in page and '<table id="robustness-params"' in page
    assert '<td class="own-setting">lr (your thresholds)</td>' in page
    assert page.count("<td>no contrast (all judged runs alike)</td>") == 7


# --- sweep analyze --patience / --min-delta on a stored study ----------------------------------------

def analyze_command(storage, *args):
    return CliRunner().invoke(main, ["analyze", "--study", "slow", "--storage", storage, *args])


def test_analyze_rejudges_the_stored_study_at_other_thresholds_without_retraining(tmp_path, valid_analysis):
    storage = f"sqlite:///{tmp_path / 'slow.db'}"
    records = lr_sweep(SLOW)
    store_study(records, LR, storage, "slow")
    for patience, min_delta, evidence in ((2, 0.01, "no_contrast"), (2, 0.001, "ok"), (5, 0.01, "ok")):
        run = analyze_command(storage, "--format", "json", "--patience", str(patience), "--min-delta", str(min_delta))
        assert run.exit_code == 0, run.output
        result = valid_analysis(json.loads(run.stdout))
        assert (result["settings"]["patience"], result["settings"]["min_delta"]) == (patience, min_delta)
        assert result["evidence"] == evidence
        expected = analyze(records, LR, study_name="slow", patience=patience, min_delta=min_delta)
        assert [t["verdict"] for t in result["trials"]] == [t["verdict"] for t in expected["trials"]]
        assert [f["param"] for f in result["factors"]] == (["lr"] if evidence == "ok" else [])


@pytest.mark.parametrize(("flag", "value", "accepted"), [
    ("--patience", "0", "0 is not in the range x>=1"),
    ("--min-delta", "1", "1.0 is not in the range 0<=x<1"),
    ("--min-delta", "-0.1", "-0.1 is not in the range 0<=x<1"),
])
def test_thresholds_out_of_range_are_usage_errors_naming_the_value(tmp_path, flag, value, accepted):
    storage = f"sqlite:///{tmp_path / 'slow.db'}"
    store_study(lr_sweep(FAST), LR, storage, "slow")
    run = analyze_command(storage, flag, value)
    assert run.exit_code == 2
    assert f"Invalid value for '{flag}': {accepted}" in run.output
