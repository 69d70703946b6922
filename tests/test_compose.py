"""docker-compose.yml and the Dockerfile, checked without a Docker engine: a real compose parser, and
each service's command run as a local process against the local PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_SPEC = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
needs_compose = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                   reason="docker-compose (Debian package; .ci/run installs it) not found")


@pytest.fixture(scope="module")
def compose() -> dict:
    """The file as docker-compose resolves it, with .env.example as the env file."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose (Debian package; .ci/run installs it) not found")
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "--env-file", str(ROOT / ".env.example"), "config"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid_against_the_compose_spec(compose):
    import jsonschema

    if not COMPOSE_SPEC.exists():
        pytest.skip(f"{COMPOSE_SPEC} (shipped by Debian's docker-compose) not found")
    schema = json.loads(COMPOSE_SPEC.read_text())
    # The schema describes the file after ${VAR} interpolation, which is what `config` prints.
    jsonschema.Draft7Validator(schema).validate(compose)


def test_compose_services_as_the_issue_asks(compose):
    from sweep.launcher import STOP_GRACE_SECONDS

    services = compose["services"]
    assert set(services) == {"postgres", "workers", "cpu-workers", "dashboard"}
    postgres = services["postgres"]
    assert postgres["volumes"][0].startswith("pgdata:/var/lib/postgresql/data") and "pgdata" in compose["volumes"]
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert [port.split(":")[0] for port in postgres["ports"]] == ["127.0.0.1"]  # POSTGRES_BIND opens it to other hosts
    workers, cpu_workers = services["workers"], services["cpu-workers"]
    for service in (workers, cpu_workers):
        assert service["build"]["context"] == str(ROOT)
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["command"][:2] == ["sweep", "workers"]
        assert service["init"] is True and service["restart"] == "on-failure"
        # Docker's SIGKILL must come after the launcher's own wait for its workers' clean stop.
        assert int(service["stop_grace_period"].rstrip("s")) > STOP_GRACE_SECONDS
        assert service["environment"] == workers["environment"]
    # One container takes every GPU of the host; `sweep workers` gives each worker one (no replicas of count: 1).
    assert workers["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
    ]
    assert "replicas" not in workers.get("deploy", {}) and "--cpu" not in workers["command"]
    # No GPU reservation for a host without the NVIDIA runtime, and only started when named (a profile).
    assert "deploy" not in cpu_workers and cpu_workers["profiles"] == ["cpu"]
    assert cpu_workers["command"][-2:] == ["--cpu", "1"]  # SWEEP_CPU_WORKERS in .env
    dashboard = services["dashboard"]
    assert dashboard["command"][:2] == ["sweep", "dashboard"]
    assert [port.split(":")[0] for port in dashboard["ports"]] == ["127.0.0.1"]
    assert dashboard["environment"]["SWEEP_STORAGE"] == workers["environment"]["SWEEP_STORAGE"]
    # One artifact store for the checkpoints and kept weights, shared by the workers and the dashboard.
    assert "artifacts" in compose["volumes"]
    for service in (workers, cpu_workers, dashboard):
        assert service["environment"]["SWEEP_ARTIFACTS"] == "/artifacts"
        assert any(volume.startswith("artifacts:/artifacts") for volume in service["volumes"])


def test_password_comes_from_the_env_file_not_the_repo():
    raw = (ROOT / "docker-compose.yml").read_text()
    assert "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD" in raw
    assert re.search(r"^POSTGRES_PASSWORD=change-me$", (ROOT / ".env.example").read_text(), re.M)
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert "POSTGRES_PASSWORD" not in (ROOT / "Dockerfile").read_text()


def test_dockerfile_installs_the_project_the_way_the_readme_does():
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    instructions = [(item["instruction"], item["value"]) for item in parser.structure]
    assert parser.baseimage.startswith("python:3.11")
    readme_install = re.search(r"python3 -m venv \.venv && \.venv/bin/pip install -e \.", (ROOT / "README.md").read_text())
    assert readme_install, "the README's set-up command changed: change the Dockerfile with it"
    runs = [value for instruction, value in instructions if instruction == "RUN"]
    assert readme_install.group(0) in runs
    copied = " ".join(value for instruction, value in instructions if instruction == "COPY")
    for path in ("pyproject.toml", "sweep", "models", "data"):
        assert path in copied
    assert ("USER", "sweep") in instructions  # not root at run time
    # the compose file's artifacts volume starts out owned by the user that writes checkpoints to it
    assert any("mkdir /artifacts" in run and "chown sweep /artifacts" in run for run in runs)


def _local(command: list[str]) -> list[str]:
    """A service's command as a process here: the console script from this environment."""
    assert command[0] == "sweep"
    return [sys.executable, "-m", "sweep.cli", *command[1:]]


def test_postgres_healthcheck_command_runs_here(compose):
    test = compose["services"]["postgres"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    pg_isready = shutil.which("pg_isready") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_isready"))), None)
    if pg_isready is None:
        pytest.skip("pg_isready not installed")
    result = subprocess.run([str(pg_isready), *test[2:], "-h", "127.0.0.1", "-p", "5432"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_worker_and_dashboard_commands_run_here_against_local_postgres(compose, pg_url):
    env = {**os.environ, "SWEEP_STORAGE": pg_url, "OMP_NUM_THREADS": "1"}
    start = subprocess.run(
        [sys.executable, "-m", "sweep.cli", "start", "--study", "resnet-plateau", "--model", "resnet18", "--weights", "none",
         "--data", "synthetic:64", "--image-size", "32", "--max-train", "32", "--max-val", "16", "--epochs", "2",
         "--batch-size", "16", "--n-trials", "1", "--workers", "0"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert start.returncode == 0, start.stderr
    # The CPU service's command: the GPU one differs only in its GPU list (tests/test_launcher.py fakes one).
    worker = subprocess.run(_local(compose["services"]["cpu-workers"]["command"]), env=env,
                            capture_output=True, text=True, timeout=180)
    assert worker.returncode == 0, worker.stderr
    assert "started 1 workers: worker 0 (cpu)" in worker.stderr
    import optuna

    study = optuna.load_study(study_name="resnet-plateau", storage=pg_url)
    assert [trial.state.name for trial in study.trials] == ["COMPLETE"]

    command = _local(compose["services"]["dashboard"]["command"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command[command.index("--port") + 1] = str(port)  # 8080 may be taken here
    dashboard = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert dashboard.poll() is None, dashboard.communicate()[1]
                assert time.monotonic() < deadline, "dashboard did not answer within 60 s"
                time.sleep(0.5)
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)
