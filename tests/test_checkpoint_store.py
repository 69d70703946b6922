"""Where checkpoints go and what happens when they cannot: an S3 bucket behind a real HTTP endpoint, a store whose
writes fail, the default folder, and optuna-dashboard serving the kept weights."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
import urllib.request

import optuna
import pytest
import torch

from sweep import study as study_module
from sweep.record import CHECKPOINT, RESUMED_FROM, WEIGHTS
from sweep.artifacts import DigestMismatch, check_location, default_location, settle_location, verify_digest
from sweep.config import build_config
from sweep.errors import UsageError
from sweep.storage import open_storage
from sweep.worker import run_trials
from test_checkpoints import StopAt, tiny_config, val_losses


@pytest.fixture
def s3_bucket(monkeypatch):
    """A bucket on moto's S3 server on 127.0.0.1, reached over HTTP as MinIO would be (AWS_ENDPOINT_URL)."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        pytest.skip(f"moto[server] is not installed ({error}): pip install -e '.[test]'")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3")
    client.create_bucket(Bucket="sweeps")
    yield client
    server.stop()


def keys(client, bucket: str = "sweeps") -> list[str]:
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_an_s3_store_holds_the_states_a_retry_resumes_from_and_keeps_only_the_weights(tmp_path, s3_bucket):
    config = tiny_config("s3://sweeps/team/resnet", epochs=3)
    storage = open_storage(f"sqlite:///{tmp_path / 's3.db'}")
    study, _ = study_module.create_or_resume(storage, "s3", config)
    with pytest.raises(KeyboardInterrupt):
        run_trials(study, config, torch.device("cpu"), storage=storage, progress=StopAt(3))
    cut = study.trials[0]
    assert keys(s3_bucket) == ["team/resnet/" + cut.user_attrs[CHECKPOINT]["artifact_id"]]

    run_trials(study, config, torch.device("cpu"), storage=storage)
    retry = study.trials[1]
    assert retry.state.name == "COMPLETE" and retry.user_attrs[RESUMED_FROM] == {"trial": 0, "epoch": 2}
    assert keys(s3_bucket) == ["team/resnet/" + retry.user_attrs[WEIGHTS]["artifact_id"]]
    body = s3_bucket.get_object(Bucket="sweeps", Key=keys(s3_bucket)[0])["Body"].read()
    assert len(body) == retry.user_attrs[WEIGHTS]["bytes"]
    verify_digest(retry.user_attrs[WEIGHTS], body, "weights")  # the digest recorded is the bucket's bytes'
    with pytest.raises(DigestMismatch):
        verify_digest(retry.user_attrs[WEIGHTS], body[:-1] + bytes([body[-1] ^ 1]), "weights")


class FullDisk(optuna.artifacts.FileSystemArtifactStore):
    def write(self, artifact_id, content_body):
        raise OSError(28, "No space left on device")


def test_a_store_that_cannot_be_written_is_said_once_per_trial_and_the_trials_go_on(tmp_path, monkeypatch, caplog):
    import sweep.artifacts

    monkeypatch.setattr(sweep.artifacts, "open_store", lambda location: FullDisk(location))
    monkeypatch.setattr(sweep.artifacts, "_opened", {})
    config = tiny_config(tmp_path / "full", n_trials=2, space={"lr": "1e-3:1e-1"})
    storage = open_storage(f"sqlite:///{tmp_path / 'full.db'}")
    study, _ = study_module.create_or_resume(storage, "full", config)
    with caplog.at_level(logging.WARNING, logger="sweep"):
        run_trials(study, config, torch.device("cpu"), storage=storage)
    assert [trial.state.name for trial in study.trials] == ["COMPLETE", "COMPLETE"]
    assert all(len(val_losses(trial)) == config.epochs for trial in study.trials)
    lines = [record.getMessage() for record in caplog.records if "checkpoints off" in record.getMessage()]
    assert lines == [f"trial {n}: checkpoints off for this trial, it trains on without them: cannot write to "
                     f"{tmp_path / 'full'}: [Errno 28] No space left on device" for n in (0, 1)]
    assert not any(CHECKPOINT in trial.user_attrs or WEIGHTS in trial.user_attrs for trial in study.trials)


