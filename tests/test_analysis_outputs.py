"""Analysis outputs: JSON against its schema, text and HTML from one result, the HTML in a real browser, emitted configs."""

from __future__ import annotations

import copy
import html.parser
import json
import re
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
from browser import console_errors, needs_chromium, page_in_chromium
from synthetic_studies import SPACE, synthetic_records


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

class Tables(html.parser.HTMLParser):
    """Every table of a page by id: header texts, and rows of (text, attributes) per cell, as a browser reads them."""

    def __init__(self, page: str):
        super().__init__()
        self.tables: dict[str, dict] = {}
        self._table = self._cell = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id"), {"headers": [], "rows": []})
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._table is not None:
            self._cell = {"text": "", **attrs, "tag": tag}

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._table is not None and self._row:
            if self._row[0]["tag"] == "th":
                self._table["headers"] = [c["text"] for c in self._row]
            else:
                self._table["rows"].append(self._row)
        elif tag == "table":
            self._table = None


def column(table: dict, header: str) -> list[dict]:
    index = table["headers"].index(header)
    return [row[index] for row in table["rows"]]


def test_html_tables_hold_the_same_data_as_the_result_and_the_text(sweep):
    records, space, result = sweep
    page = render_html(result, records, space)
    tables = Tables(page).tables
    assert "<pre" not in page
    trials = tables["trials-table"]
    assert [int(c["data-sort"]) for c in column(trials, "trial")] == [t["number"] for t in result["trials"]]
    assert [c["text"] for c in column(trials, "verdict")] == [t["verdict"] for t in result["trials"]]
    assert all(c["class"] == f"verdict verdict-{c['text']}" for c in column(trials, "verdict"))
    assert [float(c["data-sort"]) for c in column(trials, "lr")] == [t["params"]["lr"] for t in result["trials"]]
    text = render_text(result)
    factors = tables["factors-table"]
    assert len(factors["rows"]) == len(result["factors"]) == 2
    for row, factor in zip(factors["rows"], result["factors"]):
        region = row[1]["text"]
        assert region.startswith(factor["param"]) and region in text
        assert row[3]["text"].startswith(f"{factor['n_plateau_inside']} of {factor['n_inside']} (")
        assert float(row[6]["data-sort"]) == factor["p_adjusted"]
    assert [row[0]["text"] for row in tables["other-params-table"]["rows"]] == [e["param"] for e in result["other_params"]]
    comparison = tables["baseline-comparison-table"]["rows"]
    assert [row[0]["text"] for row in comparison] == [c["param"] for c in result["baseline_comparison"]]
    assert [row[5]["text"] for row in comparison] == ["yes" if c["shared"] else "no" for c in result["baseline_comparison"]]
    suspects = tables["usual-suspects-table"]["rows"]
    assert [row[8]["text"] for row in suspects] == [s["sentence"] for s in result["usual_suspects"]]
    assert {row[0]["text"]: row[1]["text"] for row in tables["recommendation-table"]["rows"]}.keys() == \
        result["recommendation"].keys()
    assert page.count('class="plotly-graph-div"') >= 5


def test_html_escapes_names_and_values_that_look_like_markup(valid_analysis):
    hostile = "<script>alert('x')</script>&"
    space = {**SPACE, "scheduler": optuna.distributions.CategoricalDistribution(["none", hostile])}
    records, space = synthetic_records(30, seed=3, space=space)
    result = valid_analysis(analyze(records, space, study_name="a<b>&c"))
    page = render_html(result, records, space)
    assert "<script>alert" not in page and "a<b>" not in page
    schedulers = [c["text"] for c in column(Tables(page).tables["trials-table"], "scheduler")]
    assert hostile in schedulers and set(schedulers) == {"none", hostile}


def test_html_is_self_contained(sweep):
    records, space, result = sweep
    page = render_html(result, records, space)
    assert not re.search(r"<(script|link|img)\b[^>]*\b(src|href)=", page)  # nothing fetched: works offline
    assert "Plotly.newPlot" in page


# --- the HTML in a real browser -----------------------------------------------------------------

@pytest.fixture
def report(sweep, tmp_path):
    """The synthetic sweep's HTML report, written to a file."""
    records, space, result = sweep
    path = tmp_path / "report.html"
    path.write_text(render_html(result, records, space), encoding="utf-8")
    return path


@pytest.mark.browser
@needs_chromium
def test_html_opens_in_headless_chromium_without_console_errors(report, tmp_path):
    with page_in_chromium(report) as driver:
        rendered = driver.execute_script(
            "return Array.from(document.querySelectorAll('.js-plotly-plot'))"
            ".map(plot => plot.querySelectorAll('.main-svg').length)"
        )
        errors = console_errors(driver)
        screenshot = tmp_path / "report.png"
        assert driver.save_screenshot(str(screenshot))
    assert errors == []
    assert len(rendered) >= 5 and all(count > 0 for count in rendered), rendered
    assert screenshot.read_bytes().startswith(b"\x89PNG") and screenshot.stat().st_size > 10_000


COLUMN_KEYS = """
const table = document.getElementById(arguments[0]);
const column = Array.from(table.tHead.rows[0].cells).findIndex(th => th.textContent === arguments[1]);
return Array.from(table.tBodies[0].rows).map(row => row.cells[column].dataset.sort ?? row.cells[column].textContent);
"""


@pytest.mark.browser
@needs_chromium
def test_html_trials_table_sorts_on_a_header_click_and_colours_verdicts(sweep, report):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _, _, result = sweep
    with page_in_chromium(report) as driver:
        header = next(th for th in driver.find_elements(By.CSS_SELECTOR, "#trials-table th")
                      if th.text.startswith("best val loss"))
        header.click()
        ascending = driver.execute_script(COLUMN_KEYS, "trials-table", "best val loss")
        header.click()
        descending = driver.execute_script(COLUMN_KEYS, "trials-table", "best val loss")
        scheduler = next(th for th in driver.find_elements(By.CSS_SELECTOR, "#trials-table th")
                         if th.text.startswith("scheduler"))
        scheduler.send_keys(Keys.ENTER)
        by_scheduler = driver.execute_script(COLUMN_KEYS, "trials-table", "scheduler")
        colours = driver.execute_script(
            "return Object.fromEntries(['improving', 'plateau'].map(v => [v, getComputedStyle("
            "document.querySelector('#trials-table td.verdict-' + v)).backgroundColor]))")
        page_width = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        shown = driver.execute_script(
            "return Object.fromEntries(['transitions-table', 'robustness-grid', 'robustness-params'].map(id => "
            "[id, [document.getElementById(id).querySelectorAll('tbody tr').length, "
            "document.getElementById(id).getBoundingClientRect().height > 0]]))")
    losses = sorted(t["best_val_loss"] for t in result["trials"])
    assert [float(key) for key in ascending] == losses
    assert [float(key) for key in descending] == losses[::-1]
    assert by_scheduler == sorted(t["params"]["scheduler"] for t in result["trials"])
    assert colours["improving"] != colours["plateau"]
    assert "rgba(0, 0, 0, 0)" not in colours.values()  # coloured, not transparent
    assert page_width[0] <= page_width[1]  # no horizontal scrollbar on the page
    assert shown == {"transitions-table": [len(result["transitions"]), True], "robustness-grid": [4, True],
                     "robustness-params": [len(result["robustness"]["params"]), True]}


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
