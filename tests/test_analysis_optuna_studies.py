"""The analysis of studies that `sweep start` did not make: plain Optuna code that calls ``trial.report``."""

from __future__ import annotations

import math

import optuna
import pytest

from sweep.analysis import (
    NotAnalyzable, TrialRecord, analyze, analyze_curves, analyze_study, classify_curve, read_study, render_html,
    render_text,
)

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


# A plain Optuna user's training, simulated: lr below 1e-3 stalls, the optimizer's momentum exists only for sgd.
def stalls(params: dict) -> bool:
    return params["learning_rate"] < 1e-3


def plain_objective(trial: optuna.Trial, *, every: int = 1, maximize: bool = False, n_reports: int = 10) -> float:
    optimizer = trial.suggest_categorical("optimizer", ["sgd", "adam"])
    learning_rate = trial.suggest_float("learning_rate", 1e-5, 1e-1, log=True)
    if optimizer == "sgd":
        trial.suggest_float("momentum", 0.0, 0.99)
    trial.suggest_int("width", 8, 64)
    floor, speed = (0.7, 1.5) if stalls(trial.params) else (0.1, 0.3)
    train_loss = []
    for report in range(1, n_reports + 1):
        loss = 2.0 * (floor + (1 - floor) * math.exp(-speed * report)) * (1 + 0.002 * math.sin(trial.number + report))
        value = 1 - loss / 2 if maximize else loss
        train_loss.append(0.9 * loss)
        trial.set_user_attr("train_loss", train_loss)
        trial.report(value, report * every)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def plain_study(sampler, *, n_trials: int = 30, pruner=None, maximize: bool = False, every: int = 1,
                storage=None, name: str | None = None) -> optuna.Study:
    study = optuna.create_study(sampler=sampler, pruner=pruner or optuna.pruners.NopPruner(), storage=storage,
                                study_name=name, direction="maximize" if maximize else "minimize")
    study.optimize(lambda trial: plain_objective(trial, every=every, maximize=maximize), n_trials=n_trials)
    return study


SAMPLERS = {
    "tpe": lambda: optuna.samplers.TPESampler(seed=0),
    "random": lambda: optuna.samplers.RandomSampler(seed=1),
    "qmc": lambda: optuna.samplers.QMCSampler(seed=2),
}


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_a_plain_optuna_study_names_the_parameter_that_stalls_it(sampler, valid_analysis):
    study = plain_study(SAMPLERS[sampler]())
    result = valid_analysis(analyze_study(study))
    assert result["evidence"] == "ok"
    assert [factor["param"] for factor in result["factors"]] == ["learning_rate"]
    for trial in result["trials"]:
        assert trial["plateau_removed"] == (not stalls(trial["params"])), trial
    assert result["baseline"]["number"] == 0 and result["source"]["baseline"] == "the first complete trial"
    assert result["source"] == {"kind": "optuna", "curve": "reported values", "direction": "minimize",
                                "negated": False, "train_loss_attr": None, "baseline": "the first complete trial"}
    assert result["confirmation"] is None
    assert result["usual_suspects"] == []  # none of the sweep's names (lr, frozen_stages, ...) is in this study
    assert {trial["params"].get("momentum") is None for trial in result["trials"]} == {True, False}



def test_pruned_trials_are_read_with_the_step_they_stopped_at(valid_analysis):
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)
    study = plain_study(optuna.samplers.TPESampler(seed=3), pruner=pruner, n_trials=40)
    pruned = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.PRUNED]
    assert pruned
    result = valid_analysis(analyze_study(study))
    by_number = {trial["number"]: trial for trial in result["trials"]}
    for trial in pruned:
        assert by_number[trial.number]["state"] == "PRUNED"
        assert by_number[trial.number]["pruned_at"] == max(trial.intermediate_values)
    assert [factor["param"] for factor in result["factors"]] == ["learning_rate"]


def test_steps_every_100_batches_keep_their_numbers_and_the_same_answer(valid_analysis):
    by_epoch = valid_analysis(analyze_study(plain_study(optuna.samplers.RandomSampler(seed=4))))
    by_batches = valid_analysis(analyze_study(plain_study(optuna.samplers.RandomSampler(seed=4), every=100)))
    for epoch_trial, batch_trial in zip(by_epoch["trials"], by_batches["trials"]):
        assert batch_trial["verdict"] == epoch_trial["verdict"]
        assert batch_trial["plateau_epoch"] == (None if epoch_trial["plateau_epoch"] is None
                                                else 100 * epoch_trial["plateau_epoch"])
    assert by_batches["factors"][0]["removes_plateau"] == by_epoch["factors"][0]["removes_plateau"]


