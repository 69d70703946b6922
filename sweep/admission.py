"""The global trial budget across workers: a new trial starts only while the study has room for it.

Optuna's ``MaxTrialsCallback`` stops a worker only after a trial ends, so N workers can overshoot
the budget by up to N-1 trials. Here the check "finished + running < budget" and the creation of
the trial happen under one lock shared by every worker of the study; Optuna has no such lock, so
this is written by hand: a PostgreSQL advisory lock, or a file lock beside a SQLite database.
"""

from __future__ import annotations

import fcntl
import zlib
from pathlib import Path

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url


class BudgetGate:
    """Held from the budget check until the new trial exists as RUNNING (``release`` in the objective)."""

    def __init__(self, storage: optuna.storages.BaseStorage | None, study_name: str):
        self._acquire, self._release = _lock_for(storage, study_name)
        self._held = False

    def acquire(self) -> None:
        self._acquire()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._release()

    def __enter__(self) -> "BudgetGate":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock_for(storage, study_name: str):
    if not isinstance(storage, optuna.storages.RDBStorage):
        return (lambda: None), (lambda: None)
    url = make_url(storage.url)
    if url.get_backend_name() == "postgresql":
        return _advisory_lock(storage.engine, study_name)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return _file_lock(Path(url.database).with_name(Path(url.database).name + ".budget-lock"))
    return (lambda: None), (lambda: None)


def _advisory_lock(engine: sqlalchemy.Engine, study_name: str):
    # A session-level lock dies with its connection, so a killed worker never leaves it held.
    key = zlib.crc32(f"plateau-sweep:{study_name}".encode()) - 2**31
    state: dict = {}

    def acquire() -> None:
        connection = engine.connect()
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        except BaseException:
            connection.close()
            raise
        state["connection"] = connection

    def release() -> None:
        connection = state.pop("connection", None)
        if connection is None:
            return
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
        except sqlalchemy.exc.SQLAlchemyError:
            pass  # the connection is gone, and the lock went with it
        finally:
            try:
                connection.close()
            except sqlalchemy.exc.SQLAlchemyError:
                pass

    return acquire, release


def _file_lock(path: Path):
    state: dict = {}

    def acquire() -> None:
        handle = open(path, "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        state["handle"] = handle

    def release() -> None:
        handle = state.pop("handle", None)
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    return acquire, release
