"""The ``sweep`` commands as a user runs them: real tiny training, real Optuna storage."""

import json

import optuna
import pytest
from click.testing import CliRunner

from sweep import space
from sweep.cli import main
from sweep.config import build_config

# A sweep small enough for a test: resnet18 at 32 px on a few dozen built-in images.
TINY = [
    "--model", "resnet18", "--weights", "none", "--data", "digits", "--image-size", "32",
    "--max-train", "48", "--max-val", "24", "--epochs", "3", "--n-trials", "3",
    "--batch-size", "16", "--quiet",
]


def run(*args, storage=None):
    env = {"SWEEP_STORAGE": storage} if storage else {}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.mark.slow
def test_start_then_analyze_json_on_both_storages(storage_url, tmp_path):
    result = run("start", "--study", "tiny", *TINY, storage=storage_url)
    assert result.exit_code == 0, result.output
    assert "baseline" in result.stdout.lower()  # the analysis is printed at the end

    result = run("analyze", "--study", "tiny", "--format", "json", storage=storage_url)
    assert result.exit_code == 0, result.output
    analysis = json.loads(result.stdout)
    assert analysis["study"] == "tiny"
    assert analysis["baseline"]["number"] == 0
    numbers = sorted(trial["number"] for trial in analysis["trials"])
    assert numbers == [0, 1, 2]
    verdicts = {"improving", "plateau", "overfitting", "oscillating", "diverged", "too_short"}
    assert all(trial["verdict"] in verdicts for trial in analysis["trials"])
    # 3 trials are too few to name factors: said plainly, not invented.
    assert analysis["evidence"] == "insufficient" and analysis["factors"] == []
    assert "Too little evidence" in run("analyze", "--study", "tiny", storage=storage_url).stdout

    study = optuna.load_study(study_name="tiny", storage=storage_url)
    baseline = study.trials[0]
    assert baseline.user_attrs["baseline"] is True
    assert baseline.params["frozen_stages"] == 4 and baseline.params["lr"] == pytest.approx(1e-4)
    for trial in study.trials:
        history = trial.user_attrs["history"]
        assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))
        assert set(history[0]) == {"epoch", "train_loss", "val_loss", "val_acc", "lr", "seconds"}
        assert trial.intermediate_values == {row["epoch"]: row["val_loss"] for row in history}
    assert study.user_attrs["sweep_config"]["epochs"] == 3

    # The same result as html, and as the next sweep's config, which `sweep start --config` accepts.
    report, best = tmp_path / "report.html", tmp_path / "best.toml"
    result = run("analyze", "--study", "tiny", "--format", "html", "--out", str(report),
                 "--emit-config", str(best), storage=storage_url)
    assert result.exit_code == 0, result.output
    assert "plotly" in report.read_text().lower()
    assert build_config(best).space.keys() == set(space.PARAMS)
    params = json.loads((tmp_path / "best.params.json").read_text())
    assert params["params"] == analysis["best_trial"]["params"]
    assert params["trial"] == analysis["best_trial"]["number"]

    # Same config resumes (budget met: nothing to do); a different one is refused.
    result = run("start", "--study", "tiny", *TINY, storage=storage_url)
    assert result.exit_code == 0, result.output
    assert len(optuna.load_study(study_name="tiny", storage=storage_url).trials) == 3
    changed = [arg if arg != "3" else "4" for arg in TINY]  # epochs 3 -> 4, n_trials 3 -> 4
    result = run("start", "--study", "tiny", *changed, storage=storage_url)
    assert result.exit_code == 2
    assert "exists with a different config (epochs: 3 -> 4); pass --epochs 3 to resume it" in result.output


def test_refused_resume_names_the_flags_that_resume_it(tmp_path):
    # A study made when the default pruner was the median, and with all training images, rerun later
    # with today's defaults: refused, and the message gives the flags that resume it, which do.
    storage = f"sqlite:///{tmp_path / 's.db'}"
    base = [arg for arg in TINY if arg not in ("--max-train", "48")] + ["--workers", "0", "--no-doctor"]
    made = run("start", "--study", "old", *base, "--pruner", "median", "--max-train", "0", "--compile", storage=storage)
    assert made.exit_code == 0, made.output
    refused = run("start", "--study", "old", *base, storage=storage)
    assert refused.exit_code == 2
    assert "pass --max-train 0 --pruner median --compile to resume it" in refused.output
    flags = refused.output.split("pass ")[1].split(" to resume")[0].split()
    resumed = run("start", "--study", "old", *base, *flags, storage=storage)
    assert resumed.exit_code == 0, resumed.output
    assert "ready" in resumed.output


