"""A state or weights file changed in the store after it was written (same length, other bytes) is refused by the
digest its reference recorded: a retry trains from epoch 1 on the curve of a clean run, and `sweep export` stops."""

from __future__ import annotations

import hashlib
import io
import logging
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sweep.cli import main
from sweep.artifacts import DigestMismatch, verify_digest
from sweep.record import CHECKPOINT, DIGEST, RESUMED_FROM, WEIGHTS, TrialWriter
from sweep.worker import run_trials
from test_checkpoints import EPOCHS, StopAt, new_study, tiny_config


def overwrite(path: Path, offset: int, size: int = 4096) -> None:
    """``size`` bytes at ``offset`` set to 0xff, the file's length kept: what a bad disk or a torn copy does (and
    0xffffffff is a float32 NaN, so a model trained on from them diverges)."""
    data = bytearray(path.read_bytes())
    data[offset:offset + size] = b"\xff" * size
    path.write_bytes(bytes(data))


def tensor_middle(path: Path, size: int = 4096) -> int:
    """Where ``size`` bytes in the middle of a state file hit tensor data only, so that torch.load still reads it:
    the centre of the tensor record nearest the file's middle (a zip record's local header is 30 bytes + its name
    and extra field)."""
    middle = path.stat().st_size // 2
    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
        starts = []
        for info in archive.infolist():
            if info.file_size >= 2 * size:
                handle.seek(info.header_offset + 26)
                name_length, extra_length = struct.unpack("<HH", handle.read(4))
                starts.append(info.header_offset + 30 + name_length + extra_length + info.file_size // 2 - size // 2)
    return min(starts, key=lambda start: abs(start - middle))


def curve(trial) -> list[tuple]:
    return [(row["epoch"], row["train_loss"], row["val_loss"], row["lr"]) for row in trial.user_attrs["history"]]


def test_a_state_corrupted_in_the_store_is_refused_and_the_retry_trains_the_clean_curve(tmp_path, caplog):
    clean_config = tiny_config(tmp_path / "clean-artifacts")
    clean, storage = new_study(tmp_path, "clean", clean_config)
    run_trials(clean, clean_config, torch.device("cpu"), storage=storage)

    config = tiny_config(tmp_path / "artifacts")
    study, storage = new_study(tmp_path, "corrupt", config)
    with pytest.raises(KeyboardInterrupt):  # during epoch 3's report: epoch 2 is the last complete checkpoint
        run_trials(study, config, torch.device("cpu"), storage=storage, progress=StopAt(3))
    ref = study.trials[0].user_attrs[CHECKPOINT]
    assert ref["epoch"] == 2 and len(ref[DIGEST]) == 32
    state = tmp_path / "artifacts" / ref["artifact_id"]
    overwrite(state, tensor_middle(state))
    assert state.stat().st_size == ref["bytes"]  # the length check alone would pass it

    with caplog.at_level(logging.INFO, logger="sweep"):
        run_trials(study, config, torch.device("cpu"), storage=storage)
    retry = study.trials[1]
    assert retry.state.name == "COMPLETE" and RESUMED_FROM not in retry.user_attrs
    lines = [record.getMessage() for record in caplog.records if ref["artifact_id"] in record.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(
        f"trial 1: cannot resume from the checkpoint of trial 0 at epoch 2 (state {ref['artifact_id']}: {DIGEST} ")
    assert f"where {ref[DIGEST][:12]} was written); training from epoch 1" in lines[0]
    assert not any("resumes trial" in record.getMessage() for record in caplog.records)
    # the same params and seed, trained from epoch 1: the curve of the run that was never cut or corrupted
    assert [row[0] for row in curve(retry)] == list(range(1, EPOCHS + 1))
    for got, want in zip(curve(retry), curve(clean.trials[0])):
        assert got == pytest.approx(want, abs=1e-6)


def test_a_state_recorded_without_a_digest_is_still_checked_by_its_length(tmp_path, monkeypatch, caplog):
    config = tiny_config(tmp_path / "artifacts")
    study, storage = new_study(tmp_path, "older", config)
    recording = TrialWriter.checkpoint

    def without_digest(self, *args):  # as a study from before digests recorded its states
        ref = recording(self, *args)
        del ref[DIGEST]
        self.trial.set_user_attr(CHECKPOINT, ref)
        return ref

    monkeypatch.setattr(TrialWriter, "checkpoint", without_digest)
    with pytest.raises(KeyboardInterrupt):
        run_trials(study, config, torch.device("cpu"), storage=storage, progress=StopAt(3))
    monkeypatch.undo()
    ref = study.trials[0].user_attrs[CHECKPOINT]
    assert DIGEST not in ref
    with caplog.at_level(logging.INFO, logger="sweep"):
        run_trials(study, config, torch.device("cpu"), storage=storage)
    assert study.trials[1].user_attrs[RESUMED_FROM] == {"trial": 0, "epoch": 2}
    assert "trial 1 resumes trial 0 after epoch 2" in caplog.text


def test_export_of_corrupted_weights_is_one_line_naming_the_trial_and_the_store(tmp_path):
    config = tiny_config(tmp_path / "artifacts", epochs=2)
    study, storage = new_study(tmp_path, "weights", config)
    url = f"sqlite:///{tmp_path / 'weights.db'}"
    run_trials(study, config, torch.device("cpu"), storage=storage)
    weights = study.trials[0].user_attrs[WEIGHTS]
    assert len(weights[DIGEST]) == 32
    export = ["export", "--storage", url, "--study", "weights", "--trial", "0"]
    good = CliRunner().invoke(main, [*export, "--out", str(tmp_path / "good")])
    assert good.exit_code == 0, good.output

    stored = tmp_path / "artifacts" / weights["artifact_id"]
    overwrite(stored, stored.stat().st_size // 2)  # tensor data: safetensors' header is at the start
    result = CliRunner().invoke(main, [*export, "--out", str(tmp_path / "bad")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: the weights of trial 0 in the artifact store {tmp_path / 'artifacts'} are "
                               f"not the ones written ({DIGEST} ")
    assert f"where {weights[DIGEST][:12]} was written)" in lines[0]
    assert not (tmp_path / "bad" / "model.safetensors").exists()


@pytest.mark.parametrize("as_file", [False, True])
def test_a_ref_with_the_older_sha256_digest_is_checked_by_it(as_file):
    written = bytes(range(256)) * 4096
    ref = {"artifact_id": "a", "sha256": hashlib.sha256(written).hexdigest()}
    verify_digest(ref, io.BytesIO(written) if as_file else written, "state a")  # the same bytes pass
    changed = written[:1000] + b"\0" * 4096 + written[5096:]
    with pytest.raises(DigestMismatch, match=r"^state a: sha256 [0-9a-f]{12} where [0-9a-f]{12} was written$"):
        verify_digest(ref, io.BytesIO(changed) if as_file else changed, "state a")
