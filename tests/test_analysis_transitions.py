"""What replaced the plateau: transition counts per region on hand-made curves, and the recommendation narrowed
to where the runs kept improving."""

from __future__ import annotations

import copy
import tomllib

import jsonschema
import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from sweep.analysis import TrialRecord, analyze, classify_curve, emit_config, json_schema, render_html, render_text
from sweep.analysis.transitions import transition
from browser import needs_chromium, page_in_chromium

IMPROVING = [2.0, 1.6, 1.3, 1.1, 0.95, 0.85, 0.77, 0.7]
PLATEAU = [2.0, 1.5, 1.4, 1.399, 1.401, 1.398, 1.40, 1.399]
# Validation best at epoch 5, then rising while training loss keeps falling.
OVERFITTING = ([2.0, 1.6, 1.3, 1.1, 1.0, 1.02, 1.05, 1.08], [2.0, 1.5, 1.1, 0.8, 0.6, 0.45, 0.35, 0.25])
OSCILLATING = ([2.0, 1.5, 1.2, 1.6, 1.25, 1.65, 1.22, 1.7], [2.0, 1.5, 1.3, 1.4, 1.3, 1.4, 1.3, 1.4])
DIVERGED = [2.0, 1.5, 1.2, 2.5, 5.0, 9.0]
CURVES = {"improving": (IMPROVING, None), "plateau": (PLATEAU, None), "overfitting": OVERFITTING,
          "oscillating": OSCILLATING, "diverged": (DIVERGED, None)}
LR = {"lr": FloatDistribution(1e-5, 1e-1, log=True)}


def history(val_losses, train_losses=None):
    train_losses = train_losses or val_losses
    return [{"epoch": epoch, "train_loss": train, "val_loss": val}
            for epoch, (val, train) in enumerate(zip(val_losses, train_losses), start=1)]


def records(runs):
    """Trial 0 first: (params, verdict the curve is drawn for)."""
    return [TrialRecord(number, "COMPLETE", params, history(*CURVES[verdict]))
            for number, (params, verdict) in enumerate(runs)]


def log_spaced(low, high, n):
    return [low * (high / low) ** (i / (n - 1)) for i in range(n)]


# Inside 3e-4..1e-2: the lower ten learning rates improve (two stall among them), the upper eight overfit from epoch 5.
IMPROVING_THEN_OVERFITTING = ["improving"] * 9 + ["plateau"] + ["improving"] + ["plateau"] + ["overfitting"] * 8


def lr_sweep(inside_verdicts):
    """20 low learning rates that keep the plateau (the baseline first), then 3e-4..1e-2 with the given verdicts."""
    outside = [({"lr": lr}, "plateau") for lr in log_spaced(1e-5, 1e-4, 20)]
    inside = [({"lr": lr}, verdict) for lr, verdict in zip(log_spaced(3e-4, 1e-2, len(inside_verdicts)),
                                                            inside_verdicts)]
    return records(outside + inside)


@pytest.mark.parametrize("verdict", list(CURVES))
def test_the_hand_made_curves_get_the_verdict_they_are_drawn_for(verdict):
    assert classify_curve(history(*CURVES[verdict]), patience=2, min_delta=0.01).verdict == verdict
    if verdict == "overfitting":
        assert classify_curve(history(*OVERFITTING), patience=2, min_delta=0.01).plateau_epoch == 5


def test_transition_counts_what_the_runs_that_left_the_plateau_became():
    trials = [{"verdict": v, "plateau_epoch": e} for v, e in
              [("plateau", 3), ("improving", None), ("overfitting", 4), ("overfitting", 6), ("overfitting", 5),
               ("oscillating", 3), ("diverged", None)]]
    row = transition(trials)
    assert (row["n"], row["n_plateau"], row["n_left_plateau"]) == (7, 1, 6)
    assert row["to"] == {"improving": 1, "overfitting": 3, "oscillating": 1, "diverged": 1}
    assert row["improving_share"] == round(1 / 6, 4)
    assert row["overfit_from"] == {"first": 4, "median": 5, "last": 6}
    assert transition([])["improving_share"] is None and transition([])["overfit_from"] is None


