"""Analysis: verdicts on hand-made curves, attribution on synthetic sweeps with a known answer, reading a study."""

from __future__ import annotations

import dataclasses
import json
import math
import runpy
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from scipy.stats import binomtest

from sweep.analysis import TrialRecord, analyze, classify_curve, records_from_study, render_text
from sweep.analysis.factors import find_factors
from sweep.analysis.regions import wilson_interval
from synthetic_studies import SPACE, synthetic_records

NAN = float("nan")


def history(val_losses, train_losses=None):
    train_losses = train_losses or val_losses
    return [
        {"epoch": epoch, "train_loss": train, "val_loss": val, "val_acc": 0.5, "lr": 0.01, "seconds": 1.0}
        for epoch, (val, train) in enumerate(zip(val_losses, train_losses), start=1)
    ]


def verdict_of(val_losses, train_losses=None, **kwargs):
    kwargs.setdefault("patience", 2)
    kwargs.setdefault("min_delta", 0.01)
    return classify_curve(history(val_losses, train_losses), **kwargs)


# --- verdicts on hand-made curves ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("val_losses", "train_losses", "expected", "plateau_epoch"),
    [
        pytest.param([2.0, 1.6, 1.3, 1.1, 0.95, 0.85], None, "improving", None, id="improving"),
        pytest.param([2.0, 1.5, 1.4, 1.399, 1.401, 1.398, 1.40], None, "plateau", 3, id="plateau"),
        pytest.param(
            [2.0, 1.5, 1.2, 1.21, 1.25, 1.3, 1.36], [2.0, 1.4, 1.0, 0.8, 0.6, 0.45, 0.3],
            "overfitting", 3, id="overfitting",
        ),
        pytest.param(
            [2.0, 1.5, 1.2, 1.6, 1.25, 1.65, 1.22, 1.7], [2.0, 1.5, 1.3, 1.4, 1.3, 1.4, 1.3, 1.4],
            "oscillating", 3, id="oscillating",
        ),
        pytest.param([2.0, 1.5, 1.2, 2.5, 5.0, 9.0], None, "diverged", None, id="val-loss-blows-up"),
        pytest.param([2.0, 1.5], None, "too_short", None, id="fewer-than-patience-plus-one"),
    ],
)
def test_each_verdict_on_a_hand_made_curve(val_losses, train_losses, expected, plateau_epoch):
    verdict = verdict_of(val_losses, train_losses)
    assert verdict.verdict == expected
    assert verdict.plateau_epoch == plateau_epoch


def test_plateau_evidence_gives_best_loss_before_and_after_and_train_trend():
    verdict = verdict_of([2.0, 1.5, 1.4, 1.399, 1.401, 1.398, 1.40])
    assert verdict.evidence["best_val_before"] == pytest.approx(1.4)
    assert verdict.evidence["best_val_after"] == pytest.approx(1.398)
    assert verdict.evidence["train_loss_trend"] == "flat"
    assert verdict.evidence["stalled_epochs"] == 4


def test_min_delta_is_relative_like_reduce_lr_on_plateau():
    # best 1.0; a new best must be below 1.0 * (1 - 0.01) = 0.99 to count as an improvement.
    assert verdict_of([2.0, 1.0, 0.995, 0.991]).verdict == "plateau"
    assert verdict_of([2.0, 1.0, 0.995, 0.985]).verdict == "improving"
    assert verdict_of([2.0, 1.0, 0.995, 0.985], min_delta=0.02).verdict == "plateau"


def test_patience_is_the_number_of_epochs_that_must_fail_to_improve():
    stall_of_two = [2.0, 1.5, 1.2, 1.2, 1.2, 1.0, 0.9, 0.8]
    assert verdict_of(stall_of_two[:5], patience=2).verdict == "plateau"
    assert verdict_of(stall_of_two[:5], patience=3).verdict == "improving"


def test_a_plateau_that_a_later_improvement_broke_is_improving_with_the_earlier_stall_as_evidence():
    verdict = verdict_of([2.0, 1.5, 1.2, 1.2, 1.2, 1.2, 1.0, 0.9, 0.8])
    assert verdict.verdict == "improving"
    assert verdict.evidence["earlier_plateaus"] == [3]


def test_plateau_epoch_is_the_last_epoch_that_set_a_real_best():
    verdict = verdict_of([2.0, 1.0, 0.9, 0.91, 0.92, 0.80, 0.81, 0.82, 0.805])
    assert (verdict.verdict, verdict.plateau_epoch) == ("plateau", 6)