def test_an_unreachable_bucket_is_logged_with_its_credentials_masked(tmp_path, monkeypatch, caplog):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more
    for name, value in {"AWS_ENDPOINT_URL": f"http://minio:s3cret@127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(name, value)
    config = tiny_config("s3://sweeps/x", epochs=2)
    storage = open_storage(f"sqlite:///{tmp_path / 'away.db'}")
    study, _ = study_module.create_or_resume(storage, "away", config)
    with caplog.at_level(logging.WARNING, logger="sweep"):
        run_trials(study, config, torch.device("cpu"), storage=storage)
    assert study.trials[0].state.name == "COMPLETE"
    lines = [record.getMessage() for record in caplog.records if "checkpoints off" in record.getMessage()]
    assert len(lines) == 1 and "cannot write to s3://sweeps/x" in lines[0] and "Could not connect" in lines[0]
    assert "s3cret" not in caplog.text and "minio:***@127.0.0.1" in lines[0]


def test_the_store_is_beside_a_sqlite_file_or_in_the_working_directory_and_stored_with_the_sweep(tmp_path,
                                                                                                 monkeypatch):
    monkeypatch.delenv("SWEEP_ARTIFACTS")
    monkeypatch.chdir(tmp_path)
    assert default_location("sqlite:///runs/plateau-sweep.db") == str(tmp_path / "runs" / "plateau-sweep.artifacts")
    assert default_location("postgresql+psycopg://sweep@db/sweep") == str(tmp_path / "plateau-sweep.artifacts")
    url = f"sqlite:///{tmp_path / 'first.db'}"
    storage = open_storage(url)
    config = settle_location(build_config(None, {}), storage, "s", url)
    assert config.artifacts == str(tmp_path / "first.artifacts")
    study_module.create_or_resume(storage, "s", config)
    monkeypatch.chdir(tmp_path / "..")  # a resume from elsewhere keeps the stored store
    monkeypatch.setenv("SWEEP_ARTIFACTS", "s3://other-bucket")
    assert settle_location(build_config(None, {}), storage, "s", url).artifacts == "s3://other-bucket"
    monkeypatch.delenv("SWEEP_ARTIFACTS")
    assert settle_location(build_config(None, {}), storage, "s", url).artifacts == str(tmp_path / "first.artifacts")


@pytest.mark.parametrize("value, message", [
    ("s3://My_Bucket/x", "bucket 'My_Bucket' is not an S3 bucket name"),
    ("gs://bucket", "is not a store: expected a folder or s3://BUCKET[/PREFIX]"),
    ("", "expected a folder or s3://BUCKET[/PREFIX]"),
])
def test_a_store_location_that_cannot_work_is_a_usage_error(value, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_location(value)


@pytest.mark.slow
def test_the_dashboard_serves_the_kept_weights_from_the_store(tmp_path):
    config = tiny_config(tmp_path / "artifacts", epochs=2)
    url = f"sqlite:///{tmp_path / 'dash.db'}"
    storage = open_storage(url)
    study, _ = study_module.create_or_resume(storage, "dash", config)
    run_trials(study, config, torch.device("cpu"), storage=storage)
    trial = study.trials[0]
    weights = trial.user_attrs[WEIGHTS]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "sweep.cli", "dashboard", "--study", "dash", "--storage", url,
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        address = f"http://127.0.0.1:{port}/artifacts/{study._study_id}/{trial._trial_id}/{weights['artifact_id']}"
        deadline = time.monotonic() + 60
        while True:
            try:
                body = urllib.request.urlopen(address, timeout=5).read()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
                time.sleep(0.3)
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert body == (tmp_path / "artifacts" / weights["artifact_id"]).read_bytes()
