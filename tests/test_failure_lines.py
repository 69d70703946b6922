"""Failures said in one true line: outputs that cannot be written, an artifact folder deleted while the sweep runs,
the store's clean-up, a database outage (the cause, not Optuna's wrapper), a stale trial's silence."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from sweep import study as study_module
from sweep.artifacts import KeepBest, open_store
from sweep.cli import main
from sweep.config import SweepConfig
from sweep.storage import open_storage


def finished_study(url: str, name: str, **config) -> optuna.Study:
    """A sweep study (stored config) whose baseline finished with a short curve: no training."""
    storage = open_storage(url, heartbeat=False)
    study, _ = study_module.create_or_resume(storage, name, SweepConfig(n_trials=1, epochs=2, **config))
    trial = study.ask()
    trial.set_user_attr("history", [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0},
                                    {"epoch": 2, "train_loss": 0.8, "val_loss": 0.9}])
    study.tell(trial, 0.9)
    return study


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write into: sysfs for root (whom file modes do not stop), else a 0555 folder."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o555)
    return folder


@pytest.mark.parametrize("flag", ["--out", "--emit-config"])
def test_analyze_into_an_unwritable_folder_is_one_line(tmp_path, flag):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    finished_study(url, "s")
    target = unwritable_folder(tmp_path) / "report.txt"
    result = CliRunner().invoke(main, ["analyze", "--study", "s", "--storage", url, flag, str(target)])
    assert result.exit_code in (1, 2), result.output  # 2 where the folder's mode says so before the analysis
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.strip().splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and str(target.parent) in lines[0] and "writ" in lines[0], result.output
    assert "Traceback" not in result.output


def test_a_deleted_artifact_folder_is_made_again_for_the_next_writes(tmp_path, caplog):
    folder = tmp_path / "artifacts"
    store = open_store(str(folder))
    store.write("a", open(__file__, "rb"))
    shutil.rmtree(folder)  # the same store object, as a worker process keeps it
    with caplog.at_level(logging.WARNING, logger="sweep"):
        store.write("b", open(__file__, "rb"))
    assert (folder / "b").read_bytes() == Path(__file__).read_bytes()
    assert [r.getMessage() for r in caplog.records] == [
        f"artifact folder {folder} was deleted: made it again for the next checkpoints (the checkpoints and kept "
        "weights it held are lost)"]


def test_the_clean_up_of_training_states_says_states_not_weights(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    study = finished_study(url, "s")
    folder = tmp_path / "artifacts"
    store = open_store(str(folder))
    shutil.rmtree(folder)
    folder.write_text("not a folder")  # removing any state in it fails, and not with "not found"
    keep = KeepBest(store, keep_best=3, n_trials=1, patience=3, min_delta=0.01)
    with caplog.at_level(logging.WARNING, logger="sweep"):
        keep(study, study.trials[0])
    [record] = caplog.records
    assert record.getMessage().startswith("could not remove the training states of the finished sweep: "), \
        record.getMessage()
    assert "Not a directory" in record.getMessage()


def test_an_outage_is_said_with_the_databases_reason(pg_url, caplog):
    from conftest import _pg_admin_connect
    from sweep.dashboard import TrialNotes

    study = finished_study(pg_url, "s")
    trial = study.trials[0]
    database = pg_url.rsplit("/", 1)[1]
    with _pg_admin_connect() as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
    try:
        with caplog.at_level(logging.WARNING, logger="sweep"):
            KeepBest(open_store(str(Path(os.environ["SWEEP_ARTIFACTS"]))), keep_best=3, n_trials=1, patience=3,
                     min_delta=0.01)(study, trial)
            TrialNotes(patience=3, min_delta=0.01)(study, trial)
    finally:
        with _pg_admin_connect() as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    for message in messages:
        assert f'database "{database}" is not currently accepting connections' in message, message
        assert "exceeding max length" not in message and "invalid data" not in message


def test_a_stale_trial_is_said_silent_for_the_grace_period_at_least(pg_url, monkeypatch, caplog):
    from sweep.recovery import RetryStaleTrial

    monkeypatch.setenv("SWEEP_HEARTBEAT_INTERVAL", "2")
    monkeypatch.setenv("SWEEP_GRACE_PERIOD", "10")
    storage = open_storage(pg_url)
    study, _ = study_module.create_or_resume(storage, "s", SweepConfig(n_trials=2, epochs=2, checkpoints=False))
    trial = study.ask()
    # its worker beat again after the trial was found stale (after an outage, both happen at once)
    storage.record_heartbeat(trial._trial_id)
    storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    with caplog.at_level(logging.WARNING, logger="sweep"):
        RetryStaleTrial(max_retry=2)(study, storage.get_trial(trial._trial_id))
    [record] = caplog.records
    assert "failed: no heartbeat for over 10s (grace period 10s); queued again as trial 1" in record.getMessage(), \
        record.getMessage()