def test_one_pruned_epoch_is_too_short():
    assert verdict_of([2.0]).verdict == "too_short"
    assert classify_curve([], patience=2, min_delta=0.01).verdict == "too_short"


def test_failure_nan_loss_is_diverged_even_when_the_run_is_short():
    assert verdict_of([2.0], failure="nan_loss").verdict == "diverged"


@pytest.mark.parametrize(
    "val_losses",
    [[2.0, 1.5, 1.2, NAN], [2.0, 1.5, math.inf, 1.0, 0.9], [2.0, 1.5, 1.2, 1.1, NAN, NAN]],
    ids=["nan-at-the-end", "inf-anywhere", "nan-to-the-end"],
)
def test_non_finite_loss_is_diverged(val_losses):
    assert verdict_of(val_losses).verdict == "diverged"


def test_a_nan_gap_followed_by_finite_epochs_is_skipped_not_diverged():
    verdict = verdict_of([2.0, 1.6, NAN, 1.1, 0.95, 0.85])
    assert verdict.verdict == "improving"
    assert verdict.evidence["skipped_epochs"] == [3]


def test_nan_gaps_count_against_the_epochs_needed_to_judge():
    assert verdict_of([2.0, NAN, NAN, 1.9]).verdict == "too_short"


def test_missing_train_loss_judges_the_validation_curve_alone():
    entries = [{"epoch": e, "val_loss": v} for e, v in enumerate([2.0, 1.5, 1.4, 1.4, 1.4], start=1)]
    verdict = classify_curve(entries, patience=2, min_delta=0.01)
    assert (verdict.verdict, verdict.plateau_epoch) == ("plateau", 3)
    assert verdict.evidence["train_loss_trend"] == "unknown"


def test_evidence_is_json_serialisable_without_nan():
    for val_losses in ([2.0, NAN, 1.5, 1.4, 1.4], [2.0, 1.5, NAN]):
        json.dumps(verdict_of(val_losses).evidence, allow_nan=False)


# --- analysis of a sweep ------------------------------------------------------------------------

def test_result_has_every_key_of_the_json_contract_and_is_strict_json(valid_analysis):
    records, space = synthetic_records(60, seed=0)
    result = valid_analysis(analyze(records, space, study_name="resnet-plateau"))
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result
    assert result["study"] == "resnet-plateau"
    assert result["n_trials"] == 60
    assert set(result["baseline"]) >= {"number", "verdict", "plateau_epoch"}
    assert (result["baseline"]["number"], result["baseline"]["verdict"]) == (0, "plateau")
    assert [trial["number"] for trial in result["trials"]] == list(range(60))
    for trial in result["trials"]:
        assert set(trial) >= {"number", "state", "verdict", "plateau_epoch", "best_val_loss", "params"}
    for factor in result["factors"]:
        assert set(factor) >= {"param", "importance", "removes_plateau", "plateau_rate_inside",
                               "plateau_rate_outside", "n_inside", "n_outside"}
    importances = [factor["importance"] for factor in result["factors"]]
    assert importances == sorted(importances, reverse=True)
    assert set(result["recommendation"]) == {factor["param"] for factor in result["factors"]}


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_ground_truth_the_two_causes_are_named_first_with_the_right_values_and_ranges(seed, valid_analysis):
    records, space = synthetic_records(120, seed=seed)  # plateau iff frozen_stages >= 3 or lr < 3e-5
    result = valid_analysis(analyze(records, space, study_name="synthetic"))
    factors = {factor["param"]: factor for factor in result["factors"]}
    assert [factor["param"] for factor in result["factors"]][:2] in (["frozen_stages", "lr"], ["lr", "frozen_stages"])
    assert set(factors) == {"frozen_stages", "lr"}, "an irrelevant parameter was named a factor"
    assert factors["frozen_stages"]["removes_plateau"] == {"values": [0, 1, 2]}
    lr_region = factors["lr"]["removes_plateau"]
    tried = [trial["params"]["lr"] for trial in result["trials"]]
    assert 2e-5 <= lr_region["low"] <= 6e-5
    assert lr_region["high"] >= 0.5 * max(tried)
    assert result["recommendation"]["frozen_stages"] == [0, 2]
    assert result["recommendation"]["lr"] == [lr_region["low"], lr_region["high"]]
    for factor in result["factors"]:
        assert factor["plateau_rate_inside"] < factor["plateau_rate_outside"]
        assert factor["p_adjusted"] < 0.05


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_when_nothing_matters_no_parameter_is_named(seed, valid_analysis):
    rng = np.random.default_rng(100 + seed)
    records, space = synthetic_records(100, seed=seed, rule=lambda params: rng.uniform() < 0.5, flip_rate=0.0)
    result = valid_analysis(analyze(records, space, study_name="noise"))
    assert result["factors"] == []
    assert result["recommendation"] == {}
    assert "No parameter separated" in result["message"]


