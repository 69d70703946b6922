"""Did the next sweep fix it: `sweep analyze --study next --against first` on hand-made studies."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
from click.testing import CliRunner
from optuna.distributions import FloatDistribution

from sweep.analysis import (
    TrialRecord, analyze, compare_studies, json_schema, render_html, render_text, setup_differences,
)
from sweep.cli import main
from sweep.config import SweepConfig
from browser import console_errors, needs_chromium, page_in_chromium
from synthetic_studies import store_study

LR = {"lr": FloatDistribution(1e-5, 1e-1, log=True)}
FLAT = [2.0, 1.5, 1.4, 1.4002, 1.3999, 1.4001, 1.3998, 1.4001]


def falling(to):
    """Improving from 2.0 down to ``to`` at epoch 8."""
    return [2.0 * (to / 2.0) ** (epoch / 7) for epoch in range(8)]


def study_records(curves):
    """(lr, curve) runs as records, the baseline first."""
    return [TrialRecord(number, "COMPLETE", {"lr": lr},
                        [{"epoch": e, "train_loss": v, "val_loss": v} for e, v in enumerate(curve, start=1)],
                        value=min(curve))
            for number, (lr, curve) in enumerate(curves)]


# The first sweep: a plateau at lr 1e-5 (the baseline), most runs stall, four improve to 0.9-1.2.
FIRST = study_records([(1e-5 * 1.2 ** i, FLAT) for i in range(8)] +
                      [(1e-3 * 1.5 ** i, falling(1.2 - 0.1 * i)) for i in range(4)])
# The next sweep, narrowed to the lr that removed it: ten improve, the best to 0.5; two still stall.
NEXT = study_records([(1e-3 * 1.3 ** i, falling(0.5 + 0.05 * i)) for i in range(10)] +
                     [(1e-3, FLAT), (2e-3, FLAT)])


def results():
    first = analyze(FIRST, LR, study_name="first")
    following = analyze(NEXT, LR, study_name="next")
    return first, following


def test_verdict_counts_side_by_side_and_the_new_best_against_the_old(valid_analysis):
    first, following = results()
    comparison = compare_studies(following, first, NEXT, FIRST, [])
    assert comparison["against"] == "first"
    assert comparison["verdict_counts"]["plateau"] == {"this": 2, "against": 8}
    assert comparison["verdict_counts"]["improving"] == {"this": 10, "against": 4}
    assert comparison["plateau_removed"]["this"] == {"n_judged": 12, "n_plateau_removed": 10, "rate": 0.8333}
    best = comparison["best"]
    assert best["against"]["best_val_loss"] == pytest.approx(0.9) and best["this"]["best_val_loss"] == pytest.approx(0.5)
    assert best["beats"] is True
    assert best["improvement"] == pytest.approx(0.4) and best["relative_improvement"] == pytest.approx(0.4 / 0.9)
    assert comparison["baseline_curve"]["number"] == 0 and comparison["baseline_curve"]["val_loss"] == FLAT
    assert [c["number"] for c in comparison["best_curves"]] == [0, 1, 2, 3, 4]  # the five lowest, lowest first
    valid_analysis({**following, "comparison": comparison})


def test_a_next_sweep_that_did_worse_is_said_to_do_worse():
    first, following = results()
    comparison = compare_studies(first, following, FIRST, NEXT, [])  # the other way round
    assert comparison["best"]["beats"] is False and comparison["best"]["improvement"] == pytest.approx(-0.4)
    text = render_text({**first, "comparison": comparison})
    assert "first's best, trial 11 (best val loss 0.9, improving) against next's best, trial 0 (best val loss 0.5, " \
           "improving): does not beat it: worse by 0.4 (80%)" in text


def test_text_and_html_show_the_comparison():
    first, following = results()
    result = {**following, "comparison": compare_studies(following, first, NEXT, FIRST, [])}
    text = render_text(result)
    assert "Against study first (its baseline, trial 0: plateau)" in text
    assert "  plateau      " in text and "plateau removed in 4 of 12 judged runs (33%) in first, 10 of 12 (83%) in next" \
        in text
    assert "beats it by 0.4 (44%)" in text
    page = render_html(result, NEXT, LR)
    assert '<table id="against-verdicts"' in page and '<table id="against-best"' in page
    assert 'id="plot-against"' in page and "first baseline (trial 0)" in page


def test_setup_differences_name_each_setting_that_makes_the_sweeps_incomparable():
    this = SweepConfig(model="resnet18").to_dict()
    earlier = SweepConfig(model="resnet50", data="synthetic:64", n_trials=99).to_dict()
    assert setup_differences(this, earlier) == [
        {"setting": "model", "this": "resnet18", "against": "resnet50"},
        {"setting": "data", "this": "digits", "against": "synthetic:64"},
    ]  # the budget is no setup


# --- the command ----------------------------------------------------------------------------------------

@pytest.fixture
def two_studies(tmp_path):
    storage = f"sqlite:///{tmp_path / 'sweeps.db'}"
    store_study(FIRST, LR, storage, "first", config=SweepConfig(model="resnet18"))
    store_study(NEXT, LR, storage, "next")
    return storage


def analyze_against(storage, *args):
    return CliRunner().invoke(main, ["analyze", "--study", "next", "--storage", storage, *args])


def test_analyze_against_adds_the_comparison_to_the_json_and_warns_about_another_model(two_studies, valid_analysis,
                                                                                       caplog):
    run = analyze_against(two_studies, "--against", "first", "--format", "json")
    assert run.exit_code == 0, run.output
    result = valid_analysis(json.loads(run.stdout))
    assert result["study"] == "next" and result["comparison"]["against"] == "first"
    assert result["comparison"]["differences"] == [{"setting": "model", "this": "resnet50", "against": "resnet18"}]
    assert result["comparison"]["best"]["beats"] is True
    assert "--against first: not the same setup: model resnet50 here, resnet18 there" in caplog.text
    broken = copy.deepcopy(result)
    del broken["comparison"]["best"]["beats"]
    assert not jsonschema.Draft202012Validator(json_schema()).is_valid(broken)


def test_analyze_against_html_and_text(two_studies, tmp_path):
    report = tmp_path / "report.html"
    run = analyze_against(two_studies, "--against", "first", "--format", "html", "--out", str(report))
    assert run.exit_code == 0, run.output
    assert '<section id="against">' in report.read_text()
    run = analyze_against(two_studies, "--against", "first")
    assert "Against study first" in run.stdout and "warning: not the same setup: model resnet50 in next" in run.stdout


@pytest.mark.parametrize(("against", "message"), [
    ("missing", "--against 'missing': no such study in this storage (studies here: first, next)"),
    ("next", "--against 'next' is the study analysed: name the earlier study to compare it with"),
])
def test_against_a_study_that_is_not_there_is_a_usage_error(two_studies, against, message):
    run = analyze_against(two_studies, "--against", against)
    assert run.exit_code == 2
    assert message in run.output and "Traceback" not in run.output


@pytest.mark.browser
@needs_chromium
def test_the_comparison_page_renders_in_chromium(tmp_path):
    first, following = results()
    report = tmp_path / "against.html"
    report.write_text(render_html({**following, "comparison": compare_studies(following, first, NEXT, FIRST, [])},
                                  NEXT, LR), encoding="utf-8")
    with page_in_chromium(report) as driver:
        traces = driver.execute_script("return document.getElementById('plot-against').data.length")
        rows = driver.execute_script("return document.querySelectorAll('#against-verdicts tbody tr').length")
        errors = console_errors(driver)
    assert errors == [] and traces == 6 and rows == 7  # five best curves and the baseline; six verdicts and the share


# --- end to end: two small real sweeps --------------------------------------------------------------

TINY = ["--model", "resnet18", "--weights", "none", "--data", "digits", "--image-size", "32", "--max-train", "48",
        "--max-val", "24", "--epochs", "3", "--n-trials", "3", "--no-doctor", "--quiet"]


@pytest.mark.slow
def test_a_real_sweep_then_the_one_from_its_emitted_config_compared_against_it(tmp_path, valid_analysis):
    from sweep.status import status_text

    storage = f"sqlite:///{tmp_path / 'real.db'}"
    best = tmp_path / "best.toml"

    def sweep(*args):
        run = CliRunner().invoke(main, [*args, "--storage", storage], catch_exceptions=False)
        assert run.exit_code == 0, run.output
        return run

    sweep("start", "--study", "first", *TINY, "--stop-when", "answered")
    assert "--stop-when answered: not yet" in status_text(storage, "first")  # 3 trials cannot settle an answer
    sweep("analyze", "--study", "first", "--emit-config", str(best))
    sweep("start", "--study", "next", "--config", str(best), *TINY)
    result = valid_analysis(json.loads(sweep("analyze", "--study", "next", "--against", "first", "--format",
                                             "json").stdout))
    comparison = result["comparison"]
    assert comparison["against"] == "first" and comparison["differences"] == []
    # every trial of next but a proposal that repeated an earlier one (left untrained)
    assert sum(c["this"] for c in comparison["verdict_counts"].values()) == result["n_trials"] >= 2
    assert comparison["baseline_curve"]["epochs"] == [1, 2, 3]
    assert comparison["best"]["beats"] in (True, False) and comparison["best"]["improvement"] is not None
