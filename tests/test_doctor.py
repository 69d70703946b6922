"""`sweep doctor` on the command line: exit codes, text and JSON output, the result stored on the study."""

import json
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from sweep import doctor
from sweep.cli import main

SETUPS = Path(__file__).parent

OWN = ["--model", "resnet18", "--weights", "none", "--data", "synthetic:64", "--image-size", "32",
       "--max-train", "32", "--max-val", "16"]


@pytest.fixture
def in_setups_dir(monkeypatch):
    monkeypatch.chdir(SETUPS)


def run(*args, storage=None):
    env = {"SWEEP_STORAGE": storage} if storage else {}
    return CliRunner().invoke(main, ["doctor", *args], env=env, catch_exceptions=False)


def checks_of(report: dict) -> dict[str, str]:
    return {check["name"]: check["verdict"] for check in report["checks"]}


def test_correct_setup_passes_clean_with_json_and_exit_0(in_setups_dir):
    result = run("--module", "doctor_setups:correct", "--format", "json", "--lr-steps", "30", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # JSON alone on stdout
    assert checks_of(report) == {name: "ok" for name in doctor.ALL_CHECKS}
    lr_range = next(c for c in report["checks"] if c["name"] == "lr_range")
    low, high = lr_range["evidence"]["suggested_lr_range"]
    assert 0 < low < high <= 10


def test_problem_exits_1_with_a_cross_line_and_the_fix(in_setups_dir):
    result = run("--module", "doctor_setups:frozen_bn_drifting", "--quick", "--quiet")
    assert result.exit_code == 1
    assert "✗ frozen_stages: after 3 training steps: BatchNorm running stats of frozen layers drift" in result.stdout
    assert "✓ eval_deterministic" in result.stdout
    assert "fix: keep the BatchNorm of frozen stages in eval mode" in result.stdout


def test_module_with_config_flags_is_refused(in_setups_dir):
    result = run("--module", "doctor_setups:correct", "--model", "resnet18")
    assert result.exit_code == 2
    assert "--model does not apply" in result.output


@pytest.mark.slow
def test_own_config_passes_and_is_stored_on_the_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    # Not created yet: the checks run on the flags' config, nothing is stored.
    result = run("--study", "t", *OWN, "--quick", "--format", "json", storage=storage)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verdict"] != "problem" and report["quick"] is True
    assert {c["name"] for c in report["checks"]} == set(doctor.QUICK_CHECKS)

    result = CliRunner().invoke(main, ["start", "--study", "t", *OWN, "--epochs", "2", "--n-trials", "1",
                                       "--batch-size", "16", "--quiet"], env={"SWEEP_STORAGE": storage})
    assert result.exit_code == 0, result.output
    stored = optuna.load_study(study_name="t", storage=storage).user_attrs["doctor"]
    assert stored["quick"] is True and stored["verdict"] in ("ok", "warning")  # `sweep start` ran the quick checks

    result = run("--study", "t", "--lr-steps", "10", "--quiet", storage=storage)
    assert result.exit_code == 0, result.output
    stored = optuna.load_study(study_name="t", storage=storage).user_attrs["doctor"]
    assert stored["quick"] is False
    assert [c["name"] for c in stored["checks"]] == list(doctor.ALL_CHECKS)

    result = run("--study", "t", "--model", "resnet34", storage=storage)
    assert result.exit_code == 2 and "already holds its config: --model does not apply" in result.output


@pytest.mark.slow
def test_start_stops_before_training_when_the_doctor_finds_a_problem(tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    original = doctor.check_frozen_stages

    def drifting(setup):
        result = original(setup)
        return doctor.CheckResult("frozen_stages", "problem", "BatchNorm running stats of frozen layers drift",
                                  result.evidence, "keep them in eval")

    monkeypatch.setitem(doctor.CHECKS, "frozen_stages", drifting)
    args = ["start", "--study", "t", *OWN, "--epochs", "1", "--n-trials", "1", "--batch-size", "16", "--quiet"]
    result = CliRunner().invoke(main, args, env={"SWEEP_STORAGE": storage})
    assert result.exit_code == 1
    assert "✗ frozen_stages" in result.stderr and "--no-doctor" in result.stderr
    assert "t" not in {s.study_name for s in optuna.get_all_study_summaries(storage)}  # no study, no training

    result = CliRunner().invoke(main, [*args, "--no-doctor"], env={"SWEEP_STORAGE": storage})
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="t", storage=storage)
    assert len(study.trials) == 1 and "doctor" not in study.user_attrs


def test_doctor_never_prints_the_database_password(in_setups_dir, tmp_path):
    storage = "postgresql+psycopg://sweep:s3cret-pw@127.0.0.1:1/sweep"
    result = run("--study", "t", "--module", "doctor_setups:correct", "--quick", storage=storage)
    assert result.exit_code != 0
    assert "s3cret-pw" not in result.output
    assert "***" in result.output