def test_three_finished_trials_are_too_little_evidence_and_name_no_factor(valid_analysis):
    records = [
        TrialRecord(n, "COMPLETE", {"lr": 10 ** -(n + 2), "frozen_stages": n},
                    history([2.0, 1.5, 1.4, 1.4, 1.4] if n else [2.0, 1.6, 1.3, 1.1]))
        for n in range(3)
    ]
    space = {"lr": FloatDistribution(1e-5, 1e-1, log=True), "frozen_stages": IntDistribution(0, 4)}
    result = valid_analysis(analyze(records, space, study_name="thin"))
    assert result["evidence"] == "insufficient"
    assert result["factors"] == []
    assert result["recommendation"] == {}
    assert "Too little evidence" in result["message"]
    assert "Too little evidence" in render_text(result)
    assert [trial["verdict"] for trial in result["trials"]] == ["improving", "plateau", "plateau"]


def test_too_short_and_unfinished_trials_are_listed_but_not_judged(valid_analysis):
    records, space = synthetic_records(30, seed=0)
    records += [
        TrialRecord(30, "PRUNED", {**records[1].params}, history([2.0]), pruned_at=1),
        TrialRecord(31, "RUNNING", {**records[2].params}, history([2.0, 1.5, 1.4, 1.4, 1.4])),
    ]
    result = valid_analysis(analyze(records, space, study_name="s"))
    by_number = {trial["number"]: trial for trial in result["trials"]}
    assert by_number[30]["verdict"] == "too_short" and not by_number[30]["judged"]
    assert by_number[31]["verdict"] == "plateau" and not by_number[31]["judged"]
    assert by_number[31]["plateau_removed"] is None
    assert result["n_judged"] == sum(1 for trial in result["trials"] if trial["judged"])


def test_a_run_pruned_while_improving_before_the_baselines_plateau_showed_is_not_judged(valid_analysis):
    records, space = synthetic_records(30, seed=0, pruned_rate=0.0)
    baseline = classify_curve(records[0].history, patience=2, min_delta=0.01)
    assert baseline.verdict == "plateau"
    clear_epoch = baseline.plateau_epoch + 2
    improving = [2.3, 1.8, 1.4, 1.1, 0.9, 0.75, 0.62, 0.5]
    records += [
        TrialRecord(30, "PRUNED", records[1].params, history(improving[: clear_epoch - 1]), pruned_at=clear_epoch - 1),
        TrialRecord(31, "PRUNED", records[1].params, history(improving[:clear_epoch]), pruned_at=clear_epoch),
        TrialRecord(32, "COMPLETE", records[1].params, history(improving[: clear_epoch - 1])),
    ]
    by_number = {t["number"]: t for t in valid_analysis(analyze(records, space, study_name="s"))["trials"]}
    assert by_number[30]["verdict"] == "improving" and not by_number[30]["judged"]
    assert "before epoch" in by_number[30]["not_judged"]
    assert by_number[31]["judged"] and by_number[31]["plateau_removed"]
    assert by_number[32]["judged"]


def test_fixed_parameters_are_never_factors(valid_analysis):
    records, space = synthetic_records(80, seed=0)
    space = {**space, "batch_size": CategoricalDistribution([32])}
    records = [TrialRecord(r.number, r.state, {**r.params, "batch_size": 32}, r.history, r.value) for r in records]
    result = valid_analysis(analyze(records, space, study_name="s"))
    assert "batch_size" not in {entry["param"] for entry in result["factors"] + result["other_params"]}


def test_a_missing_baseline_is_reported_not_invented(valid_analysis):
    records, space = synthetic_records(40, seed=0)
    result = valid_analysis(analyze(records, space, study_name="s", baseline_number=99))
    assert result["baseline"] == {**result["baseline"], "number": 99, "verdict": None, "plateau_epoch": None}
    assert "not in this study" in render_text(result)


