"""Storage as a user meets it: the heartbeat settings from the environment, which URLs and study names are
accepted, what a refused or lost connection says, and where a password may show."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc
import yaml
from click.testing import CliRunner

from sweep import storage
from sweep.cli import main

ROOT = Path(__file__).resolve().parent.parent
# A sweep that `start --workers 0` creates in a second: no training, tiny data.
TINY = ["--model", "resnet18", "--weights", "none", "--data", "synthetic:32", "--image-size", "32",
        "--max-train", "16", "--max-val", "8", "--epochs", "1", "--workers", "0", "--no-doctor", "--quiet"]


def sweep_process(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweep.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def error_line(output: str) -> str:
    """The one line the command ended with, after asserting it is the only error shown."""
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    return errors[0]


# --- heartbeat settings from the environment ---

@pytest.mark.parametrize("name, value, fragment", [
    ("SWEEP_GRACE_PERIOD", "sixty", "SWEEP_GRACE_PERIOD='sixty' is not accepted: expected a whole number of seconds"),
    ("SWEEP_HEARTBEAT_INTERVAL", "-5", "SWEEP_HEARTBEAT_INTERVAL='-5' is not accepted: expected a whole number"),
    ("SWEEP_HEARTBEAT_INTERVAL", "2.5", "SWEEP_HEARTBEAT_INTERVAL='2.5' is not accepted"),
    ("SWEEP_STORAGE_RETRY_LIMIT", "0", "SWEEP_STORAGE_RETRY_LIMIT='0' is not accepted: expected a number of seconds above 0"),
    ("SWEEP_STORAGE_RETRY_LIMIT", "inf", "SWEEP_STORAGE_RETRY_LIMIT='inf' is not accepted"),
    ("SWEEP_GRACE_PERIOD", "10", "SWEEP_GRACE_PERIOD=10 is not accepted with SWEEP_HEARTBEAT_INTERVAL=10: the grace "
                                 "period must be above the heartbeat interval"),
])
def test_bad_heartbeat_setting_is_one_line_and_exit_2(tmp_path, name, value, fragment):
    result = sweep_process("status", "--study", "s", "--storage", f"sqlite:///{tmp_path / 's.db'}", **{name: value})
    assert result.returncode == 2, result.stderr
    assert fragment in error_line(result.stderr)


@pytest.mark.parametrize("command", [
    ["start", *TINY],
    ["worker", "--device", "cpu"],
    ["analyze"],
    ["dashboard", "--port", "0"],
])
def test_every_command_that_opens_the_storage_refuses_a_bad_heartbeat_setting(tmp_path, command):
    result = sweep_process(command[0], "--study", "s", "--storage", f"sqlite:///{tmp_path / 's.db'}", *command[1:],
                           SWEEP_HEARTBEAT_INTERVAL="often")
    assert result.returncode == 2, result.stderr
    assert "SWEEP_HEARTBEAT_INTERVAL='often' is not accepted" in error_line(result.stderr)


def test_heartbeat_settings_are_read_when_the_storage_opens(monkeypatch, tmp_path):
    monkeypatch.setenv("SWEEP_HEARTBEAT_INTERVAL", "3")
    monkeypatch.setenv("SWEEP_GRACE_PERIOD", "7")
    monkeypatch.setenv("SWEEP_STORAGE_RETRY_LIMIT", " 2.5 ")
    assert storage.heartbeat_settings() == storage.HeartbeatSettings(3, 7, 2.5)
    opened = storage.open_storage(f"sqlite:///{tmp_path / 's.db'}")
    assert (opened.heartbeat_interval, opened.grace_period) == (3, 7)
    monkeypatch.setenv("SWEEP_GRACE_PERIOD", "")  # compose's ${VAR:-} when unset: the default
    assert storage.heartbeat_settings().grace_period == 60


# --- storage URLs and study names ---

@pytest.mark.parametrize("url", ["mysql://sweep@db/sweep", "mysql+pymysql://sweep@db/sweep", "redis://db:6379"])
def test_only_the_installed_backends_are_accepted(url):
    result = CliRunner().invoke(main, ["status", "--study", "s", "--storage", url])
    assert result.exit_code == 2, result.output
    assert "is not supported: expected sqlite or postgresql" in error_line(result.output)


@pytest.mark.parametrize("name, fragment", [
    ("", "--study '': a study needs a name"),
    ("n" * 600, "is 600 characters long: the storage holds names of up to 512"),
])
@pytest.mark.parametrize("command", [["start", *TINY], ["worker", "--device", "cpu"], ["status"], ["analyze"]])
def test_study_name_the_storage_cannot_hold_is_a_usage_error(pg_url, command, name, fragment):
    result = CliRunner().invoke(main, [command[0], "--study", name, "--storage", pg_url, *command[1:]])
    assert result.exit_code == 2, result.output
    assert fragment in error_line(result.output)
    assert optuna.get_all_study_summaries(pg_url) == []


def test_the_name_limit_is_optunas_column():
    from optuna.storages._rdb import models

    assert models.StudyModel.__table__.c.study_name.type.length == storage.STUDY_NAME_MAX_LENGTH


def test_budget_below_the_finished_trials_is_refused_on_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    made = CliRunner().invoke(main, ["start", "--study", "s", "--storage", url, *TINY, "--n-trials", "4"])
    assert made.exit_code == 0, made.output
    study = optuna.load_study(study_name="s", storage=url)
    for _ in range(2):
        study.tell(study.ask(), 1.0)

    refused = CliRunner().invoke(main, ["start", "--study", "s", "--storage", url, *TINY, "--n-trials", "1"])
    assert refused.exit_code == 2, refused.output
    assert ("study 's' has 2 finished trials, more than --n-trials 1: pass --n-trials 4 to resume it"
            in error_line(refused.output))
    assert optuna.load_study(study_name="s", storage=url).user_attrs["sweep_config"]["n_trials"] == 4

    # Down to exactly the finished trials is allowed: nothing more to run, and status agrees.
    resumed = CliRunner().invoke(main, ["start", "--study", "s", "--storage", url, *TINY, "--n-trials", "2"])
    assert resumed.exit_code == 0, resumed.output
    assert "2/2 trials finished" in CliRunner().invoke(main, ["status", "--study", "s", "--storage", url]).output


# --- refused and lost connections ---

@pytest.fixture
def limited_role(pg_url):
    """A login role with CONNECTION LIMIT n that owns the test database; its URL for n, dropped afterwards."""
    import psycopg

    from conftest import PG_ADMIN_DSN

    role, database = f"sweep_limited_{uuid.uuid4().hex[:8]}", pg_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'ALTER DATABASE "{database}" OWNER TO "{role}"')

    def url(limit: int) -> str:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT {limit}')
        return f"postgresql+psycopg://{role}@127.0.0.1:5432/{database}"

    yield url
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" OWNER TO postgres')
    with psycopg.connect(PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}", autocommit=True) as owner_db:
        owner_db.execute(f'DROP OWNED BY "{role}"')
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP ROLE "{role}"')


@pytest.mark.parametrize("limit", [0, 1])  # 1: Optuna's schema setup needs a second connection while holding one
def test_connection_limit_at_start_says_how_to_raise_it(limited_role, limit):
    result = CliRunner().invoke(main, ["start", "--study", "s", "--storage", limited_role(limit), *TINY])
    assert result.exit_code == 1, result.output
    line = error_line(result.output)
    assert "too many connections for role" in line
    assert "raise max_connections" in line and "PgBouncer" in line
    assert "invalid data" not in line


@pytest.mark.parametrize("message", [
    "connection failed: FATAL:  sorry, too many clients already",
    "connection failed: FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute",
])
def test_server_wide_connection_limit_says_how_to_raise_it(message):
    import psycopg

    try:
        try:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError(message))
        except sqlalchemy.exc.OperationalError as error:
            raise optuna.exceptions.StorageInternalError("invalid data in the commit, e.g. exceeding max length") from error
    except optuna.exceptions.StorageInternalError as wrapped:
        described = storage.describe_error(wrapped)
    assert described.startswith(message) and "max_connections" in described and "PgBouncer" in described


def test_outage_during_a_trial_is_described_by_the_database_cause(pg_url):
    import psycopg

    from conftest import PG_ADMIN_DSN

    database = pg_url.rsplit("/", 1)[1]
    study = optuna.create_study(study_name="s", storage=storage.open_storage(pg_url, heartbeat=False))

    def objective(trial):  # the database goes away while the trial trains: Optuna's tell then fails
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
        return 1.0

    try:
        with pytest.raises(Exception) as raised:
            study.optimize(objective, n_trials=1)
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    described = storage.describe_error(raised.value)
    assert f'database "{database}" is not currently accepting connections' in described
    assert "updated_state" not in described and "max length" not in described


# --- passwords ---

@pytest.mark.parametrize("url, masked", [
    ("postgresql+psycopg://u:p@ss@db/sweep", "postgresql+psycopg://u:***@db/sweep"),
    ("postgresql+psycopg://u:p@s/s:x@db:5432/sweep", "postgresql+psycopg://u:***@db:5432/sweep"),
    ("postgresql+psycopg://u:p%40ss@db/sweep", "postgresql+psycopg://u:***@db/sweep"),
    ("postgresql+psycopg://u@db/sweep?sslmode=require&password=hunter2", "postgresql+psycopg://u@db/sweep?sslmode=require&password=***"),
    ("sqlite:///runs/a@b.db", "sqlite:///runs/a@b.db"),
])
def test_masking_hides_the_whole_password(url, masked):
    assert storage.mask_url(url) == masked
    assert storage.mask_secrets(f"storage {url} unreachable") == f"storage {masked} unreachable"


def test_unencoded_at_in_the_password_is_refused_without_showing_it():
    result = CliRunner().invoke(main, ["status", "--study", "s", "--storage", "postgresql+psycopg://u:p@ss@db/sweep"])
    assert result.exit_code == 2, result.output
    assert "has an '@' in its password: write it as %40" in error_line(result.output)
    assert "ss@" not in result.output


@pytest.mark.parametrize("argv, warned", [
    (["start", "--study", "s", "--storage", "postgresql+psycopg://u:secret@db/sweep"], True),
    (["worker", "--storage=postgresql+psycopg://u:secret@db/sweep", "--study", "s"], True),
    (["status", "--storage", "postgresql+psycopg://u@db/sweep?password=secret", "--study", "s"], True),
    (["status", "--storage", "postgresql+psycopg://u@db/sweep", "--study", "s"], False),
    (["status", "--study", "s"], False),  # the URL in SWEEP_STORAGE
])
def test_a_password_on_the_command_line_is_noticed(argv, warned):
    warning = storage.password_on_command_line(argv)
    assert (warning is not None) == warned
    if warned:
        assert "SWEEP_STORAGE" in warning and "secret" not in warning


def env_example() -> dict[str, str]:
    return dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                if line and not line.startswith("#"))


def test_the_env_example_placeholder_password_is_refused():
    assert env_example()["POSTGRES_PASSWORD"] == storage.PLACEHOLDER_PASSWORD
    # Port 1: were it not refused first, the command would fail to connect (exit 1) instead.
    url = f"postgresql+psycopg://sweep:{storage.PLACEHOLDER_PASSWORD}@127.0.0.1:1/sweep"
    result = CliRunner().invoke(main, ["status", "--study", "s"], env={"SWEEP_STORAGE": url})
    assert result.exit_code == 2, result.output
    assert "set a real password in .env" in error_line(result.output)


@pytest.mark.parametrize("password, refused", [(env_example()["POSTGRES_PASSWORD"], True), ("s3cret-Pass", False)])
def test_compose_postgres_refuses_the_placeholder_before_its_first_start(tmp_path, password, refused):
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose (Debian package; .ci/run installs it) not found")
    config = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "--env-file",
                             str(ROOT / ".env.example"), "config"], capture_output=True, text=True, timeout=60)
    assert config.returncode == 0, config.stderr
    entrypoint = yaml.safe_load(config.stdout)["services"]["postgres"]["entrypoint"]
    # The image's own entrypoint, standing in here: it says what it was asked to run.
    fake = tmp_path / "docker-entrypoint.sh"
    fake.write_text('#!/bin/sh\necho "image entrypoint: $*"\n')
    fake.chmod(0o755)
    result = subprocess.run([part.replace("$$", "$") for part in entrypoint], capture_output=True, text=True,
                            env={"PATH": f"{tmp_path}:{os.environ['PATH']}", "POSTGRES_PASSWORD": password})
    if refused:
        assert result.returncode == 1 and "set a real password in .env" in result.stderr
        assert "image entrypoint" not in result.stdout
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "image entrypoint: postgres"
