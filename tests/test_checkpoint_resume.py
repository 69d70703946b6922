"""A worker killed mid-trial (SIGKILL) or stopped (SIGTERM): another worker's retry of the trial resumes after its
last checkpoint and ends on the curve of a run never cut short (real `sweep worker` processes on PostgreSQL)."""

from __future__ import annotations

import signal

import pytest

from sweep.record import CHECKPOINT, RESUMED_FROM
from test_workers import by_state, create_study, start_worker, trials, wait_for

EPOCHS = 6
# One point that trains hard, on enough images that an epoch takes a moment: the kill lands mid-trial.
FLAGS = ["--epochs", str(EPOCHS), "--n-trials", "1", "--data", "synthetic:256", "--max-train", "128",
         "--max-val", "32", "--lr", "0.05", "--frozen-stages", "0", "--scheduler", "cosine", "--dropout", "0.2",
         "--weight-decay", "0.0001", "--checkpoint-every", "0"]


def checkpoint_epoch(storage_url: str, name: str) -> int:
    return max((trial.user_attrs.get(CHECKPOINT, {}).get("epoch", 0) for trial in trials(storage_url, name)), default=0)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_cut_trial_is_resumed_by_another_worker_on_the_uninterrupted_curve(pg_url):
    create_study(pg_url, "whole", *FLAGS)
    reference = start_worker(pg_url, "whole", "--quiet")
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    whole = trials(pg_url, "whole")[0].user_attrs["history"]
    for signum in (signal.SIGKILL, signal.SIGTERM):  # killed, or stopped: both against the one uninterrupted curve
        cut_and_resumed(pg_url, f"cut-{signum.name}", signum, whole)


def cut_and_resumed(pg_url: str, name: str, signum: signal.Signals, whole: list[dict]) -> None:
    create_study(pg_url, name, *FLAGS)
    first = start_worker(pg_url, name, "--quiet")
    wait_for(lambda: checkpoint_epoch(pg_url, name) >= 2, 300, "a checkpoint after epoch 2")
    first.send_signal(signum)
    first.communicate(timeout=60)
    cut = trials(pg_url, name)[0]
    done = cut.user_attrs[CHECKPOINT]["epoch"]
    assert 2 <= done < EPOCHS, "the trial ended before the signal: give it more images"

    second = start_worker(pg_url, name, "--until-done", "--quiet")
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    states = trials(pg_url, name)
    assert [trial.state.name for trial in states] == ["FAIL", "COMPLETE"], err
    retry = by_state(states, "COMPLETE")[0]
    assert retry.system_attrs["failed_trial"] == cut.number
    assert retry.user_attrs[RESUMED_FROM] == {"trial": cut.number, "epoch": done}
    assert retry.user_attrs["worker"]["pid"] != cut.user_attrs["worker"]["pid"]
    history = retry.user_attrs["history"]
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    # epochs up to the checkpoint are the cut trial's own rows (their timings too): they were not trained again
    assert history[:done] == cut.user_attrs["history"][:done]
    assert sorted(retry.intermediate_values) == list(range(1, EPOCHS + 1))
    for resumed, uninterrupted in zip(history, whole):
        assert resumed["val_loss"] == pytest.approx(uninterrupted["val_loss"], abs=1e-6)
        assert resumed["train_loss"] == pytest.approx(uninterrupted["train_loss"], abs=1e-6)