def test_best_trial_is_the_lowest_loss_among_trials_that_removed_the_plateau(valid_analysis):
    records, space = synthetic_records(60, seed=0)
    result = valid_analysis(analyze(records, space, study_name="s"))
    removed = [t for t in result["trials"] if t["plateau_removed"]]
    assert result["best_trial"]["number"] == min(removed, key=lambda t: t["best_val_loss"])["number"]


def test_text_report_names_baseline_factors_recommendation_and_usual_suspects(valid_analysis):
    records, space = synthetic_records(120, seed=0)
    result = valid_analysis(analyze(records, space, study_name="resnet-plateau"))
    text = render_text(result)
    assert "Baseline (trial 0): plateau from epoch" in text
    assert "frozen_stages in {0, 1, 2} on its own: plateau kept in" in text
    assert "Recommendation" in text and f"best trial: {result['best_trial']['number']}" in text
    suspect = next(s for s in result["usual_suspects"] if s["param"] == "frozen_stages")
    having = suspect["having"]
    assert f"runs with frozen_stages ≥ 3 kept the plateau in {having['n_kept']} of {having['n']}" in text
    assert having["n_kept"] / having["n"] > 0.8


def test_usual_suspect_counts_match_the_trials(valid_analysis):
    records, space = synthetic_records(60, seed=1)
    result = valid_analysis(analyze(records, space, study_name="s"))
    judged = [t for t in result["trials"] if t["judged"]]
    suspect = next(s for s in result["usual_suspects"] if s["rule"] == "scheduler = none")
    having = [t for t in judged if t["params"]["scheduler"] == "none"]
    assert suspect["having"]["n"] == len(having)
    assert suspect["having"]["n_kept"] == sum(1 for t in having if not t["plateau_removed"])


# --- factors found on their own and among earlier factors' regions ------------------------------

PLATEAU = [2.0, 1.5, 1.4, 1.399, 1.401, 1.398, 1.40, 1.399]
IMPROVING = [2.0, 1.6, 1.3, 1.1, 0.95, 0.85, 0.77, 0.7]
LR_AND_FROZEN = {"lr": FloatDistribution(1e-5, 1e-1, log=True), "frozen_stages": IntDistribution(0, 4)}

# A digits sweep of 16 trials, baseline lr=1e-5 with 4 frozen stages: (lr, frozen_stages, kept the plateau).
# Plateaus by frozen stages 0..4: 0/5, 1/3, 0/2, 2/3, 3/3; lr in [1.9e-3, 9.4e-2]: 1 of 11 vs 5 of 5 outside,
# and the one plateau inside that lr range has 4 frozen stages.
DIGITS_SWEEP = [
    (1e-5, 4, True), (3e-5, 4, True), (1e-4, 3, True), (4e-4, 3, True), (1e-3, 1, True), (1e-2, 4, True),
    (1.9e-3, 3, False), (2.5e-3, 0, False), (4e-3, 0, False), (6e-3, 0, False), (2e-2, 0, False),
    (9.4e-2, 0, False), (3e-3, 1, False), (5e-2, 1, False), (8e-3, 2, False), (3e-2, 2, False),
]


def hand_made(runs):
    """Records of (lr, frozen_stages, kept the plateau) runs, trial 0 first: plateaued or improving curves."""
    return [TrialRecord(number, "COMPLETE", {"lr": lr, "frozen_stages": frozen},
                        history(PLATEAU if kept else IMPROVING))
            for number, (lr, frozen, kept) in enumerate(runs)]


def test_a_second_cause_whose_plateaus_mostly_lie_outside_the_first_ones_region_is_named_on_its_own(valid_analysis):
    result = valid_analysis(analyze(hand_made(DIGITS_SWEEP), LR_AND_FROZEN, study_name="digits"))
    factors = {factor["param"]: factor for factor in result["factors"]}
    assert set(factors) == {"lr", "frozen_stages"} and result["other_params"] == []
    frozen = factors["frozen_stages"]
    assert (frozen["named_by"], frozen["among"], frozen["removes_plateau"]) == ("marginal", {}, {"values": [0, 1, 2]})
    counts = (frozen["n_plateau_inside"], frozen["n_inside"], frozen["n_plateau_outside"], frozen["n_outside"])
    assert counts == (1, 10, 5, 6)
    assert frozen["p_adjusted"] < 0.05
    assert factors["lr"]["removes_plateau"] == {"low": 1.9e-3, "high": 9.4e-2}
    assert result["recommendation"]["frozen_stages"] == [0, 2]
    text = render_text(result)
    assert "frozen_stages in {0, 1, 2} on its own: plateau kept in 1 of 10 runs" in text
    assert "No clear effect" not in text and "not a factor" not in text
    suspect = next(s for s in result["usual_suspects"] if s["param"] == "frozen_stages")
    change = next(c for c in result["baseline_comparison"] if c["param"] == "frozen_stages")
    assert suspect["is_factor"] and change["is_factor"] and change["shared"]