@pytest.mark.slow
def test_larger_budget_resumes_and_runs_only_the_missing_trials(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    assert run("start", "--study", "grow", *TINY, storage=storage).exit_code == 0
    more = TINY[:TINY.index("--n-trials")] + ["--n-trials", "4"] + TINY[TINY.index("--n-trials") + 2:]
    result = run("start", "--study", "grow", *more, storage=storage)
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="grow", storage=storage)
    assert len(study.trials) == 4
    assert study.user_attrs["sweep_config"]["n_trials"] == 4


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--lr", "0.1:0.001"], "--lr 0.1:0.001: low must be below high (got low=0.1, high=0.001)"),
        (["--lr", "-0.001"], "lr='-0.001' is out of range"),
        (["--scheduler", "linear"], "scheduler='linear' is not accepted"),
        (["--frozen-stages", "0:7"], "frozen_stages='7' is out of range: expected an integer from 0 to 4"),
        (["--batch-size", "16:32"], "a range is not accepted here"),
        (["--baseline", "lr"], "not NAME=VALUE"),
        (["--baseline", "momentum=0.9"], "unknown parameter 'momentum'"),
        (["--config", "/nonexistent/sweep.toml"], "/nonexistent/sweep.toml"),
        (["--storage", "nosuchdb://x"], "is not supported" ),
        (["--epochs", "0"], "0 is not in the range x>=1"),
        (["--pruner", "median-ish"], "'median-ish' is not one of"),
        (["--device", "cuda:0"], "torch sees no CUDA GPU"),
        (["--model", "vit_base_patch16_224"], "vit_base_patch16_224"),
        (["--data", "cifar11:/tmp"], "cifar11:/tmp"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, fragment):
    if args[0] == "--device":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    storage = f"sqlite:///{tmp_path / 's.db'}"
    result = CliRunner().invoke(main, ["start", "--study", "bad", "--storage", storage, *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "s.db").exists() or not optuna.get_all_study_summaries(storage)


@pytest.mark.parametrize("text, fragment", [
    ("lrr = 3\n", "unknown key 'lrr'"),
    ("[space]\nlr = '1:0.1'\n", "low must be below high"),
    ("epochs = [\n", "is not valid TOML"),
])
def test_bad_config_file_is_exit_2(tmp_path, text, fragment):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["start", "--study", "bad", "--storage", f"sqlite:///{tmp_path/'s.db'}", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert fragment in result.output and str(path) in result.output


def test_unreadable_config_file(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text("epochs = 2\n")
    path.chmod(0)
    import os

    if os.access(path, os.R_OK):
        pytest.skip("running as root: every file is readable")
    result = CliRunner().invoke(main, ["start", "--study", "x", "--config", str(path)])
    assert result.exit_code == 2


def test_help_shows_examples():
    result = CliRunner().invoke(main, ["start", "--help"])
    assert result.exit_code == 0
    assert "sweep start --study resnet-plateau" in result.output
    assert "--frozen-stages" in result.output and "SWEEP_STORAGE" in result.output
    for command in ("analyze", "status"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert f"sweep {command} --study resnet-plateau" in result.output


def test_analyze_unknown_study_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["analyze", "--study", "nope", "--storage", f"sqlite:///{tmp_path/'s.db'}"])
    assert result.exit_code == 2
    assert "no study named 'nope'" in result.output


def test_unreachable_database_is_one_line_without_password():
    url = "postgresql+psycopg://sweep:hunter2@127.0.0.1:1/sweep"
    result = CliRunner().invoke(main, ["status", "--study", "x", "--storage", url])
    assert result.exit_code == 1
    assert "cannot open storage postgresql+psycopg://sweep:***@127.0.0.1:1/sweep" in result.output
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, fragment", [
    (["--weights", "/nonexistent/resnet18.safetensors"], "weights file '/nonexistent/resnet18.safetensors' not found"),
    (["--data", "cifar10:/nonexistent-root"], "/nonexistent-root"),
])
def test_unusable_weights_or_data_stop_before_the_study_is_created(tmp_path, args, fragment):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    result = CliRunner().invoke(main, ["start", "--study", "x", "--storage", storage, "--no-doctor",
                                       "--model", "resnet18", *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("flag", ["--out", "--emit-config"])
def test_analyze_into_a_missing_folder_is_a_usage_error(tmp_path, flag):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    run("start", "--study", "s", *TINY, "--n-trials", "1", "--workers", "0", "--no-doctor", storage=storage)
    target = tmp_path / "no-such-folder" / "report.json"
    result = CliRunner().invoke(main, ["analyze", "--study", "s", "--storage", storage, flag, str(target)])
    assert result.exit_code == 2, result.output
    assert f"folder '{target.parent}' does not exist" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command, flag, name", [
    ("start", "--epochs", "epochs"), ("start", "--seed", "seed"), ("start", "--max-train", "max_train"),
    ("analyze", "--patience", "patience"), ("analyze", "--min-delta", "min_delta"),
    ("worker", "--stop-after", "stop_after"), ("worker", "--stop-when", "stop_when"),
])
def test_a_settings_flag_accepts_what_the_config_accepts(command, flag, name):
    import click

    from sweep.config import SETTINGS

    setting = SETTINGS[name]
    param = next(param for param in main.commands[command].params if flag in param.opts)
    for text in ("-1", "0", "0.5", "1", "2", "2000", "never", "stalled", "often"):
        try:
            param.type.convert(text, param, None)
            flag_accepts = True
        except click.BadParameter:
            flag_accepts = False
        try:
            value = setting.kind(text)
        except ValueError:
            value = text
        config_accepts = setting.accepts(value) or (setting.zero_means_all and value == 0)
        assert flag_accepts == config_accepts, (flag, text)


def test_help_shows_no_bound_a_setting_does_not_have():
    result = CliRunner().invoke(main, ["start", "--help"])
    assert "None]" not in result.output  # --seed has no bounds
