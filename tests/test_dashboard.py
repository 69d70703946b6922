"""`sweep dashboard`: notes and curves per finished trial, the study note, and the real dashboard in headless Chromium."""

import contextlib
import json
import os
import socket
from urllib.parse import urlsplit

import optuna
import optuna_dashboard
import pytest
from click.testing import CliRunner

from browser import chromium, needs_chromium
from served import free_port, served_dashboard
from sweep.cli import main

TINY = ["--model", "resnet18", "--weights", "none", "--data", "synthetic:64", "--image-size", "32",
        "--max-train", "32", "--max-val", "16", "--epochs", "2", "--n-trials", "3", "--batch-size", "16",
        "--quiet", "--no-doctor"]


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    storage = f"sqlite:///{tmp_path_factory.mktemp('study') / 'sweep.db'}"
    result = CliRunner().invoke(main, ["start", "--study", "t", "--storage", storage, *TINY])
    assert result.exit_code == 0, result.output
    return storage


class _Ref:  # what optuna_dashboard.get_note reads from a trial
    def __init__(self, study, trial):
        self.study, self.storage, self._trial_id = study, study._storage, trial._trial_id


@pytest.mark.slow
def test_each_finished_trial_has_its_verdict_note_and_curves(finished_study):
    study = optuna.load_study(study_name="t", storage=finished_study)
    analysis = json.loads(CliRunner().invoke(
        main, ["analyze", "--study", "t", "--storage", finished_study, "--format", "json"]).stdout)
    verdicts = {trial["number"]: trial for trial in analysis["trials"]}
    attrs = study._storage.get_study_system_attrs(study._study_id)
    for trial in study.trials:
        note = optuna_dashboard.get_note(_Ref(study, trial))  # written by the worker's callback at trial end
        assert f"## Trial {trial.number}: verdict **{verdicts[trial.number]['verdict']}**" in note
        plateau = verdicts[trial.number]["plateau_epoch"]
        assert f"- plateau epoch: {plateau if plateau is not None else 'none'}" in note
        assert "| 2 | " in note  # the curve, epoch by epoch
        figure = json.loads("".join(
            value for key, value in sorted(attrs.items())
            if key.startswith(f"dashboard:plot_data:trial-{trial.number}-curves:")))
        assert [trace["name"] for trace in figure["data"]] == ["train loss", "validation loss"]
        history = trial.user_attrs["history"]
        assert figure["data"][1]["y"] == [row["val_loss"] for row in history]
    study_note = optuna_dashboard.get_note(study)
    assert "## Analysis" in study_note and "Study t: 3 trials" in study_note
    assert "## sweep doctor" in study_note


def test_dashboard_port_in_use_is_a_usage_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["dashboard", "--study", "t", "--storage", f"sqlite:///{tmp_path / 'x.db'}",
                                           "--port", str(port)])
    assert result.exit_code == 2
    assert f"--port {port}: cannot listen there" in result.output


