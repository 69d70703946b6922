"""Next steps as commands: "run more trials" prints the exact `sweep start` that resumes the study with a larger budget
(it runs), a sweep its stop rule ended says so instead of asking for more trials, and the end of a sweep prints the
report, dashboard and export commands."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex

import optuna
from click.testing import CliRunner

from sweep import space
from sweep.cli import main
from sweep.next_steps import start_command
from sweep.study import stored_config
from synthetic_studies import SPACE, store_study, synthetic_records
from test_next_sweep import FIRST

MINE = dataclasses.replace(FIRST, space={**FIRST.space, "lr": space.parse_param("lr", "1.5e-5:0.02"),
                                         "batch_size": space.parse_param("batch_size", "16,64")},
                           baseline={**FIRST.baseline, "lr": 1.2345678e-4, "batch_size": 64})


def invoke(*args: str, storage: str | None = None):
    result = CliRunner().invoke(main, [*args, *(["--storage", storage] if storage else [])])
    assert result.exit_code == 0, result.output
    return result


def resume(command: str, storage: str):
    """The printed command as a user pastes it, without training (--workers 0) or the doctor."""
    args = shlex.split(command)
    assert args[:2] == ["sweep", "start"]
    return invoke(*args[1:], "--workers", "0", "--no-doctor", storage=None if "--storage" in args else storage)


def test_run_more_trials_prints_the_start_command_that_resumes_the_study_with_a_larger_budget(tmp_path):
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    records, _ = synthetic_records(3, seed=0)
    mine = dataclasses.replace(MINE, artifacts=os.environ["SWEEP_ARTIFACTS"])  # the store a resume finds (conftest)
    store_study(records, SPACE, storage, "thin", mine)
    text = invoke("analyze", "--study", "thin", storage=storage).output
    assert "Too little evidence: 3 finished trial(s) could be judged" in text
    lines = text.splitlines()
    head = lines.index("Run more trials, with a larger budget:")
    command = lines[head + 1].strip()
    assert command.startswith(f"sweep start --storage {storage} --study thin ") and "--n-trials 20" in command
    assert "--stop-when stalled --stop-after 4" in command  # a rule that has not stopped the sweep is kept
    resume(command, storage)
    resumed = stored_config(optuna.load_study(study_name="thin", storage=storage))
    assert resumed == dataclasses.replace(mine, n_trials=20)


def test_a_sweep_its_stop_rule_ended_says_so_instead_of_asking_for_more_trials(tmp_path, monkeypatch):
    from sweep.service import finish
    from sweep.stopping import stop_reason
    from test_analysis_stopping import SyntheticObjective, run_here, sweep_study

    url, storage, study, config = sweep_study(tmp_path, n_trials=40, stop_when="stalled", stop_after=2)
    run_here(study, config, storage, SyntheticObjective(config, value=lambda trial: 1.0 + trial.number))
    text = finish(study, config, url)
    assert text.startswith("Stopped before the budget (--stop-when stalled): no new best validation loss in the last 2")
    assert "Run more trials" not in text and "Too little evidence: 3 finished trial(s)" in text
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("The sweep stopped itself (--stop-when stalled)"))
    command = lines[head + 1].strip()
    assert "--stop-when" not in command and "--n-trials 48" in command
    assert lines[-3:] == ["Next", f"  sweep analyze --storage {url} --study stop --format html --out stop-report.html",
                          f"  sweep dashboard --storage {url} --study stop"]  # no checkpoints kept: no export
    monkeypatch.delenv("SWEEP_ARTIFACTS")  # this study was made with no store settled: a resume keeps it so
    resume(command, url)
    assert stop_reason(optuna.load_study(study_name="stop", storage=url)) is None  # the stop is lifted


def test_the_end_of_a_sweep_names_the_report_dashboard_and_export_commands(tmp_path, monkeypatch):
    from sweep.next_steps import after_sweep_lines

    monkeypatch.setenv("SWEEP_STORAGE", "postgresql+psycopg://sweep:secret@db/sweep")
    assert after_sweep_lines("my study", "postgresql+psycopg://sweep:secret@db/sweep", export=False) == [
        "Next", "  sweep analyze --study 'my study' --format html --out 'my study-report.html'",
        "  sweep dashboard --study 'my study'"]
    lines = after_sweep_lines("s", "sqlite:///elsewhere.db", export=True)
    assert lines[1:] == ["  sweep analyze --storage sqlite:///elsewhere.db --study s --format html --out s-report.html",
                         "  sweep dashboard --storage sqlite:///elsewhere.db --study s",
                         "  sweep export --storage sqlite:///elsewhere.db --study s --out s-model"]


class WeightsRecorded:
    """A sweep's objective that records weights for every trial (an id, not a file: only the choice is tested)."""

    def __init__(self, objective):
        self.objective = objective

    def __call__(self, trial):
        from sweep.record import TrialWriter

        value = self.objective(trial)
        TrialWriter(trial).weights(f"weights-{trial.number}", 1, value, 1, "0" * 32)
        return value