def test_a_region_that_removed_the_plateau_partly_by_overfitting_is_narrowed_to_where_runs_kept_improving(
        valid_analysis, tmp_path):
    result = valid_analysis(analyze(lr_sweep(IMPROVING_THEN_OVERFITTING), LR, study_name="lr"))
    (factor,) = result["factors"]
    assert factor["removes_plateau"] == {"low": pytest.approx(3e-4), "high": pytest.approx(1e-2)}
    rows = {row["scope"]: row for row in result["transitions"]}
    assert (rows["factor"]["n"], rows["factor"]["n_left_plateau"]) == (20, 18)
    assert rows["factor"]["to"] == {"improving": 10, "overfitting": 8, "oscillating": 0, "diverged": 0}
    assert rows["factor"]["overfit_from"] == {"first": 5, "median": 5, "last": 5}
    assert (rows["sweep"]["n"], rows["sweep"]["n_plateau"]) == (39, 21)  # all but the baseline

    basis = result["recommendation_basis"]["lr"]
    last_improving = log_spaced(3e-4, 1e-2, 20)[11]  # the widest of the equally clear regions: one stall at its edge
    assert basis["narrowed"] and basis["test"]["holds"]
    assert basis["region"] == {"low": pytest.approx(3e-4), "high": pytest.approx(last_improving)}
    assert result["recommendation"]["lr"] == pytest.approx([3e-4, last_improving])
    assert rows["recommendation"]["to"]["overfitting"] == 0 and rows["recommendation"]["to"]["improving"] == 10

    text = render_text(result)
    assert ("lr in [0.0003, 0.01] on its own: 18 of 20 runs left the plateau: 10 improving, "
            "8 overfitting from epoch 5 (median)") in text
    assert "narrowed from the factor's region: 10 of 12 runs ended improving there vs 0 of 8" in text
    config, _ = emit_config(result, LR)
    space = tomllib.loads(config)["space"]["lr"]
    low, high = (float(x) for x in space.split(":")[:2])
    assert low <= 3e-4 and last_improving <= high < log_spaced(3e-4, 1e-2, 20)[12]


def test_a_region_whose_overfitting_is_spread_evenly_is_recommended_whole(valid_analysis):
    inside = ["improving", "overfitting"] * 10
    result = valid_analysis(analyze(lr_sweep(inside), LR, study_name="lr"))
    basis = result["recommendation_basis"]["lr"]
    assert not basis["narrowed"] and basis["region"] == basis["factor_region"]
    assert result["recommendation"]["lr"] == pytest.approx([3e-4, 1e-2])
    assert [row["scope"] for row in result["transitions"]] == ["sweep", "factor"]  # nothing narrowed: no extra row


def test_oscillating_and_diverged_runs_are_counted_as_what_replaced_the_plateau(valid_analysis):
    inside = ["improving"] * 8 + ["oscillating"] * 3 + ["diverged"] * 2
    result = valid_analysis(analyze(lr_sweep(inside), LR, study_name="lr"))
    sweep = result["transitions"][0]
    assert sweep["to"] == {"improving": 8, "overfitting": 0, "oscillating": 3, "diverged": 2}
    assert sweep["n"] == sweep["n_plateau"] + sum(sweep["to"].values()) == result["n_judged"] - 1


def test_two_factors_get_a_row_each_and_one_for_the_recommendation_together(valid_analysis):
    space = {**LR, "frozen_stages": IntDistribution(0, 4)}
    runs = []
    for index, lr in enumerate(log_spaced(1e-5, 1e-2, 60)):
        frozen = index % 5
        runs.append(({"lr": lr, "frozen_stages": frozen}, "plateau" if lr < 2e-4 or frozen >= 3 else "improving"))
    result = valid_analysis(analyze(records(runs), space, study_name="two"))
    assert {factor["param"] for factor in result["factors"]} == {"lr", "frozen_stages"}
    scopes = [row["scope"] for row in result["transitions"]]
    assert scopes == ["sweep", "factor", "factor", "recommendation"]
    together = result["transitions"][-1]
    assert set(together["regions"]) == {"lr", "frozen_stages"}
    assert together["n"] < min(row["n"] for row in result["transitions"][1:3])
    assert together["n_plateau"] / together["n"] < 0.1 < result["transitions"][1]["n_plateau"] / result["transitions"][1]["n"]