def test_a_maximized_accuracy_is_negated_and_the_report_says_so(valid_analysis):
    study = plain_study(optuna.samplers.TPESampler(seed=5), maximize=True)
    result = valid_analysis(analyze_study(study))
    assert result["source"]["direction"] == "maximize" and result["source"]["negated"]
    assert [factor["param"] for factor in result["factors"]] == ["learning_rate"]
    for trial in result["trials"]:
        assert trial["plateau_removed"] == (not stalls(trial["params"]))
    best = result["best_trial"]
    assert best["best_val_loss"] == pytest.approx(-study.best_value)
    assert not stalls(best["params"])
    assert "each value is negated" in render_text(result)


def test_a_categorical_cause_beside_a_conditional_parameter(valid_analysis):
    """scheduler "none" stalls; step_size exists only where the scheduler is "step"."""
    def objective(trial: optuna.Trial) -> float:
        scheduler = trial.suggest_categorical("scheduler", ["none", "cosine", "step"])
        if scheduler == "step":
            trial.suggest_int("step_size", 1, 5)
        trial.suggest_float("dropout", 0.0, 0.6)
        floor, speed = (0.7, 1.5) if scheduler == "none" else (0.1, 0.3)
        for epoch in range(1, 9):
            loss = 2.0 * (floor + (1 - floor) * math.exp(-speed * epoch))
            trial.report(loss, epoch)
        return loss

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=6))
    study.optimize(objective, n_trials=30)
    result = valid_analysis(analyze_study(study))
    assert [factor["param"] for factor in result["factors"]] == ["scheduler"]
    assert "none" not in result["factors"][0]["removes_plateau"]["values"]
    assert {entry["param"] for entry in result["other_params"]} <= {"step_size", "dropout"}
    # The sweep's own suspects show where the study has their parameter, and only there.
    assert {entry["param"] for entry in result["usual_suspects"]} == {"scheduler", "dropout"}


def test_the_baseline_is_the_trial_named_or_the_first_complete_one(valid_analysis):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    study.enqueue_trial({"optimizer": "adam", "learning_rate": 1e-4, "width": 32})

    def failing_first(trial: optuna.Trial) -> float:
        if trial.number == 0:
            trial.suggest_float("learning_rate", 1e-5, 1e-1, log=True)
            trial.report(2.0, 1)
            raise RuntimeError("out of memory")
        return plain_objective(trial)

    study.optimize(failing_first, n_trials=12, catch=(RuntimeError,))
    assert valid_analysis(analyze_study(study))["baseline"]["number"] == 1
    named = valid_analysis(analyze_study(study, baseline=5))
    assert named["baseline"]["number"] == 5 and named["source"]["baseline"] == "named"
    assert named["settings"]["baseline_number"] == 5
    with pytest.raises(NotAnalyzable, match="has no trial 12") as error:
        analyze_study(study, baseline=12)
    assert error.value.argument == "baseline"


@pytest.mark.parametrize("as_mapping", [False, True])
def test_the_training_loss_from_a_user_attr_tells_overfitting_from_a_plateau(as_mapping):
    """Validation stalls while training keeps falling: overfitting, seen only with the training loss."""
    study = optuna.create_study()
    for number in range(3):
        trial = study.ask({"dropout": optuna.distributions.FloatDistribution(0.0, 0.6)})
        val_loss = [2.0, 1.2, 1.0, 0.99, 0.99, 1.0, 1.0]
        train_loss = [2.0 * 0.7 ** step for step in range(1, 8)]
        for step, value in enumerate(val_loss, start=1):
            trial.report(value, step * 50)
        trial.set_user_attr("train", {str(50 * step): v for step, v in enumerate(train_loss, start=1)}
                            if as_mapping else train_loss)
        study.tell(trial, val_loss[-1])
    without = read_study(study)
    with_train = read_study(study, train_loss_attr="train")
    assert with_train.records[0].history[2] == {"epoch": 150, "val_loss": 1.0, "train_loss": train_loss[2]}
    verdicts = [classify_curve(record.history, patience=2, min_delta=0.01).verdict for record in with_train.records]
    assert verdicts == ["overfitting"] * 3
    assert [classify_curve(r.history, patience=2, min_delta=0.01).verdict for r in without.records] == ["plateau"] * 3


