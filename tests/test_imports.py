"""What a command imports: the reading commands stay light (no torch), and no command takes a user's own
``models``/``data`` packages from the working directory in place of ours."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

READERS = textwrap.dedent("""
    import sys
    from click.testing import CliRunner
    import sweep.dashboard
    from sweep.cli import main
    from sweep.config import SweepConfig
    from sweep.storage import open_storage
    from sweep.study import create_or_resume

    url = sys.argv[1]
    study, _ = create_or_resume(open_storage(url), "light", SweepConfig(n_trials=2))
    trial = study.ask()
    trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    trial.set_user_attr("history", [{"epoch": e, "train_loss": 1.0, "val_loss": 1.0, "val_acc": 0.1, "lr": 0.1,
                                     "seconds": 1.0} for e in (1, 2, 3, 4)])
    study.tell(trial, 1.0)
    sweep.dashboard.serve = lambda *args, **kwargs: None  # everything up to serving, without blocking
    for command in (["status"], ["analyze", "--format", "json"], ["dashboard", "--port", "0"]):
        result = CliRunner().invoke(main, [command[0], "--study", "light", "--storage", url, *command[1:]])
        assert result.exit_code == 0, (command, result.output)
    heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "torchvision", "timm"))
    print(",".join(heavy) or "none")
""")


def test_status_analyze_and_dashboard_never_import_torch(tmp_path):
    result = subprocess.run([sys.executable, "-c", READERS, f"sqlite:///{tmp_path / 's.db'}"], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "none"


def shadowing_folder(tmp_path: Path, kind: str = "packages") -> Path:
    """A user's project folder with its own models and data (packages, or plain modules) that must never be imported."""
    for name in ("models", "data"):
        trap = f"raise ImportError('the user\\'s own {name} was imported')\n"
        if kind == "packages":
            (tmp_path / name).mkdir()
            (tmp_path / name / "__init__.py").write_text(trap)
        else:
            (tmp_path / f"{name}.py").write_text(trap)
    (tmp_path / "mytrain.py").write_text(textwrap.dedent("""
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        def build():
            torch.manual_seed(0)
            images, labels = torch.randn(64, 3, 32, 32), torch.arange(64) % 4
            model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))
            train = DataLoader(TensorDataset(images[:48], labels[:48]), batch_size=16, shuffle=True)
            val = DataLoader(TensorDataset(images[48:], labels[48:]), batch_size=16)
            return model, train, val, torch.optim.SGD(model.parameters(), lr=0.01)
    """))
    return tmp_path


def sweep_command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    sweep = Path(sys.executable).with_name("sweep")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run([str(sweep), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_doctor_module_from_a_folder_with_its_own_models_and_data(tmp_path):
    folder = shadowing_folder(tmp_path)
    result = sweep_command("doctor", "--module", "mytrain:build", "--quick", "--quiet", cwd=folder)
    assert "the user's own" not in result.stdout + result.stderr, result.stderr
    assert result.returncode in (0, 1), result.stderr  # a verdict, not a crash
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("workers, kind", [("1", "packages"), ("2", "modules")])
def test_start_from_a_folder_with_its_own_models_and_data(tmp_path, workers, kind):
    folder = shadowing_folder(tmp_path, kind)
    result = sweep_command("start", "--study", "here", "--storage", f"sqlite:///{folder / 's.db'}", "--model",
                           "resnet18", "--weights", "none", "--max-train", "32", "--max-val", "16", "--epochs", "1",
                           "--n-trials", "2", "--batch-size", "16", "--workers", workers, "--quiet", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "the user's own" not in result.stdout + result.stderr
    assert "Baseline" in result.stdout or "baseline" in result.stdout


def test_the_config_reads_the_plateau_rule_without_the_analysis():
    probe = "import sys, sweep.config, sweep.pruning; print(sorted(m for m in sys.modules if m.startswith('sweep.analysis')))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