def test_export_is_named_only_where_a_trial_without_a_plateau_has_weights(tmp_path, monkeypatch):
    from sweep.service import finish
    from test_analysis_stopping import SyntheticObjective, run_here, sweep_study

    monkeypatch.setattr("test_analysis_stopping.plateau_rule", lambda params: True)  # every run keeps the plateau
    url, storage, study, config = sweep_study(tmp_path, n_trials=3)
    run_here(study, config, storage, WeightsRecorded(SyntheticObjective(config)))
    config = dataclasses.replace(config, checkpoints=True)
    text = finish(study, config, url)
    assert "sweep export" not in text  # it would refuse: no complete trial ended without a plateau
    monkeypatch.setattr("test_analysis_stopping.plateau_rule", lambda params: False)  # no run keeps it
    (tmp_path / "free").mkdir()
    url, storage, study, _ = sweep_study(tmp_path / "free", n_trials=3)
    run_here(study, config, storage, WeightsRecorded(SyntheticObjective(config)))
    assert f"  sweep export --storage {url} --study stop --out stop-model" in finish(study, config, url)


def test_a_study_whose_epochs_cannot_judge_a_run_is_told_to_start_a_new_one_with_enough(tmp_path, caplog):
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    # patience 3: a verdict needs 4 epochs, and these trials train 2
    short = dataclasses.replace(MINE, epochs=2, artifacts=os.environ["SWEEP_ARTIFACTS"])
    records, _ = synthetic_records(8, seed=0, epochs=2)
    store_study(records, SPACE, storage, "short", short)
    result = CliRunner().invoke(main, ["analyze", "--study", "short", "--storage", storage, "--format", "json"])
    assert json.loads(result.output)["short_runs"] == {"epochs": 2, "epochs_to_judge": 4}
    lines = invoke("analyze", "--study", "short", storage=storage).output.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("No run of this study can be judged"))
    assert "train 2 epoch(s) and a verdict needs 4 (patience 3 + 1)" in lines[head]
    assert not any(line.startswith("Run more trials") for line in lines)
    command = lines[head + 1].strip()
    assert command.startswith(f"sweep start --storage {storage} --study short-6-epochs ")  # the default's 6 epochs
    with caplog.at_level("WARNING", logger="sweep"):
        resume(command, storage)
    made = stored_config(optuna.load_study(study_name="short-6-epochs", storage=storage))
    assert made == dataclasses.replace(short, epochs=6, n_trials=short.n_trials + 8)
    assert "too short to judge" not in caplog.text  # the new study can judge its runs
    # the next sweep's config carries epochs that can judge a run too, and says why they differ
    invoke("analyze", "--study", "short", "--emit-config", str(tmp_path / "next.toml"), storage=storage)
    toml = (tmp_path / "next.toml").read_text()
    assert "\nepochs = 6\n" in toml and "# epochs: 6, not the study's 2: a verdict needs at least 4" in toml
    invoke("start", "--study", "next", "--config", str(tmp_path / "next.toml"), "--workers", "0", "--no-doctor",
           storage=storage)
    assert stored_config(optuna.load_study(study_name="next", storage=storage)).epochs == 6
    caplog.clear()
    with caplog.at_level("WARNING", logger="sweep"):
        resume(start_command("short", short, storage, n_trials=short.n_trials, lift_stop=False), storage)
    assert "--epochs 2 is too short to judge a plateau: with --patience 3 a run needs 4 epochs" in caplog.text