def test_a_study_the_analysis_cannot_read_is_refused_in_one_line():
    two = optuna.create_study(directions=["minimize", "maximize"])
    two.optimize(lambda trial: (trial.suggest_float("x", 0, 1), 1.0), n_trials=2)
    with pytest.raises(NotAnalyzable, match="has 2 objectives"):
        analyze_study(two)
    with pytest.raises(NotAnalyzable, match="has no trials yet"):
        analyze_study(optuna.create_study())
    unreported = optuna.create_study()
    unreported.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    with pytest.raises(NotAnalyzable, match=r"trial.report\(value, step\)"):
        analyze_study(unreported)
    study = plain_study(optuna.samplers.RandomSampler(seed=8), n_trials=3)
    with pytest.raises(NotAnalyzable, match="has a user attr 'train_los'") as error:
        analyze_study(study, train_loss_attr="train_los")
    assert error.value.argument == "train_loss_attr"
    study.trials[0].user_attrs  # a scalar where a curve is expected
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=1.0, intermediate_values={1: 1.0},
                                              user_attrs={"train_loss": 0.5}))
    with pytest.raises(NotAnalyzable, match="is a float"):
        analyze_study(study, train_loss_attr="train_loss")


def test_reports_of_a_plain_study_say_how_it_was_read(valid_analysis):
    study = plain_study(optuna.samplers.RandomSampler(seed=9), n_trials=16, every=100)
    curves = read_study(study, train_loss_attr="train_loss")
    result = valid_analysis(analyze_curves(curves, study_name=study.study_name, patience=3, min_delta=0.02))
    assert result["settings"]["patience"] == 3 and result["settings"]["min_delta"] == 0.02
    text = render_text(result)
    assert "patience 3 counts reports" in text and "training loss from user attr 'train_loss'" in text
    page = render_html(result, curves.records, curves.distributions)
    assert "patience 3 counts reports" in page and "sweep confirm" not in page


def test_what_is_left_open_is_settled_by_enqueued_trials_not_by_sweep_confirm():
    from sweep.analysis.report_confirmation import settle_command

    open_lr = {"param": "lr", "try_value": 0.001, "status": "open"}
    result = {"study": "mine", "source": {"kind": "optuna"}, "best_trial": {"number": 4}, "baseline": {"number": 0},
              "not_ruled_out": [{"param": "optimizer", "try_value": "sgd", "status": "open"}]}
    command = settle_command(result)
    assert command == "study.enqueue_trial({**study.trials[4].params, 'optimizer': 'sgd'}); then study.optimize(...)"
    free = {"number": 3, "judged": True, "state": "COMPLETE", "verdict": "improving", "best_val_loss": 0.4}
    ours = {"study": "mine", "trials": [free], "not_ruled_out": [open_lr]}
    assert settle_command(ours) == "sweep confirm --study mine --value lr=0.001"
    assert settle_command({**ours, "not_ruled_out": [{**open_lr, "status": "cause"}]}) is None
    # a sweep's own study without a plateau-free run to start from: `sweep confirm` would refuse
    assert settle_command({**ours, "trials": [{**free, "verdict": "plateau"}]}) is None


def test_the_defaults_are_the_sweeps():
    import inspect

    from sweep.config import SweepConfig

    defaults = inspect.signature(analyze_study).parameters
    assert (defaults["patience"].default, defaults["min_delta"].default) == (SweepConfig.patience,
                                                                              SweepConfig.min_delta)


def test_the_public_api_never_imports_torch():
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys
        import optuna
        from sweep.analysis import analyze_study, render_text
        study = optuna.create_study()
        for number in range(8):
            trial = study.ask()
            lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
            for step in range(1, 7):
                trial.report(1.0 / step if lr > 1e-3 else 1.0 + 0.5 ** step, step)
            study.tell(trial, 1.0)
        render_text(analyze_study(study))
        print(sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "torchvision", "timm")))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]"


def analyze_command(*args: str, storage: str):
    from click.testing import CliRunner

    from sweep.cli import main

    return CliRunner().invoke(main, ["analyze", "--storage", storage, *args])