def test_the_conditional_only_rule_tests_the_second_cause_only_inside_the_first_ones_region_and_misses_it():
    # The comparison rule of benchmarks/factor_recall.py, which is no package: read from its file.
    benchmark = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "conditional_only.py"))
    params = [{"lr": lr, "frozen_stages": frozen} for lr, frozen, _ in DIGITS_SWEEP]
    kept = [plateau for _, _, plateau in DIGITS_SWEEP]
    conditional_only, others, _ = benchmark["conditional_only_factors"](params, kept, LR_AND_FROZEN)
    assert [factor["param"] for factor in conditional_only] == ["lr"]
    assert [entry["param"] for entry in others] == ["frozen_stages"] and not others[0]["is_factor"]
    marginal_and_conditional, _, _ = find_factors(params, kept, LR_AND_FROZEN)
    assert {factor["param"] for factor in marginal_and_conditional} == {"lr", "frozen_stages"}


def test_a_cause_drowned_by_the_first_is_named_among_the_runs_inside_the_first_ones_region(valid_analysis):
    # Every low-lr run kept the plateau, so frozen_stages barely shows over all runs (its marginal
    # test fails); among the high-lr runs it decides everything.
    low = [(float(lr), index % 3, True) for index, lr in enumerate(np.geomspace(1e-5, 9e-4, 30))]
    high = [(float(lr), [0, 3, 1, 4, 2, 3, 0, 4][index % 8], [0, 3, 1, 4, 2, 3, 0, 4][index % 8] >= 3)
            for index, lr in enumerate(np.geomspace(2e-3, 9e-2, 16))]
    result = valid_analysis(analyze(hand_made(low + high), LR_AND_FROZEN, study_name="drowned"))
    factors = {factor["param"]: factor for factor in result["factors"]}
    assert set(factors) == {"lr", "frozen_stages"}
    frozen = factors["frozen_stages"]
    assert frozen["named_by"] == "conditional"
    assert frozen["among"] == {"lr": factors["lr"]["removes_plateau"]} == frozen["given"]
    assert frozen["among"]["lr"]["low"] == pytest.approx(2e-3)
    assert (frozen["n_population"], frozen["n_plateau_inside"], frozen["n_plateau_outside"]) == (16, 0, 8)
    marginal = next(test for test in frozen["tests"] if test["named_by"] == "marginal")
    assert not marginal["holds"] and marginal["p_adjusted"] > 0.05
    text = render_text(result)
    assert "frozen_stages in {0, 1, 2} among runs with lr in [0.002, 0.09]: plateau kept in 0 of 8" in text


def test_a_parameter_short_of_significance_is_reported_as_such_not_as_without_effect(valid_analysis):
    # Plateaus by frozen stages 0..4: 1/4, 0/3, 1/4, 3/3, 3/4: beyond chance for one test, not
    # once the scheduler's test is counted too.
    plateaus = {0: (1, 4), 1: (0, 3), 2: (1, 4), 3: (3, 3), 4: (3, 4)}
    records = []
    for frozen, (n_kept, n_runs) in plateaus.items():
        for run in range(n_runs):
            params = {"frozen_stages": frozen, "scheduler": ["none", "cosine"][len(records) % 2]}
            curve = history(PLATEAU if run < n_kept else IMPROVING)
            records.append(TrialRecord(len(records), "COMPLETE", params, curve))
    space = {"frozen_stages": IntDistribution(0, 4), "scheduler": CategoricalDistribution(["none", "cosine"])}
    result = valid_analysis(analyze(records, space, study_name="short"))
    assert result["factors"] == []
    frozen = next(entry for entry in result["other_params"] if entry["param"] == "frozen_stages")
    assert frozen["p_permutation"] < 0.05 <= frozen["p_adjusted"]
    text = render_text(result)
    assert ("Not named, short of significance once every test is counted: frozen_stages in {0, 1, 2} "
            "kept the plateau in 2 of 11 runs vs 6 of 7 outside") in text
    assert "No clear effect" not in text


