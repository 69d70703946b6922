"""One-change confirmation, judging that cannot hide a late cause, what the sweep could not rule out, and the
space-filling share of the sampler: pure parts on hand-made records, the whole chain on simulated sweeps."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from browser import console_errors, needs_chromium, page_in_chromium
from simulated_curves import curve, generator
from sweep.analysis.confirmation import (
    changed_params,
    confirmation_results,
    plan_runs,
    reference_of,
)
from sweep.analysis.judged import judge
from sweep.analysis.open_regions import not_ruled_out, regions_of
from sweep.confirm import confirmation_size
from sweep.record import TrialRecord
from sweep.study_record import baseline_number

SPACE = {
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "frozen_stages": IntDistribution(0, 4),
    "scheduler": CategoricalDistribution(["none", "cosine"]),
}
BASELINE = {"lr": 1e-4, "frozen_stages": 4, "scheduler": "none"}
GOOD = {"lr": 3e-3, "frozen_stages": 0, "scheduler": "cosine"}


def _history(onset: int | None, epochs: int = 6) -> list[dict]:
    """Val loss falling 20 % an epoch, flat from ``onset`` on (None: falling to the end)."""
    rows = []
    for epoch in range(1, epochs + 1):
        level = 2.0 * 0.8 ** (epoch if onset is None else min(epoch, onset))
        rows.append({"epoch": epoch, "train_loss": level * 0.95, "val_loss": level})
    return rows


def _record(number: int, params: dict, onset: int | None, *, cut_at: int | None = None,
            confirmation: dict | None = None, state: str | None = None) -> TrialRecord:
    history = _history(onset)[:cut_at] if cut_at else _history(onset)
    return TrialRecord(number, state or ("PRUNED" if cut_at else "COMPLETE"), dict(params), history,
                       value=min(row["val_loss"] for row in history) if history else None,
                       pruned_at=cut_at, is_baseline=number == 0, confirmation=confirmation)


def test_a_run_cut_while_improving_before_the_latest_plateau_of_the_study_is_not_judged():
    # The baseline stalls from epoch 1; another cause stalls only from epoch 4, so it shows by epoch 6.
    records = [
        _record(0, BASELINE, onset=1),
        _record(1, {**GOOD, "lr": 1e-4}, onset=4),
        _record(2, {**GOOD, "lr": 2e-4}, onset=None, cut_at=3),  # cut at epoch 3 while improving
        _record(3, GOOD, onset=None),
    ]
    trials = {t["number"]: t for t in judge(records, patience=2, min_delta=0.01)}
    assert trials[1]["verdict"] == "plateau" and trials[1]["plateau_epoch"] == 4
    assert not trials[2]["judged"]
    assert "before epoch 6" in trials[2]["not_judged"]
    assert trials[3]["judged"] and trials[3]["plateau_removed"]


def test_a_run_cut_after_the_latest_plateau_showed_is_judged():
    records = [_record(0, BASELINE, onset=1), _record(1, GOOD, onset=None, cut_at=4)]
    trials = {t["number"]: t for t in judge(records, patience=2, min_delta=0.01)}
    assert trials[1]["judged"] and trials[1]["plateau_removed"]


def _judged(records):
    return judge(records, patience=2, min_delta=0.01)


def test_the_reference_is_the_best_complete_improving_search_run():
    records = [
        _record(0, BASELINE, onset=1),
        _record(1, GOOD, onset=None),
        _record(2, {**GOOD, "lr": 1e-3}, onset=None, cut_at=5),  # pruned: not trained to the end
        _record(3, {**GOOD, "lr": 5e-3}, onset=3),
    ]
    assert reference_of(_judged(records))["number"] == 1
    assert reference_of(_judged(records[:1])) is None


def test_one_change_runs_change_one_parameter_each_and_a_second_seed_where_the_budget_holds_it():
    reference = {"number": 7, "params": {**GOOD, "scheduler": "none"}}
    changed = changed_params(reference["params"], BASELINE, SPACE)
    assert changed == ["lr", "frozen_stages"]  # scheduler: already the baseline's
    runs = plan_runs(reference, [(param, BASELINE[param]) for param in changed], slots=10, replicates=2)
    assert [run["confirmation"]["param"] for run in runs] == [None, "lr", "frozen_stages", "lr", "frozen_stages"]
    assert runs[0]["params"] == reference["params"]  # the control: the reference again, unchanged
    for run in runs[1:]:
        changed = {name for name in SPACE if run["params"][name] != reference["params"][name]}
        assert changed == {run["confirmation"]["param"]}
        assert run["params"][run["confirmation"]["param"]] == BASELINE[run["confirmation"]["param"]]
        assert run["confirmation"]["reference"] == 7
    assert [run["confirmation"]["replicate"] for run in runs] == [1, 1, 1, 2, 2]
    # 40 % of the budget for the control and 6 changes: 16 trials give 6 slots (the control and five changes
    # once), 40 give 16 (the control, the changes twice)
    assert confirmation_size(16, 7) == (6, 1)
    assert confirmation_size(40, 7) == (13, 2)
    assert confirmation_size(10, 7) == (4, 1)


def test_confirmation_outcomes_per_parameter():
    tag = lambda param, value, replicate=1: {"reference": 1, "param": param, "value": value,  # noqa: E731
                                             "replicate": replicate}
    space = {**SPACE, "dropout": FloatDistribution(0.0, 0.6), "batch_size": CategoricalDistribution([16, 32])}
    baseline = {**BASELINE, "dropout": 0.5, "batch_size": 32}
    good = {**GOOD, "dropout": 0.1, "batch_size": 32}
    records = [
        _record(0, baseline, onset=1),
        _record(1, good, onset=None),
        _record(8, good, onset=None, confirmation=tag(None, None)),
        _record(2, {**good, "frozen_stages": 4}, onset=1, confirmation=tag("frozen_stages", 4)),
        _record(3, {**good, "frozen_stages": 4}, onset=4, confirmation=tag("frozen_stages", 4, 2)),
        _record(4, {**good, "lr": 1e-4}, onset=None, confirmation=tag("lr", 1e-4)),
        _record(5, {**good, "scheduler": "none"}, onset=1, confirmation=tag("scheduler", "none")),
        _record(6, {**good, "scheduler": "none"}, onset=None, confirmation=tag("scheduler", "none", 2)),
        TrialRecord(7, "WAITING", {**good, "dropout": 0.5}, confirmation=tag("dropout", 0.5)),
    ]
    result = confirmation_results(_judged(records), baseline, space)
    by_param = {entry["param"]: entry for entry in result["params"]}
    assert result["reference"] == 1
    assert by_param["frozen_stages"]["outcome"] == "confirmed"
    assert "from epoch 1/4 in 2 of 2" in by_param["frozen_stages"]["reason"]
    assert by_param["lr"]["outcome"] == "ruled_out"
    assert by_param["scheduler"]["outcome"] == "inconclusive"
    assert by_param["dropout"]["outcome"] == "pending"
    assert by_param["batch_size"]["outcome"] == "ruled_out"  # the reference already has the baseline's value
    assert result["confirmed"] == ["frozen_stages"] and set(result["ruled_out"]) == {"lr", "batch_size"}
    assert result["control"]["outcome"] == "plateau-free"
    # The reference rerun unchanged kept the plateau: it was plateau-free by noise, so nothing is confirmed.
    records[2] = _record(8, good, onset=2, confirmation=tag(None, None))
    unsure = confirmation_results(_judged(records), baseline, space)
    assert unsure["control"]["outcome"] == "kept" and unsure["confirmed"] == []
    assert {entry["param"]: entry["outcome"] for entry in unsure["params"]}["frozen_stages"] == "inconclusive"


def test_not_ruled_out_names_each_value_without_a_plateau_free_run_and_how_its_runs_ended():
    records = [
        _record(0, BASELINE, onset=1),
        _record(1, GOOD, onset=None),
        _record(2, {**GOOD, "frozen_stages": 3}, onset=None, cut_at=1),  # too short to judge
        _record(3, {**GOOD, "frozen_stages": 1, "scheduler": "none", "lr": 2e-2}, onset=None),
        _record(4, {**GOOD, "frozen_stages": 2, "lr": 1e-3}, onset=None),
    ]
    entries = not_ruled_out(_judged(records), SPACE, causes={"frozen_stages": [4]})
    labels = {entry["label"]: entry for entry in entries}
    assert labels["frozen_stages = 4"]["status"] == "cause"
    assert labels["frozen_stages = 4"]["runs"] == "1 run: kept the plateau"
    assert labels["frozen_stages = 3"]["status"] == "open"
    assert labels["frozen_stages = 3"]["n_judged"] == 0 and labels["frozen_stages = 3"]["try_value"] == 3
    assert "frozen_stages = 0" not in labels and "scheduler = none" not in labels
    lowest_lr = regions_of(SPACE["lr"])[0]
    assert math.isclose(lowest_lr["low"], 1e-5) and math.isclose(lowest_lr["high"], 1e-4)
    # the baseline's lr sits on the edge of two ranges; the upper one also holds a plateau-free run: ruled out
    assert [entry["label"] for entry in entries if entry["param"] == "lr"] == ["lr in [1e-05, 0.0001]"]


def test_a_third_of_the_search_trials_come_from_the_sobol_sequence():
    from sweep.config import SweepConfig
    from sweep.sampler import EXPLORE_EVERY, create_sampler

    sampler = create_sampler(SweepConfig(n_trials=9))
    explored = []
    sample_relative = sampler.explore.sample_relative

    def spy(study, trial, search_space):
        explored.append(trial.number)
        return sample_relative(study, trial, search_space)

    sampler.explore.sample_relative = spy
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1) + trial.suggest_int("k", 0, 4), n_trials=9)
    assert EXPLORE_EVERY == 3 and explored == [2, 5, 8]
    xs = sorted(trial.params["x"] for trial in study.trials if trial.number in explored)
    assert len({round(x, 6) for x in xs}) == 3  # Sobol points, not one repeated draw


def test_the_simulated_causes_plateau_from_their_onset():
    gen = generator("tuning", 2, "late")
    rng = np.random.default_rng(0)
    params = {"lr": 3e-3, "batch_size": 32, "dropout": 0.2, "weight_decay": 1e-5, "scheduler": "cosine",
              "frozen_stages": 3}
    record = TrialRecord(1, "COMPLETE", params, curve(gen, params, 6, rng))
    (trial,) = judge([record], patience=2, min_delta=0.01)
    assert trial["verdict"] == "plateau" and trial["plateau_epoch"] == 4  # frozen_stages >= 3: the late cause


def _simulated_sweep(storage, name: str, n_trials: int, seed: int, gen=None, confirm: bool = True):
    """A real sweep (study, sampler, pruner, worker loop, trial steps) with simulated curves in place of training."""
    from simulated_curves import simulated_sweep
    from sweep.config import SweepConfig

    config = SweepConfig(n_trials=n_trials, epochs=6, seed=seed, checkpoints=False, confirm=confirm)
    return simulated_sweep(storage, name, config, gen or generator("tuning", 2, "late"), seed), config


def test_a_one_change_run_is_never_pruned_and_never_taken_for_a_repeat():
    from sweep.record import CONFIRMATION
    from sweep.trial_steps import end_of_epoch, start_trial

    class AlwaysPrune(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    from sweep.space import DEFAULT_BASELINE, default_space

    study = optuna.create_study(pruner=AlwaysPrune())
    space = default_space()
    study.enqueue_trial(DEFAULT_BASELINE)
    study.enqueue_trial(DEFAULT_BASELINE, user_attrs={CONFIRMATION: {"reference": 0, "param": None, "value": None,
                                                                      "replicate": 1}})
    study.enqueue_trial(DEFAULT_BASELINE)

    def objective(trial):
        started = start_trial(trial, space, {"host": "test"})
        for epoch in (1, 2, 3):
            end_of_epoch(trial, started, {"epoch": epoch, "val_loss": 1.0 / epoch}, epochs=3)
        return 1 / 3

    study.optimize(objective, n_trials=3)
    first, control, repeat = study.trials
    assert first.state.name == "PRUNED" and first.user_attrs["pruned_at"] == 1  # the pruner cuts an ordinary trial
    assert control.state.name == "COMPLETE" and len(control.intermediate_values) == 3
    assert repeat.state.name == "PRUNED" and repeat.user_attrs["duplicate_of"] == 0


def test_a_simulated_sweep_confirms_both_causes_and_rules_out_the_rest(valid_analysis):
    from sweep.analysis.report import render_text
    from sweep.study import analyze_study

    study, config = _simulated_sweep(optuna.storages.InMemoryStorage(), "two-causes", 16, seed=3)
    result = valid_analysis(analyze_study(study, config)[0])
    confirmation = result["confirmation"]
    assert confirmation["control"]["outcome"] == "plateau-free"
    assert confirmation["confirmed"] == ["frozen_stages", "weight_decay"]
    assert set(confirmation["ruled_out"]) and not set(confirmation["ruled_out"]) & {"frozen_stages", "weight_decay"}
    tagged = [t for t in result["trials"] if t["confirmation"]]
    assert len(tagged) <= int(0.4 * 16) and all(t["state"] == "COMPLETE" and t["n_epochs"] == 6 for t in tagged)
    assert min(t["number"] for t in tagged) >= 16 - int(0.4 * 16)  # the search goes first
    assert not {f["param"] for f in result["factors"]} - {"frozen_stages", "weight_decay"}
    text = render_text(result)
    assert "frozen_stages = 4: confirmed cause" in text and "weight_decay = 0.001: confirmed cause" in text


@pytest.mark.postgres
def test_workers_on_postgresql_queue_one_plan_between_them(pg_url, tmp_path):
    from tiny_worker import create_study, run_tiny_workers

    create_study(pg_url, "tiny", 10)
    results = run_tiny_workers(pg_url, "tiny", 3, tmp_path)
    assert [result.returncode for result in results] == [0, 0, 0], [r.stdout[-2000:] for r in results]
    trials = optuna.load_study(study_name="tiny", storage=pg_url).trials
    tags = [trial.user_attrs.get("confirmation") for trial in trials]
    planned = [tag for tag in tags if tag]
    assert sum(1 for tag in planned if tag["param"] is None) == 1  # one control: one plan, whichever worker made it
    assert len({tag["reference"] for tag in planned}) == 1
    # The plan's size follows from what the workers' timing left: the reference's changes from the baseline, and
    # the room left when the plan was queued (its first run's number is the number of trials before it).
    reference, baseline = trials[planned[0]["reference"]], trials[baseline_number(trials)]
    changed = changed_params(reference.params, baseline.params, reference.distributions)
    room = 10 - min(trial.number for trial in trials if trial.user_attrs.get("confirmation"))
    assert len(planned) == min(confirmation_size(10, len(changed) + 1)[0], room) >= 2  # 40 % of 10 trials at most
    assert [trial.state.name for trial in trials].count("COMPLETE") == 10 and len(trials) == 10


def test_sweep_confirm_queues_the_changes_asked_for_and_grows_the_budget(tmp_path):
    from click.testing import CliRunner

    from sweep.cli import main
    from sweep.storage import open_storage

    url = f"sqlite:///{tmp_path / 'sim.db'}"
    storage = open_storage(url, heartbeat=False)
    study, config = _simulated_sweep(storage, "sim", 12, seed=1)
    before = len(study.trials)
    runner = CliRunner()
    done = runner.invoke(main, ["confirm", "--study", "sim", "--storage", url, "--workers", "0",
                                "--value", "frozen_stages=3", "--value", "lr=3e-5", "--seeds", "2"])
    assert done.exit_code == 0, done.output
    waiting = [t for t in optuna.load_study(study_name="sim", storage=url).trials[before:]]
    changes = [(t.user_attrs["confirmation"]["param"], t.user_attrs["confirmation"]["value"]) for t in waiting]
    assert sorted(change for change in changes if change[0]) == sorted([("frozen_stages", 3), ("lr", 3e-5)] * 2)
    assert all(t.state.name == "WAITING" for t in waiting)
    assert f"budget now {12 + len(waiting)}" in done.output
    assert optuna.load_study(study_name="sim", storage=url).user_attrs["sweep_config"]["n_trials"] == 12 + len(waiting)

    baseline = runner.invoke(main, ["confirm", "--study", "sim", "--storage", url, "--workers", "0", "--trial", "0"])
    assert baseline.exit_code == 2 and "--trial 0: not a plateau-free run" in baseline.output
    bad = runner.invoke(main, ["confirm", "--study", "sim", "--storage", url, "--value", "nope=1"])
    assert bad.exit_code == 2 and "nope" in bad.output and "Traceback" not in bad.output


def test_the_dashboard_note_of_a_one_change_run_says_what_it_changed():
    from sweep.analysis.curves import classify_curve
    from sweep.dashboard import trial_note

    tag = {"reference": 7, "param": "frozen_stages", "value": 4, "replicate": 2}
    record = _record(9, {**GOOD, "frozen_stages": 4}, onset=1, confirmation=tag)
    note = trial_note(record, classify_curve(record.history, patience=2, min_delta=0.01), "fig")
    assert "- one-change run from trial 7: frozen_stages set to 4 alone, seed 2; never pruned" in note
    control = _record(10, GOOD, onset=None, confirmation={**tag, "param": None, "value": None, "replicate": 1})
    assert "the control, unchanged (another seed)" in trial_note(
        control, classify_curve(control.history, patience=2, min_delta=0.01), "fig")


@pytest.mark.browser
@needs_chromium
def test_the_html_report_shows_the_proof_and_what_is_open_in_chromium(tmp_path, valid_analysis):
    from sweep.analysis import render_html
    from sweep.study import analyze_study

    study, config = _simulated_sweep(optuna.storages.InMemoryStorage(), "two-causes", 16, seed=3)
    result, records, distributions = analyze_study(study, config)
    valid_analysis(result)
    page = tmp_path / "report.html"
    page.write_text(render_html(result, records, distributions), encoding="utf-8")
    with page_in_chromium(page) as driver:
        shown = driver.execute_script(
            "return Object.fromEntries(['confirmation-table', 'not-ruled-out-table'].map(id => [id, "
            "Array.from(document.getElementById(id).tBodies[0].rows).map(row => row.cells[3 * (id === "
            "'confirmation-table')].textContent)]))")
        confirmed = driver.execute_script(
            "return getComputedStyle(document.querySelector('#confirmation-table td.outcome-confirmed'))"
            ".backgroundColor")
        errors = console_errors(driver)
    assert errors == []
    outcomes = {entry["outcome"] for entry in result["confirmation"]["params"]}
    assert len(shown["confirmation-table"]) == len(result["confirmation"]["params"]) and "confirmed cause" in shown[
        "confirmation-table"] and outcomes >= {"confirmed", "ruled_out"}
    assert shown["not-ruled-out-table"] == [entry["label"] for entry in result["not_ruled_out"]]
    assert confirmed not in ("rgba(0, 0, 0, 0)", "")


def test_a_baseline_outside_the_searched_space_is_planned_like_any_other():
    from simulated_curves import simulated_sweep
    from sweep.config import SweepConfig
    from sweep.confirm import due_runs
    from sweep.space import parse_param

    # The baseline's lr (1e-4) lies below the searched range: no search run is near it, and the plan goes on.
    config = SweepConfig(n_trials=8, epochs=6, seed=0, checkpoints=False,
                         space={**SweepConfig().space, "lr": parse_param("lr", "1e-3:1e-1")},
                         baseline={**SweepConfig().baseline, "lr": 1e-4})
    study = simulated_sweep(optuna.storages.InMemoryStorage(), "outside", config, generator("tuning", 1), 0)
    tags = [t.user_attrs["confirmation"] for t in study.trials if "confirmation" in t.user_attrs]
    assert len(tags) == 3 and tags[0]["param"] is None  # 40 % of 8: the control and two changes
    assert due_runs(study, config) == []  # planned once


def test_the_settle_command_names_the_storage_the_study_is_in(tmp_path):
    from sweep.analysis.report import render_text
    from sweep.next_steps import annotate
    from sweep.storage import open_storage
    from sweep.study import analyze_study

    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    study, config = _simulated_sweep(open_storage(url, heartbeat=False), "sim", 12, seed=1)
    result = annotate(analyze_study(study, config)[0], "sim", config, url, None)
    assert [entry for entry in result["not_ruled_out"] if entry["status"] == "open"]  # something to settle
    assert result["settle_command"].startswith(f"sweep confirm --storage {url} --study sim --value ")
    assert f"to settle it: {result['settle_command']}" in render_text(result)


@pytest.mark.slow
def test_a_one_change_run_trains_every_epoch_with_timm_where_the_pruner_cuts_the_same_params(tmp_path):
    # Real parts: timm training through the Objective, the plateau pruner, the worker loop on SQLite. The baseline at
    # chance level stalls from epoch 1, so the pruner cuts it; the same params queued as a one-change run (a control)
    # train to the end and are not taken for a repeat of the baseline.
    from click.testing import CliRunner

    from sweep.cli import main
    from sweep.confirm import queue_runs
    from sweep.storage import open_storage

    url = f"sqlite:///{tmp_path / 'real.db'}"
    setup = ["--model", "resnet18", "--weights", "none", "--data", "synthetic:64", "--image-size", "32",
             "--max-train", "32", "--max-val", "16", "--epochs", "3", "--n-trials", "2", "--batch-size", "16",
             "--pruner", "plateau", "--patience", "1", "--min-delta", "0.5", "--no-checkpoints", "--quiet"]
    created = CliRunner().invoke(main, ["start", "--study", "real", "--storage", url, "--workers", "0",
                                        "--no-doctor", *setup])
    assert created.exit_code == 0, created.output
    study = optuna.load_study(study_name="real", storage=open_storage(url, heartbeat=False))
    baseline = study.trials[0].params or dict(study.user_attrs["sweep_config"]["baseline"])
    queue_runs(study, [{"params": baseline, "confirmation": {"reference": 0, "param": None, "value": None,
                                                             "replicate": 1}}])
    ran = CliRunner().invoke(main, ["worker", "--study", "real", "--storage", url, "--device", "cpu", "--quiet"])
    assert ran.exit_code == 0, ran.output
    first, control = optuna.load_study(study_name="real", storage=url).trials
    assert first.state.name == "PRUNED" and first.user_attrs["pruned_at"] < 3  # the pruner cut the baseline
    assert control.state.name == "COMPLETE" and len(control.user_attrs["history"]) == 3
    assert "duplicate_of" not in control.user_attrs and control.params == first.params


def test_no_confirm_command_is_offered_before_a_plateau_free_run_exists(tmp_path):
    from click.testing import CliRunner

    from simulated_curves import Cause, Generator, simulated_sweep
    from sweep.analysis import render_html
    from sweep.analysis.report import render_text
    from sweep.cli import main
    from sweep.config import SweepConfig
    from sweep.next_steps import annotate
    from sweep.storage import open_storage
    from sweep.study import analyze_study

    url = f"sqlite:///{tmp_path / 'stalled.db'}"
    every_run_stalls = Generator("stalled", (Cause("lr", lambda value: True, 2, "any lr"),))
    for name, epochs in (("stalled", 6), ("short", 2)):  # judged runs, all with a plateau; no run judged at all
        config = SweepConfig(n_trials=8, epochs=epochs, seed=0, checkpoints=False)
        study = simulated_sweep(open_storage(url, heartbeat=False), name, config, every_run_stalls, 0)
        result, records, distributions = analyze_study(study, config)
        result = annotate(result, name, config, url, None)
        text = render_text(result)
        page = render_html(result, records, distributions)
        assert result["settle_command"] is None and "sweep confirm" not in text and "sweep confirm" not in page
        # the command `sweep confirm` refuses, as the report says
        refused = CliRunner().invoke(main, ["confirm", "--storage", url, "--study", name, "--value", "lr=0.001"])
        assert refused.exit_code == 2 and "no plateau-free run" in refused.output
        # and what it says to do runs more trials that can be judged: this study's, or a new one with enough epochs
        assert (f"run more trials first (sweep start --storage {url} --study stalled " if name == "stalled" else
                f"start a new study first (sweep start --storage {url} --study short-6-epochs ") in refused.output
        if name == "stalled":
            assert result["n_judged"] > 0 and "Not ruled out (no judged run there removed the plateau)" in text
            assert "to settle it: one-change runs start from a plateau-free run trained to the end: run more trials " \
                   "first" in text
        else:  # every value is open: one line, not a list of them all
            assert result["n_judged"] == 0 and "lr in [" not in text and "not-ruled-out-table" not in page
            assert "Not ruled out: any value yet (no run could be judged, so none has removed the plateau)" in text