def test_sweep_analyze_reads_a_study_that_sweep_start_did_not_make(storage_url, tmp_path, valid_analysis):
    import json

    plain_study(optuna.samplers.TPESampler(seed=10), n_trials=16, every=100, storage=storage_url, name="theirs")
    run = analyze_command("--study", "theirs", "--format", "json", "--train-loss-attr", "train_loss",
                          "--baseline-trial", "2", "--patience", "3", storage=storage_url)
    assert run.exit_code == 0, run.output
    result = valid_analysis(json.loads(run.stdout))
    assert result["baseline"]["number"] == 2 and result["settings"]["patience"] == 3
    assert result["source"]["train_loss_attr"] == "train_loss" and result["settings"]["min_delta"] == 0.01
    assert [factor["param"] for factor in result["factors"]] == ["learning_rate"]
    text = analyze_command("--study", "theirs", storage=storage_url)
    assert text.exit_code == 0 and "the values each trial reported" in text.output
    report = tmp_path / "theirs.html"
    page = analyze_command("--study", "theirs", "--format", "html", "--out", str(report), storage=storage_url)
    assert page.exit_code == 0, page.output
    assert "patience 2 counts reports" in report.read_text()


@pytest.mark.parametrize("args, message", [
    (["--baseline-trial", "99"], "--baseline-trial 99: study 'theirs' has no trial 99 (its trials: 0 to 5)"),
    (["--train-loss-attr", "loss"], "--train-loss-attr loss: no trial of study 'theirs' has a user attr 'loss'"),
    (["--emit-config", "next.toml"], "--emit-config works on sweeps made by `sweep start`; study 'theirs' was not"),
    (["--against", "other"], "--against works on sweeps made by `sweep start`"),
])
def test_what_a_plain_study_cannot_do_is_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    plain_study(optuna.samplers.RandomSampler(seed=11), n_trials=6, storage=storage, name="theirs")
    run = analyze_command("--study", "theirs", *args, storage=storage)
    assert run.exit_code == 2, run.output
    assert message in " ".join(run.output.split()) and "Traceback" not in run.output


def test_a_multi_objective_study_is_refused_in_one_line(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="two", storage=storage, directions=["minimize", "maximize"])
    study.optimize(lambda trial: (trial.suggest_float("x", 0, 1), 1.0), n_trials=2)
    run = analyze_command("--study", "two", storage=storage)
    assert run.exit_code == 2 and "study 'two' has 2 objectives" in run.output


def test_on_a_sweeps_own_study_the_baseline_can_be_named_and_the_training_loss_is_its_own(tmp_path):
    import json

    from sweep.config import SweepConfig
    from sweep.storage import open_storage
    from sweep.study import create_or_resume

    storage = f"sqlite:///{tmp_path / 's.db'}"
    study, _ = create_or_resume(open_storage(storage), "ours", SweepConfig(n_trials=3))
    for _ in range(3):
        trial = study.ask()
        trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        trial.set_user_attr("history", [{"epoch": e, "train_loss": 1.0, "val_loss": 1.0 / e} for e in (1, 2, 3, 4)])
        study.tell(trial, 0.25)
    run = analyze_command("--study", "ours", "--format", "json", "--baseline-trial", "2", storage=storage)
    assert run.exit_code == 0, run.output
    result = json.loads(run.stdout)
    assert result["baseline"]["number"] == 2 and "source" not in result
    run = analyze_command("--study", "ours", "--baseline-trial", "7", storage=storage)
    assert run.exit_code == 2 and "--baseline-trial 7: no such trial in study 'ours'" in run.output
    run = analyze_command("--study", "ours", "--train-loss-attr", "train_loss", storage=storage)
    assert run.exit_code == 2 and "records each epoch's training loss itself" in run.output