def test_no_parameter_is_both_a_factor_and_listed_without_effect_over_many_sweeps(valid_analysis):
    for seed in range(6):
        records, space = synthetic_records(24 + 8 * seed, seed=seed)
        result = valid_analysis(analyze(records, space, study_name="s"))
        named = {factor["param"] for factor in result["factors"]}
        assert named.isdisjoint(entry["param"] for entry in result["other_params"])
        for entry in result["usual_suspects"] + result["baseline_comparison"]:
            assert entry["is_factor"] == (entry["param"] in named)


@pytest.mark.parametrize("trials", [1, 7, 16, 40, 333])
def test_wilson_interval_matches_scipy(trials):
    for successes in range(trials + 1):
        interval = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(successes, trials) == [round(interval.low, 4), round(interval.high, 4)]


# --- reading a study ----------------------------------------------------------------------------

def test_records_from_study_reads_history_failure_pruned_at_and_the_space(valid_analysis):
    study = optuna.create_study()
    space = {"lr": SPACE["lr"], "scheduler": SPACE["scheduler"]}
    for number in range(4):
        trial = study.ask(space)
        curve = history([2.0, 1.5, 1.4][: number + 1])
        for entry in curve:
            trial.report(entry["val_loss"], entry["epoch"])
        if number == 0:
            trial.set_user_attr("history", curve)
            study.tell(trial, 1.4)
        elif number == 1:
            trial.set_user_attr("history", curve)
            trial.set_user_attr("failure", "nan_loss")
            trial.set_user_attr("pruned_at", 2)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif number == 2:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)  # no history attr: from reported values
    records, distributions = records_from_study(study)
    assert distributions == space
    assert [r.state for r in records] == ["COMPLETE", "PRUNED", "FAIL", "RUNNING"]
    assert records[0].history == history([2.0])
    assert records[0].value == 1.4
    assert (records[1].failure, records[1].pruned_at) == ("nan_loss", 2)
    assert records[2].history == [{"epoch": 1, "val_loss": 2.0}, {"epoch": 2, "val_loss": 1.5},
                                  {"epoch": 3, "val_loss": 1.4}]
    assert records[3].value is None and set(records[3].params) == {"lr", "scheduler"}
    result = valid_analysis(analyze(records, distributions, study_name="s"))
    assert [t["verdict"] for t in result["trials"]] == ["too_short", "diverged", "improving", "improving"]


# --- chance level ----------------------------------------------------------------------------------

def _records_at(level: float, n_classes: int | None):
    records, space = synthetic_records(8, seed=1)
    shifted = [dataclasses.replace(record, n_classes=n_classes, history=[
        {**row, "val_loss": level + 0.01 * (len(record.history) - row["epoch"])} for row in record.history])
        for record in records]
    return shifted, space


def test_a_best_loss_still_at_chance_level_says_the_models_have_not_learned_yet(valid_analysis):
    from sweep.analysis import render_html

    records, space = _records_at(2.28, 10)  # ln 10 = 2.303
    result = valid_analysis(analyze(records, space, study_name="chance"))
    assert result["chance"] == {"n_classes": 10, "loss": 2.3026, "best_val_loss": pytest.approx(2.28),
                                "at_chance": True}
    text = render_text(result)
    assert ("The best validation loss, 2.28, is still at chance level (ln 10 = 2.3, a uniform guess over 10 "
            "classes): the models have not learned yet, so the verdicts below mean little.") in text
    assert 'class="warning chance">The best validation loss, 2.28, is still at chance level' in render_html(
        result, records, space)


@pytest.mark.parametrize("level, n_classes", [(0.9, 10), (2.28, None)])
def test_no_chance_warning_once_the_models_learned_or_where_the_classes_are_unknown(level, n_classes,
                                                                                     valid_analysis):
    records, space = _records_at(level, n_classes)
    result = valid_analysis(analyze(records, space, study_name="chance"))
    assert (result["chance"] or {}).get("at_chance") in (False, None)
    assert (result["chance"] is None) is (n_classes is None)
    assert "chance level" not in render_text(result)
