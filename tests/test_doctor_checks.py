"""Each check on setups of its own: the seeded bug it must find, and correct setups it must leave alone."""

import dataclasses
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sweep import doctor
from sweep.cli import main
from sweep.config import build_config

from doctor_setups import ALSO_FOUND_BY, CORRECT_SETUPS, SEEDED_BUGS

SETUPS = Path(__file__).parent
LR_STEPS = 40

# a timm ResNet-18: a minute of CPU for the full doctor
SLOW_SETUPS = {"frozen_bn_kept_in_loop", "digits_correct", "digits_val_labels_shuffled"}


def marked(names):
    return [pytest.param(name, marks=[pytest.mark.slow] if name in SLOW_SETUPS else []) for name in names]


@pytest.fixture(autouse=True)
def in_setups_dir(monkeypatch):
    monkeypatch.chdir(SETUPS)


def setup_of(name: str) -> doctor.Setup:
    return doctor.setup_from_module(f"doctor_setups:{name}", torch.device("cpu"))


def result_of(report: dict, name: str) -> dict:
    return next(check for check in report["checks"] if check["name"] == name)


@pytest.mark.parametrize("name", marked(sorted(SEEDED_BUGS)))
def test_seeded_bug_is_found_by_its_check(name):
    check, verdict, words = SEEDED_BUGS[name]
    report = doctor.run_checks(setup_of(name), quick=check != "lr_range", lr_steps=LR_STEPS)
    found = result_of(report, check)
    assert (found["verdict"], words in found["message"]) == (verdict, True), found
    assert found["fix"] and "\n" not in found["message"]
    others = {c["name"]: c["verdict"] for c in report["checks"]
              if c["name"] != check and c["name"] not in ALSO_FOUND_BY.get(name, ())}
    assert "problem" not in others.values(), others


@pytest.mark.parametrize("name", marked(CORRECT_SETUPS))
def test_correct_setup_gives_no_problem_and_no_warning(name):
    report = doctor.run_checks(setup_of(name), lr_steps=LR_STEPS)
    assert {c["name"]: c["verdict"] for c in report["checks"]} == {check: "ok" for check in doctor.ALL_CHECKS}, report


@pytest.mark.slow
def test_an_lr_far_above_the_range_test_that_trains_is_no_problem():
    # OneCycleLR at max_lr 0.3 on a random-init ResNet-18: the range test suggests about 0.001:0.01
    setup = setup_of("resnet_onecycle")
    found = doctor.check_lr_range(setup, steps=LR_STEPS)
    assert found.verdict != "problem", found
    if found.verdict == "warning":
        assert found.evidence["own_lr_loss_falls"] is True and "the training loss fell" in found.message


@pytest.mark.slow
def test_frozen_stages_trains_through_the_users_own_loop():
    setup = setup_of("frozen_bn_kept_in_loop")
    assert doctor.check_frozen_stages(setup).verdict == "ok"
    # The same model through the sweep's loop (model.train(), nothing put back in eval): the frozen BN drifts.
    drifting = doctor.check_frozen_stages(dataclasses.replace(setup, train_epoch=None))
    assert drifting.verdict == "problem" and "layer1.0.bn1.running_mean" in drifting.evidence["drifting_buffers"]


def test_checks_put_model_optimizer_and_scheduler_back():
    setup = setup_of("scheduler_per_batch")
    weights = {key: value.clone() for key, value in setup.model.state_dict().items()}
    modes = [module.training for module in setup.model.modules()]
    doctor.run_checks(setup, lr_steps=10)
    assert all(torch.equal(weights[key], value) for key, value in setup.model.state_dict().items())
    assert [module.training for module in setup.model.modules()] == modes
    assert setup.optimizer.param_groups[0]["lr"] == 0.05 and setup.scheduler.last_epoch == 0


def test_a_failing_train_epoch_is_one_problem_line_not_a_traceback():
    result = CliRunner().invoke(main, ["doctor", "--module", "doctor_setups:train_epoch_raises", "--quick", "--quiet"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    failures = [line for line in result.output.splitlines() if line.startswith("✗")]
    assert len(failures) == 1 and "✗ frozen_stages: train_epoch" in failures[0]
    assert "! lr_schedule: could not run: train_epoch raised (see frozen_stages)" in result.output


@pytest.mark.slow
def test_a_sweeps_baseline_lr_far_outside_the_range_is_a_warning():
    config = build_config(None, {"model": "resnet18", "weights": "none", "data": "synthetic:64", "max_train": 32,
                                 "max_val": 16, "baseline": {"lr": 1e-7}})
    report = doctor.run_doctor(config=config, device="cpu", lr_steps=20)
    lr_range = result_of(report, "lr_range")
    assert lr_range["verdict"] == "warning" and "the baseline lr 1e-07 is" in lr_range["message"], lr_range
