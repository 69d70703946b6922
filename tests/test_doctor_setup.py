"""Building what `sweep doctor` checks: the user's --module (never shadowing our own packages), the sweep's config,
and one-line errors for what cannot be built."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sweep import doctor
from sweep.cli import main
from sweep.config import build_config
from sweep.errors import UsageError

SETUPS = Path(__file__).parent
SWEEP = Path(sys.executable).with_name("sweep")

USER_TRAIN = textwrap.dedent('''
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    def build():
        torch.manual_seed(0)
        labels = torch.arange(64) % 4
        colours = torch.eye(4, 3)[labels][:, :, None, None]
        images = (colours + 0.1 * torch.randn(64, 3, 8, 8) - 0.5) / 0.25
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
        model.pretrained_cfg = {"mean": MEAN, "std": STD, "input_size": (3, 8, 8)}  # makes the doctor read it
        train = DataLoader(TensorDataset(images[:48], labels[:48]), batch_size=16, shuffle=True)
        val = DataLoader(TensorDataset(images[48:], labels[48:]), batch_size=16)
        return model, train, val, torch.optim.SGD(model.parameters(), lr=0.05)
''')


@pytest.fixture
def in_setups_dir(monkeypatch):
    monkeypatch.chdir(SETUPS)


@pytest.mark.parametrize("target, expected", [
    ("nope", "is not MODULE:FUNCTION"),
    ("no_such_module:build", "cannot import 'no_such_module'"),
    ("doctor_setups:missing", "has no function 'missing'"),
    ("doctor_setups:not_a_bundle", "returned int; expected (model, train_loader, val_loader"),
    ("doctor_setups:raises", "raises() raised RuntimeError: no data here"),
    ("models:build", "'models' is one of this tool's own packages"),
])
def test_bad_module_is_a_usage_error(in_setups_dir, target, expected):
    result = CliRunner().invoke(main, ["doctor", "--module", target, "--quick"], catch_exceptions=False)
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_setup_errors_are_usage_errors():
    assert issubclass(doctor.DoctorSetupError, UsageError)


def test_users_own_models_and_data_packages_are_never_imported(tmp_path):
    for package in ("models", "data"):
        (tmp_path / package).mkdir()
        marker = tmp_path / f"{package}-imported"
        (tmp_path / package / "__init__.py").write_text(
            f"open({str(marker)!r}, 'w').close()\n"
            f"create_transfer_model = pretrained_data_config = build_loaders = 'not ours'\n"
            f"raise ImportError('the user folder\\'s {package} package was imported')\n"
        )
    (tmp_path / "mytrain.py").write_text(USER_TRAIN)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([str(SWEEP), "doctor", "--module", "mytrain:build", "--quick", "--quiet"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sweep doctor: --module mytrain:build" in result.stdout
    assert "✓ normalisation" in result.stdout  # the pretrained mean/std came from our models package
    assert not (tmp_path / "models-imported").exists() and not (tmp_path / "data-imported").exists()


def test_run_doctor_needs_exactly_one_source():
    config = build_config(None, {})
    for sources in ({}, {"config": config, "module_target": "doctor_setups:correct"}):
        with pytest.raises(doctor.DoctorSetupError, match="exactly one"):
            doctor.run_doctor(device="cpu", **sources)


def test_run_doctor_on_a_module_returns_the_report(in_setups_dir):
    report = doctor.run_doctor(module_target="doctor_setups:correct", device="cpu", quick=True)
    assert report["source"] == "--module doctor_setups:correct"
    assert [check["name"] for check in report["checks"]] == list(doctor.QUICK_CHECKS)


@pytest.mark.parametrize("overrides, expected", [
    ({"data": "/nonexistent/images"}, "data directory '/nonexistent/images' does not exist"),
    ({"model": "resnet18", "weights": "/tmp/postgresql://sweep:s3cret-pw@db/w.safetensors"}, "not found"),
])
def test_unusable_data_or_weights_is_one_masked_line(overrides, expected):
    config = build_config(None, overrides)
    with pytest.raises(doctor.DoctorSetupError) as caught:
        doctor.run_doctor(config=config, device="cpu", quick=True)
    message = str(caught.value)
    assert expected in message and "\n" not in message and "s3cret-pw" not in message


def test_sweep_setup_is_the_baseline_trial_from_the_one_builder(monkeypatch):
    import sweep.trial

    built = []
    original = sweep.trial.build_trial
    monkeypatch.setattr(sweep.trial, "build_trial", lambda *args, **kw: built.append(args[1]) or original(*args, **kw))
    config = build_config(None, {"model": "resnet18", "weights": "none", "data": "synthetic:40", "max_train": 24,
                                 "max_val": 12})
    setup = doctor.setup_from_config(config, torch.device("cpu"))
    assert built == [config.baseline]
    assert setup.sweep.config is config and setup.sweep.params == config.baseline
    assert setup.optimizer.param_groups[0]["lr"] == config.baseline["lr"]