def test_transitions_in_the_schema_and_in_the_html(valid_analysis):
    result = valid_analysis(analyze(lr_sweep(IMPROVING_THEN_OVERFITTING), LR, study_name="lr"))
    validator = jsonschema.Draft202012Validator(json_schema())
    broken = copy.deepcopy(result)
    del broken["transitions"][1]["to"]
    assert not validator.is_valid(broken)
    broken = copy.deepcopy(result)
    broken["transitions"][0]["scope"] = "everything"
    assert not validator.is_valid(broken)
    page = render_html(result, lr_sweep(IMPROVING_THEN_OVERFITTING), LR)
    assert '<table id="transitions-table"' in page
    assert ('<td>lr in [0.0003, 0.01] on its own</td><td data-sort="20">20</td><td data-sort="2">2</td>'
            '<td data-sort="18">18</td><td data-sort="10" class="verdict-improving">10</td>') in page


def test_too_little_evidence_shows_no_transition_section():
    result = analyze(lr_sweep(["improving"] * 2)[:4], LR, study_name="thin")
    assert result["evidence"] == "insufficient"
    assert "What replaced the plateau" not in render_text(result)


@pytest.mark.browser
@needs_chromium
def test_the_headline_counts_overfitting_apart_and_the_plot_draws_only_runs_that_left_improving(tmp_path):
    records = lr_sweep(IMPROVING_THEN_OVERFITTING)
    result = analyze(records, LR, study_name="lr")
    text = render_text(result)
    assert text.startswith("Study lr: 40 trials, 40 judged; 18 left the plateau: 10 improving, 8 overfitting.\n")
    assert "removed the plateau." not in text and "counted as plateau-free" not in text
    assert "The 8 overfitting run(s) that left the plateau are no fix" in text
    page = tmp_path / "report.html"
    page.write_text(render_html(result, records, LR), encoding="utf-8")
    with page_in_chromium(page) as driver:
        title, names = driver.execute_script(
            "const plot = document.getElementById('plot-curves');"
            "return [plot.layout.title.text, plot.data.map(trace => trace.name)];")
        summary = driver.execute_script("return document.querySelector('p.summary').textContent")
    assert title == "Validation loss: the baseline against the best runs that left the plateau improving"
    assert names[-1] == "baseline" and len(names) == 6
    assert all(name.endswith("(improving)") for name in names[:-1]), names
    assert summary == "Study lr: 40 trials, 40 judged; 18 left the plateau: 10 improving, 8 overfitting."


def test_the_robustness_text_counts_settings_with_too_few_judged_runs_apart_from_those_with_no_factor():
    from test_analysis_robustness import FAST, FLAT, history as plain_history

    # five epochs: too short for a verdict at patience 5, and at patience 3 every run is judged alike
    runs = [(1e-5 * 1.1 ** i, FLAT[:5]) for i in range(15)] + [(1e-3 * 1.1 ** i, FAST[:5]) for i in range(15)]
    records = [TrialRecord(number, "COMPLETE", {"lr": lr}, plain_history(curve), value=min(curve))
               for number, (lr, curve) in enumerate(runs)]
    result = analyze(records, LR, study_name="short")
    text = render_text(result)
    assert "lr: named at 6 of 12 settings: " in text
    assert ("  too few judged runs at 3 of 12 settings: patience 5, min_delta 0.001; patience 5, min_delta 0.01; "
            "patience 5, min_delta 0.05") in text
    assert "  no contrast (all judged runs alike) at 3 of 12 settings: patience 3, min_delta 0.001;" in text
    assert "no factor at" not in text
    page = render_html(result, records, LR)
    assert page.count("<td>too few judged runs</td>") == 3 and "<td>insufficient</td>" not in page