def test_the_dashboard_notes_of_a_plain_study(tmp_path, monkeypatch):
    """`sweep dashboard` on a study that `sweep start` did not make: each trial's verdict note and curves (the
    maximized values shown negated, as judged), the analysis in the study note, no doctor section."""
    import json

    import optuna_dashboard
    from click.testing import CliRunner

    import sweep.dashboard
    from sweep.cli import main

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = plain_study(optuna.samplers.RandomSampler(seed=12), n_trials=8, maximize=True, every=100,
                        storage=storage, name="theirs")
    monkeypatch.setattr(sweep.dashboard, "serve", lambda *args, **kwargs: None)
    run = CliRunner().invoke(main, ["dashboard", "--study", "theirs", "--storage", storage, "--port", "0"])
    assert run.exit_code == 0, run.output
    result = analyze_study(study)
    attrs = study._storage.get_study_system_attrs(study._study_id)
    for trial in result["trials"]:
        frozen = study.trials[trial["number"]]
        note = optuna_dashboard.get_note(sweep.dashboard._TrialRef(study, frozen._trial_id))
        assert f"## Trial {trial['number']}: verdict **{trial['verdict']}**" in note
        figure = json.loads("".join(value for key, value in sorted(attrs.items())
                                    if key.startswith(f"dashboard:plot_data:trial-{trial['number']}-curves:")))
        steps = sorted(frozen.intermediate_values)
        assert figure["data"][-1]["x"] == steps
        assert figure["data"][-1]["y"] == [-frozen.intermediate_values[step] for step in steps]
    study_note = optuna_dashboard.get_note(study)
    assert "Study theirs: 8 trials" in study_note and "each value is negated" in study_note
    assert "sweep doctor" not in study_note
    assert sweep.dashboard.write_notes(study) == 0  # every trial has its note already; the study note is redone


@pytest.mark.slow
def test_a_study_made_by_a_plain_optuna_and_timm_script(tmp_path, valid_analysis):
    """The user's own script (tests/plain_optuna_timm.py) trains tiny timm ResNets; `sweep analyze` reads its study."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    script = Path(__file__).with_name("plain_optuna_timm.py")
    made = subprocess.run([sys.executable, str(script), storage, "timmed", "10"], capture_output=True, text=True,
                          timeout=900)
    assert made.returncode == 0, made.stderr
    run = analyze_command("--study", "timmed", "--format", "json", "--train-loss-attr", "train_loss",
                          storage=storage)
    assert run.exit_code == 0, run.output
    result = valid_analysis(json.loads(run.stdout))
    assert result["n_trials"] == 10 and result["baseline"]["params"] == {"lr": 1e-6, "drop_rate": 0.2}
    assert all(trial["n_epochs"] == 7 and trial["state"] == "COMPLETE" for trial in result["trials"])
    # A learning rate near 1e-6 barely moves the weights: those runs stall, the best run has a real one.
    stalled = [trial for trial in result["trials"] if trial["verdict"] == "plateau"]
    assert stalled and all(trial["params"]["lr"] < 1e-5 for trial in stalled)
    assert result["best_trial"]["plateau_removed"] and result["best_trial"]["params"]["lr"] > 1e-3
    assert [entry["name"] for entry in result["usual_suspects"]] == ["learning rate too low",
                                                                     "learning rate too high"]
    assert all(trial["evidence"]["train_loss_change"] is not None for trial in result["trials"])  # from the attr


def test_the_readme_example_runs_inside_a_users_script(valid_analysis):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Any Optuna study"):]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(example.strip().splitlines()) <= 5
    namespace = {"study": plain_study(optuna.samplers.RandomSampler(seed=13), n_trials=12)}
    exec(example, namespace)
    assert valid_analysis(namespace["result"])["factors"][0]["param"] == "learning_rate"


def test_a_conditional_parameter_is_settled_from_a_trial_where_it_exists(valid_analysis):
    """lr_sgd exists only where the optimizer is sgd, lr_adam only for adam: a one-change run of lr_adam set on an sgd
    trial would never be read by the objective, so it starts from the best adam trial."""
    from sweep.analysis.report_confirmation import settle_command

    def objective(trial: optuna.Trial) -> float:
        optimizer = trial.suggest_categorical("optimizer", ["sgd", "adam"])
        lr = trial.suggest_float(f"lr_{optimizer}", 1e-4, 1e-1, log=True)
        loss = 1.0
        for step in range(8):
            loss *= 0.7 if lr > 1e-3 else 0.999  # a low learning rate stalls, whichever optimizer has it
            trial.report(loss, step)
        return loss

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=16)
    result = valid_analysis(analyze_study(study))
    opened = {entry["param"] for entry in result["not_ruled_out"] if entry["status"] == "open"}
    assert opened == {"lr_sgd", "lr_adam"}  # the low ranges of both kept the plateau, too few runs to name them
    runs = settle_command(result).split("; ")[:-1]
    for run in runs:
        start = int(run.split("study.trials[")[1].split("]")[0])
        param = run.split(".params, '")[1].split("'")[0]
        assert param in study.trials[start].params, run  # the trial the run starts from has the parameter
        assert study.trials[start].params["optimizer"] == param.removeprefix("lr_")
        assert next(t for t in result["trials"] if t["number"] == start)["verdict"] == "improving"
