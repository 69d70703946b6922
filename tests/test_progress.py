"""What a user waiting on a sweep sees on stderr: a line per trial start and epoch where no bar is drawn (logs, CI,
`docker compose logs`), rich bars on a terminal, a line when the doctor starts, and what a resumed sweep waits for."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

import optuna
import pytest
from rich.console import Console

from sweep.progress import SweepProgress
from sweep.train import EpochRecord

EPOCH = EpochRecord(epoch=1, train_loss=2.25, val_loss=2.1, val_acc=0.25, lr=1e-3, seconds=3.5)


def shown(*, terminal: bool, quiet: bool = False) -> str:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=terminal, width=160)
    with SweepProgress(4, 0, 2, quiet=quiet, console=console) as progress:
        progress.trial_started(3, {"lr": 0.001, "frozen_stages": 2})
        progress.epoch_done(3, EPOCH, 2)
    return stream.getvalue()


def test_without_a_terminal_each_trial_start_and_epoch_is_one_plain_line():
    lines = shown(terminal=False).splitlines()
    assert lines == ["trial 3 started: lr=0.001 frozen_stages=2",
                     "trial 3 epoch 1/2: train_loss 2.2500 val_loss 2.1000 acc 0.25 (3.5s/epoch)"]


def test_on_a_terminal_the_epoch_shows_in_the_bars_not_as_lines():
    text = shown(terminal=True)
    assert "trial 3" in text and "1/2" in text and "val_loss 2.1000" in text
    assert "trial 3 epoch 1/2:" not in text


def test_quiet_shows_nothing():
    assert shown(terminal=False, quiet=True) == ""


def test_a_resumed_sweep_says_which_silent_trial_it_waits_for(tmp_path, monkeypatch, caplog):
    """A killed run left trial 0 RUNNING: the resumed worker names it, with its heartbeat's age and the grace period,
    then runs it again once it is stale."""
    from sweep import study as study_module
    from sweep.storage import open_storage
    from sweep.worker import run_trials
    from tiny_worker import TinyObjective, create_study

    monkeypatch.setenv("SWEEP_HEARTBEAT_INTERVAL", "1")
    monkeypatch.setenv("SWEEP_GRACE_PERIOD", "2")
    url = f"sqlite:///{tmp_path / 'resume.db'}"
    create_study(url, "resume", n_trials=2, epochs=2)
    storage = open_storage(url)
    study, config = study_module.load(storage, "resume")
    killed = study.ask()  # the baseline, RUNNING with one heartbeat, as a killed `sweep start` leaves it
    storage.record_heartbeat(killed._trial_id)
    with caplog.at_level(logging.INFO, logger="sweep"):
        run_trials(study, config, None, storage=storage, poll_seconds=0.5,
                   objective=TinyObjective(config.space, config.epochs, 0.01))
    waiting = [r.getMessage() for r in caplog.records if r.getMessage().startswith("budget handed out")]
    assert len(waiting) == 1, caplog.text
    assert waiting[0].startswith("budget handed out (1 finished, 1 running): waiting for trial 0 (last heartbeat ")
    assert waiting[0].endswith("a trial without a heartbeat for 2s is failed and run again")
    states = [t.state for t in study.get_trials()]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2 and states[0] == optuna.trial.TrialState.FAIL


@pytest.mark.slow
def test_sweep_start_in_a_log_shows_the_doctor_and_every_epoch_and_ends_with_the_next_commands(tmp_path):
    env = {**os.environ, "SWEEP_STORAGE": f"sqlite:///{tmp_path / 's.db'}", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "sweep.cli", "start", "--study", "seen", "--model", "resnet18", "--weights", "none",
         "--data", "digits", "--image-size", "32", "--max-train", "48", "--max-val", "24", "--epochs", "2",
         "--n-trials", "2", "--batch-size", "16", "--pruner", "none"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "doctor: quick checks of the setup before any training" in err
    assert err.index("doctor: quick checks") < err.index("trial 0 started: ")
    for trial in (0, 1):
        for epoch in (1, 2):
            assert f"trial {trial} epoch {epoch}/2: train_loss " in err, err
    assert "Trials" in done.stdout and " epoch 1/2: " not in done.stdout  # the report on stdout, progress on stderr
    # two epochs on the digits leave the loss near ln(10): the report says the verdicts mean little yet
    assert "is still at chance level (ln 10 = 2.3, a uniform guess over 10 classes)" in done.stdout
    assert done.stdout.endswith("Next\n  sweep analyze --study seen --format html --out seen-report.html\n"
                                "  sweep dashboard --study seen\n  sweep export --study seen --out seen-model\n")
