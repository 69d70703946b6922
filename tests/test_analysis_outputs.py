"""Analysis outputs: JSON against its schema, text and HTML from one result, the HTML in a real browser, emitted configs."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import tempfile
import tomllib

import jsonschema
import optuna
import pytest

from sweep.analysis import (
    TrialRecord,
    analyze,
    emit_config,
    json_schema,
    records_from_study,
    render_html,
    render_text,
)
from synthetic_studies import SPACE, synthetic_records

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def sweep(valid_analysis):
    records, space = synthetic_records(120, seed=0)
    return records, space, valid_analysis(analyze(records, space, study_name="resnet-plateau"))


def validator():
    jsonschema.Draft202012Validator.check_schema(json_schema())
    return jsonschema.Draft202012Validator(json_schema())


def study_with_history(records):
    """A real Optuna study holding the synthetic trials the way the objective records them."""
    study = optuna.create_study(study_name="resnet-plateau")
    for record in records:
        study.add_trial(
            optuna.trial.create_trial(
                params=record.params,
                distributions=SPACE,
                value=record.value if record.state == "COMPLETE" else None,
                state=optuna.trial.TrialState[record.state],
                intermediate_values={e["epoch"]: e["val_loss"] for e in record.history},
                user_attrs={"history": record.history, **({"pruned_at": record.pruned_at} if record.pruned_at else {})},
            )
        )
    return study


# --- JSON ---------------------------------------------------------------------------------------

def test_json_from_a_real_study_validates_against_the_schema(sweep, valid_analysis):
    records, _, _ = sweep
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    read, distributions = records_from_study(study_with_history(records[:60]))
    result = valid_analysis(analyze(read, distributions, study_name="resnet-plateau"))
    assert result["evidence"] == "ok" and result["factors"]
    assert all(factor["named_by"] in ("marginal", "conditional") for factor in result["factors"])


@pytest.mark.parametrize("n_trials", [0, 3, 60])
def test_json_validates_with_thin_or_no_evidence(n_trials, valid_analysis):
    records, space = synthetic_records(n_trials, seed=1)
    valid_analysis(analyze(records, space, study_name="s"))


def test_json_validates_when_every_trial_kept_the_plateau_or_diverged(valid_analysis):
    records, space = synthetic_records(20, seed=2, rule=lambda params: True, flip_rate=0.0)
    records.append(TrialRecord(20, "PRUNED", records[1].params, records[1].history[:2], failure="nan_loss"))
    result = valid_analysis(analyze(records, space, study_name="s"))
    assert result["evidence"] == "no_contrast" and result["factors"] == []
    assert "No judged trial removed the plateau" in render_text(result)


def test_the_schema_rejects_output_missing_a_contract_key(sweep):
    _, _, result = sweep
    for path in (("factors", 0, "removes_plateau"), ("factors", 0, "named_by"), ("baseline", "verdict"),
                 ("recommendation",)):
        broken = copy.deepcopy(result)
        holder = broken
        for key in path[:-1]:
            holder = holder[key]
        del holder[path[-1]]
        assert not validator().is_valid(broken), path


def test_the_schema_rejects_a_factor_listed_among_the_other_params(sweep):
    _, _, result = sweep
    assert result["other_params"]
    broken = copy.deepcopy(result)
    broken["other_params"][0]["is_factor"] = True
    assert not validator().is_valid(broken)
    broken = copy.deepcopy(result)
    broken["factors"][0]["named_by"] = "stepwise"
    assert not validator().is_valid(broken)


# --- text and HTML from the same result ---------------------------------------------------------

def test_text_and_html_come_from_the_same_result(sweep):
    records, space, result = sweep
    text = render_text(result)
    page = render_html(result, records, space)
    import html

    assert html.escape(text) in page  # the HTML carries the very same report
    for factor in result["factors"]:
        assert factor["param"] in text
    assert page.count('class="plotly-graph-div"') >= 5


def test_html_is_self_contained(sweep):
    records, space, result = sweep
    page = render_html(result, records, space)
    assert not re.search(r"<(script|link|img)\b[^>]*\b(src|href)=", page)  # nothing fetched: works offline
    assert "Plotly.newPlot" in page


# --- the HTML in a real browser -----------------------------------------------------------------

def _chromium_missing() -> str | None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        return f"needs Debian's chromium and chromedriver ({', '.join(missing)} missing: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (the project's test extras)"
    return None


@pytest.mark.browser
@pytest.mark.skipif(_chromium_missing() is not None, reason=_chromium_missing() or "")
def test_html_opens_in_headless_chromium_without_console_errors(sweep, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    records, space, result = sweep
    report = tmp_path / "report.html"
    report.write_text(render_html(result, records, space), encoding="utf-8")

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run",
                     "--window-size=1400,2400", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(report.as_uri())
        rendered = driver.execute_script(
            "return Array.from(document.querySelectorAll('.js-plotly-plot'))"
            ".map(plot => plot.querySelectorAll('.main-svg').length)"
        )
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        screenshot = tmp_path / "report.png"
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    assert errors == []
    assert len(rendered) >= 5 and all(count > 0 for count in rendered), rendered
    assert screenshot.read_bytes().startswith(b"\x89PNG") and screenshot.stat().st_size > 10_000


# --- --emit-config ------------------------------------------------------------------------------

def test_emitted_config_is_a_narrowed_space_that_the_sweep_config_loader_accepts(sweep, tmp_path):
    from sweep.config import build_config
    from sweep.space import check_baseline

    _, space, result = sweep
    config_text, params_text = emit_config(result, space)
    path = tmp_path / "best.toml"
    path.write_text(config_text)
    config = build_config(path)
    assert config.space["frozen_stages"] == optuna.distributions.IntDistribution(0, 2)
    lr = config.space["lr"]
    low, high = result["recommendation"]["lr"]
    assert lr.log and lr.low <= low and lr.high >= high and lr.low >= 0.9 * low and lr.high <= 1.1 * high
    assert config.space["dropout"] == space["dropout"]  # not a factor: swept as before
    best = result["best_trial"]
    assert config.baseline == best["params"]
    assert check_baseline(config.baseline, config.space) == []
    fixed = json.loads(params_text)
    assert (fixed["trial"], fixed["params"]) == (best["number"], best["params"])
    assert set(tomllib.loads(config_text)) == {"space", "baseline"}


def test_emitted_config_with_thin_evidence_keeps_the_space(valid_analysis):
    records, space = synthetic_records(3, seed=0)
    result = valid_analysis(analyze(records, space, study_name="thin"))
    config_text, _ = emit_config(result, space)
    document = tomllib.loads(config_text)
    assert document["space"]["frozen_stages"] == "0:4"
    assert document["space"]["scheduler"] == "none,cosine,step,plateau"
    assert "space is unchanged" in config_text
