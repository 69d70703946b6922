"""Shared fixtures: throw-away PostgreSQL databases and storage URLs for every backend, the analysis JSON's schema check."""

from __future__ import annotations

import json
import os
import uuid

import pytest

PG_ADMIN_DSN = os.environ.get("SWEEP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin_connect():
    import psycopg

    return psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)


def postgres_available() -> bool:
    try:
        with _pg_admin_connect():
            return True
    except Exception:
        return False


@pytest.fixture(autouse=True)
def artifacts_in_tmp(tmp_path, monkeypatch):
    """A test's checkpoints go to its own folder, not to the working directory (a PostgreSQL sweep's default)."""
    monkeypatch.setenv("SWEEP_ARTIFACTS", str(tmp_path / "artifacts"))


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for one test, dropped afterwards; SQLAlchemy URL for psycopg 3."""
    if not postgres_available():
        pytest.skip(f"no PostgreSQL answers at {PG_ADMIN_DSN} (.ci/run starts one)")
    name = f"sweep_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    from urllib.parse import urlsplit

    parts = urlsplit(PG_ADMIN_DSN)
    yield f"postgresql+psycopg://{parts.netloc}/{name}"
    with _pg_admin_connect() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    """The same test on the embedded store and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sweep.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def valid_analysis():
    """A check for every analysis a test makes: strict JSON (no NaN) that sweep/analysis/schema.json accepts.

    Returns the function; it returns the result it was given, so a test can wrap ``analyze(...)`` in it.
    """
    import jsonschema

    from sweep.analysis import json_schema

    jsonschema.Draft202012Validator.check_schema(json_schema())
    validator = jsonschema.Draft202012Validator(json_schema())

    def check(result: dict) -> dict:
        as_read = json.loads(json.dumps(result, allow_nan=False))
        errors = list(validator.iter_errors(as_read))
        assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
        return result

    return check
