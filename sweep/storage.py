"""Where the study lives: storage URLs, password masking, and the RDB storage with heartbeats."""

from __future__ import annotations

import logging
import os
import re
import time
from datetime import datetime

import optuna
import sqlalchemy.exc

from sweep.errors import SweepFailed
from sqlalchemy.engine import make_url

DEFAULT_STORAGE = "sqlite:///plateau-sweep.db"
STORAGE_ENV = "SWEEP_STORAGE"

# A worker beats every HEARTBEAT_INTERVAL s; a trial silent for GRACE_PERIOD s is failed and retried.
HEARTBEAT_INTERVAL = int(os.environ.get("SWEEP_HEARTBEAT_INTERVAL", "10"))
GRACE_PERIOD = int(os.environ.get("SWEEP_GRACE_PERIOD", "60"))
MAX_RETRY = 2
# A worker that loses the database waits this long for it (retrying with backoff) before it gives up.
STORAGE_RETRY_LIMIT = float(os.environ.get("SWEEP_STORAGE_RETRY_LIMIT", "300"))

# What SQLAlchemy and Optuna raise when the database is unreachable (server down, connection dropped).
OUTAGE_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, optuna.exceptions.StorageInternalError)

log = logging.getLogger("sweep")

_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z0-9+]+://[^:/@\s]*:)(?P<password>[^@\s]*)(?=@)", re.I)


class StorageError(SweepFailed):
    """The storage cannot be opened; the message carries the masked URL and the reason."""


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``: the only form we ever print or log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return _PASSWORD_IN_URL.sub(r"\g<head>***", url)


def mask_secrets(text: str) -> str:
    """Every URL password inside free text (exception messages, log lines) replaced by ``***``."""
    return _PASSWORD_IN_URL.sub(r"\g<head>***", text)


def check_url(url: str) -> str:
    """A usable SQLAlchemy URL, or a one-line error naming the (masked) value and what is accepted."""
    try:
        parsed = make_url(url)
    except Exception:
        raise StorageError(
            f"storage URL {mask_url(url)!r} is not a database URL: expected e.g. "
            f"{DEFAULT_STORAGE} or postgresql+psycopg://USER@HOST/DB"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "mysql"):
        raise StorageError(
            f"storage backend {parsed.get_backend_name()!r} in {mask_url(url)} is not supported: "
            "expected sqlite or postgresql"
        )
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # Plain postgresql:// makes SQLAlchemy look for psycopg2, which we don't ship.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def open_storage(url: str, *, heartbeat: bool = True) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with a pre-pinged connection pool and, for workers, trial heartbeats."""
    url = check_url(url)
    engine_kwargs = {"pool_pre_ping": True}
    if make_url(url).get_backend_name() == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    heartbeat_kwargs = (
        {
            "heartbeat_interval": HEARTBEAT_INTERVAL,
            "grace_period": GRACE_PERIOD,
            # A trial whose worker died is failed and its params are tried again by another worker.
            "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=MAX_RETRY
            ),
        }
        if heartbeat
        else {}
    )
    try:
        return _SweepRDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat_kwargs)
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as error:
        reason = mask_secrets(str(getattr(error, "orig", None) or error).strip().splitlines()[0])
        raise StorageError(f"cannot open storage {mask_url(url)}: {reason}") from None


class _SweepRDBStorage(optuna.storages.RDBStorage):
    """RDBStorage whose heartbeat survives a database outage: one log line, then it beats again next interval."""

    _outage_logged = False

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except OUTAGE_ERRORS as error:
            # Optuna's heartbeat thread would die on the first error and leave the trial to go stale.
            if not self._outage_logged:
                log.warning("heartbeat for trial id %s not recorded: %s", trial_id, describe_error(error))
                self._outage_logged = True
        else:
            self._outage_logged = False


def describe_error(error: BaseException) -> str:
    """One line saying why a database call failed, with any password masked."""
    cause = getattr(error, "orig", None) or error.__cause__ or error
    lines = str(cause).strip().splitlines() or [type(cause).__name__]
    return mask_secrets(lines[0])


def _ping(storage: optuna.storages.RDBStorage) -> None:
    """One round trip to the database; raises what SQLAlchemy raises when it does not answer."""
    with storage.engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT 1"))


def storage_reachable(storage: optuna.storages.RDBStorage) -> bool:
    try:
        _ping(storage)
        return True
    except (sqlalchemy.exc.SQLAlchemyError, OSError):
        return False


def wait_for_storage(storage: optuna.storages.RDBStorage, reason: str, limit: float = STORAGE_RETRY_LIMIT) -> None:
    """Block until the database answers again, retrying with backoff; StorageError after ``limit`` seconds."""
    url = mask_url(storage.url)
    start = time.monotonic()
    delay = 1.0
    while True:
        waited = time.monotonic() - start
        if waited >= limit:
            raise StorageError(f"storage {url} unreachable for {waited:.0f}s (limit {limit:.0f}s): {reason}")
        log.warning("storage %s unreachable (%s); retrying in %.0fs, giving up after %.0fs", url, reason, delay, limit)
        time.sleep(min(delay, max(0.0, limit - waited)))
        try:
            _ping(storage)
        except (sqlalchemy.exc.SQLAlchemyError, OSError) as error:
            reason = describe_error(error)
            delay = min(delay * 2, 30.0)
            continue
        log.warning("storage %s reachable again after %.0fs; going on", url, time.monotonic() - start)
        return


def heartbeat_ages(storage: optuna.storages.BaseStorage, study: optuna.Study) -> dict[int, float]:
    """Seconds since the last heartbeat of each trial of ``study`` that has one, by trial number.

    Optuna has no public getter for heartbeats; this reads its ``trial_heartbeats`` table the way
    its own ``_get_stale_trial_ids`` does, with the database's clock on both sides.
    """
    if not isinstance(storage, optuna.storages.RDBStorage):
        return {}
    query = sqlalchemy.text(
        "SELECT t.number, h.heartbeat FROM trial_heartbeats h JOIN trials t ON t.trial_id = h.trial_id "
        "JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name"
    )
    with storage.engine.connect() as connection:
        now = connection.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        rows = connection.execute(query, {"name": study.study_name}).all()
    if isinstance(now, str):  # SQLite returns its CURRENT_TIMESTAMP as text
        now = datetime.fromisoformat(now)
    now = now.replace(tzinfo=None)
    ages = {}
    for number, beat in rows:
        if isinstance(beat, str):
            beat = datetime.fromisoformat(beat)
        ages[number] = max(0.0, (now - beat.replace(tzinfo=None)).total_seconds())
    return ages