def test_dashboard_never_prints_the_database_password():
    storage = "postgresql+psycopg://sweep:s3cret-pw@127.0.0.1:1/sweep"
    result = CliRunner().invoke(main, ["dashboard", "--study", "t", "--storage", storage, "--port", str(free_port())])
    assert result.exit_code != 0
    assert "s3cret-pw" not in result.output and "***" in result.output


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the LISTEN sockets on ``port``, read from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in open(table).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                if len(address) == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    words = [bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, 32, 8)]
                    found.add(socket.inet_ntop(socket.AF_INET6, b"".join(words)))
    return found


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
def test_dashboard_in_headless_chromium_shows_study_and_trial_verdict(finished_study, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with contextlib.ExitStack() as stack:
        served = stack.enter_context(served_dashboard(finished_study, "t"))
        port = served.port
        assert _listening_addresses(port) == {"127.0.0.1"}

        browser = stack.enter_context(chromium(tmp_path, window="1400,1000", log="performance"))
        wait = WebDriverWait(browser, 30)
        browser.get(f"http://127.0.0.1:{port}/dashboard")
        wait.until(lambda b: "1. t\n" in b.find_element(By.TAG_NAME, "body").text)  # the study list
        browser.get(f"http://127.0.0.1:{port}/dashboard/studies/1/trials")
        wait.until(lambda b: "verdict" in b.find_element(By.TAG_NAME, "body").text)
        body = browser.find_element(By.TAG_NAME, "body").text
        study = optuna.load_study(study_name="t", storage=finished_study)
        analysis = json.loads(CliRunner().invoke(
            main, ["analyze", "--study", "t", "--storage", finished_study, "--format", "json"]).stdout)
        shown = next(trial for trial in analysis["trials"] if f"Trial {trial['number']}: verdict" in body)
        assert f"Trial {shown['number']}: verdict {shown['verdict']}" in body
        assert len(study.trials) == 3
        screenshot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000

        hosts = set()
        for entry in browser.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                url = urlsplit(message["params"]["request"]["url"])
                if url.scheme in ("http", "https", "ws", "wss"):
                    hosts.add(url.hostname)
        assert hosts == {"127.0.0.1"}
    assert "optuna-dashboard for sqlite:///" in served.output and "127.0.0.1" in served.output


def http(method: str, url: str, body: bytes | None = None, content_type: str = "application/json"):
    """One real HTTP request; (status, body) whatever the status."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def study_with_weights(storage_url, tmp_path):
    """A sweep study (stored config, store in tmp_path) with one finished trial whose weights file is in the store."""
    from sweep import study as study_module
    from sweep.artifacts import open_store
    from sweep.config import SweepConfig
    from sweep.storage import open_storage

    store_folder = tmp_path / "store"
    storage = open_storage(storage_url, heartbeat=False)
    study, _ = study_module.create_or_resume(storage, "kept", SweepConfig(n_trials=2, epochs=2,
                                                                           artifacts=str(store_folder)))
    trial = study.ask()  # the baseline
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights of trial 0")
    artifact_id = optuna.artifacts.upload_artifact(
        artifact_store=open_store(str(store_folder)), file_path=str(weights),
        study_or_trial=trial)
    study.tell(trial, 0.5)
    storage.engine.dispose()
    return storage_url, study._study_id, study.trials[0]._trial_id, store_folder / artifact_id


def test_the_dashboard_refuses_every_write_unless_allowed(study_with_weights):
    storage, study_id, trial_id, weights_file = study_with_weights
    artifact = weights_file.name
    writes = [
        ("DELETE", f"/api/studies/{study_id}", None),
        ("DELETE", f"/api/artifacts/{study_id}/{trial_id}/{artifact}", None),
        ("PUT", f"/api/studies/{study_id}/note", json.dumps({"version": 0, "body": "mine"}).encode()),
        ("PUT", f"/api/studies/{study_id}/{trial_id}/note", json.dumps({"version": 0, "body": "mine"}).encode()),
        ("POST", f"/api/trials/{trial_id}/user-attrs", json.dumps({"user_attrs": {"x": 1}}).encode()),
        ("POST", f"/api/trials/{trial_id}/tell", json.dumps({"state": "Fail"}).encode()),
        ("POST", f"/api/artifacts/{study_id}/{trial_id}", json.dumps({"file": "data:,x", "filename": "x"}).encode()),
        ("POST", f"/api/studies/{study_id}/rename", json.dumps({"study_name": "other"}).encode()),
        ("POST", "/api/studies", json.dumps({"study_name": "new", "directions": ["minimize"]}).encode()),
    ]
    with served_dashboard(storage, "kept") as served:
        status, body = http("GET", f"{served.url}/api/studies")
        assert status == 200 and [s["study_name"] for s in json.loads(body)["study_summaries"]] == ["kept"]
        # the kept weights can still be downloaded: the dashboard opened the study's store
        status, body = http("GET", f"{served.url}/artifacts/{study_id}/{trial_id}/{artifact}")
        assert (status, body) == (200, b"weights of trial 0")
        for method, path, payload in writes:
            status, body = http(method, served.url + path, payload)
            assert status == 403, (method, path, status, body)
            assert "--allow-writes" in json.loads(body)["reason"], (method, path)
    study = optuna.load_study(study_name="kept", storage=storage)
    assert [trial.state.name for trial in study.trials] == ["COMPLETE"]
    assert "x" not in study.trials[0].user_attrs
    assert optuna.study.get_all_study_names(storage) == ["kept"]
    assert weights_file.read_bytes() == b"weights of trial 0"

    with served_dashboard(storage, "kept", "--allow-writes") as served:
        # what the read-only default guards against: the study goes, and its kept weights with it
        assert http("DELETE", f"{served.url}/api/studies/{study_id}")[0] == 204
    assert optuna.study.get_all_study_names(storage) == []
    assert not weights_file.exists()
