"""Where the study lives: storage URLs and study names, password masking, heartbeat settings, and the RDB storage
with heartbeats."""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import optuna
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from sweep.errors import SweepFailed, UsageError
from sweep.recovery import RetryStaleTrial

DEFAULT_STORAGE = "sqlite:///plateau-sweep.db"
STORAGE_ENV = "SWEEP_STORAGE"
# The backends whose drivers we install and test; Optuna would accept more and then fail on a missing driver.
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
# .env.example's password: a URL that still carries it was copied, not configured.
PLACEHOLDER_PASSWORD = "change-me"
# Optuna's studies.study_name column is String(512); PostgreSQL refuses a longer name, SQLite would keep it.
STUDY_NAME_MAX_LENGTH = 512
MAX_RETRY = 2
# A hard bound per process: one connection holds the budget lock while the worker asks for a trial, the other is taken
# in turn by its trial loop, Optuna's heartbeat thread and the stale-trial watcher (each holds it for one query).
CONNECTIONS_PER_PROCESS = 2

# What SQLAlchemy and Optuna raise when the database is unreachable (server down, connection dropped, or so slow to
# answer that the process's other connection was not free within the pool's 30 s).
OUTAGE_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.TimeoutError,
                 optuna.exceptions.StorageInternalError)

log = logging.getLogger("sweep")

# scheme://user:PASSWORD@host: the password runs to the last '@', since an unencoded one may hold '@' itself.
_PASSWORD_IN_URL = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)\S*(?=@)", re.I)
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&]password=)[^&\s]*", re.I)
# PostgreSQL's too_many_connections (SQLSTATE 53300); libpq gives a refused connection no SQLSTATE, only the message.
_CONNECTION_LIMIT = re.compile(r"too many (clients|connections)|remaining connection slots are reserved", re.I)
CONNECTION_LIMIT_ADVICE = (
    "PostgreSQL's connection limit is reached: raise max_connections in postgresql.conf (or the role's or "
    "database's CONNECTION LIMIT), run fewer workers, or put a pooler such as PgBouncer (session mode) in front of it"
)


class StorageError(SweepFailed):
    """The storage cannot be opened; the message carries the masked URL and the reason."""


@dataclass(frozen=True)
class HeartbeatSettings:
    """A worker beats every ``heartbeat_interval`` s; a trial silent for ``grace_period`` s is failed and retried;
    a worker that loses the database waits ``storage_retry_limit`` s for it (retrying with backoff) before it gives up.
    """

    heartbeat_interval: int = 10
    grace_period: int = 60
    storage_retry_limit: float = 300.0


def heartbeat_settings(environ: Mapping[str, str] | None = None) -> HeartbeatSettings:
    """The settings from SWEEP_HEARTBEAT_INTERVAL, SWEEP_GRACE_PERIOD and SWEEP_STORAGE_RETRY_LIMIT, checked.

    Read when used, so a bad value is a one-line usage error of the command that needs it.
    """
    environ = os.environ if environ is None else environ
    default = HeartbeatSettings()
    interval = _seconds(environ, "SWEEP_HEARTBEAT_INTERVAL", default.heartbeat_interval, int)
    grace = _seconds(environ, "SWEEP_GRACE_PERIOD", default.grace_period, int)
    limit = _seconds(environ, "SWEEP_STORAGE_RETRY_LIMIT", default.storage_retry_limit, float)
    if grace <= interval:
        raise UsageError(
            f"SWEEP_GRACE_PERIOD={grace} is not accepted with SWEEP_HEARTBEAT_INTERVAL={interval}: the grace period "
            "must be above the heartbeat interval, or a live worker's trial is failed between two heartbeats"
        )
    return HeartbeatSettings(interval, grace, limit)


def _seconds(environ: Mapping[str, str], name: str, default: float, kind: type) -> float:
    text = environ.get(name, "").strip()
    if not text:  # unset, or empty as compose's ${VAR:-} passes it
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        what = "a whole number of seconds above 0" if kind is int else "a number of seconds above 0"
        raise UsageError(f"{name}={text!r} is not accepted: expected {what} (default {default:g})")
    return value


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``: the only form we ever print or log."""
    return mask_secrets(url)


def mask_secrets(text: str) -> str:
    """Every URL password inside free text (exception messages, log lines) replaced by ``***``."""
    return _PASSWORD_IN_QUERY.sub(r"\g<head>***", _PASSWORD_IN_URL.sub(r"\g<head>***", text))


def password_on_command_line(argv: list[str]) -> str | None:
    """The warning to print once when ``--storage`` in ``argv`` carries a password, else None.

    A command line is visible to every user of the machine (``ps``) and stays in the shell's history.
    """
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--storage" and index + 1 < len(argv):
            url = argv[index + 1]
        elif arg.startswith("--storage="):
            url = arg.split("=", 1)[1]
        else:
            continue
        if _has_password(url):
            return ("warning: --storage carries a password, which other users see in the process list and your shell "
                    "keeps in its history: set SWEEP_STORAGE instead (with docker compose, POSTGRES_PASSWORD in .env)")
    return None


def _has_password(url: str) -> bool:
    in_userinfo = _PASSWORD_IN_URL.search(url)
    return bool(in_userinfo and in_userinfo.end() > in_userinfo.end("head")) or bool(_PASSWORD_IN_QUERY.search(url))


def check_study_name(name: str) -> str:
    """A study name every storage can hold, or a one-line usage error saying what is accepted."""
    if not name:
        raise UsageError("--study '': a study needs a name, e.g. --study resnet-plateau")
    if len(name) > STUDY_NAME_MAX_LENGTH:
        raise UsageError(f"--study {name[:20]!r}... is {len(name)} characters long: "
                         f"the storage holds names of up to {STUDY_NAME_MAX_LENGTH}")
    return name


def check_url(url: str) -> str:
    """A usable SQLAlchemy URL, or a one-line usage error naming the (masked) value and what is accepted."""
    try:
        parsed = make_url(url)
    except Exception:
        raise UsageError(
            f"storage URL {mask_url(url)!r} is not a database URL: expected e.g. "
            f"{DEFAULT_STORAGE} or postgresql+psycopg://USER@HOST/DB"
        ) from None
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise UsageError(
            f"storage backend {parsed.get_backend_name()!r} in {mask_url(url)} is not supported: "
            f"expected {' or '.join(SUPPORTED_BACKENDS)}"
        )
    if parsed.host and "@" in parsed.host:  # SQLAlchemy ends the password at the first '@'
        raise UsageError(
            f"storage URL {mask_url(url)} has an '@' in its password: write it as %40 (URL-encode the password)"
        )
    if parsed.password == PLACEHOLDER_PASSWORD:
        raise UsageError(
            f"storage URL {mask_url(url)} carries the placeholder password {PLACEHOLDER_PASSWORD!r} from "
            ".env.example: set a real password in .env"
        )
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # Plain postgresql:// makes SQLAlchemy look for psycopg2, which we don't ship.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def open_storage(url: str, *, heartbeat: bool = True) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with a pre-pinged connection pool and, for workers, trial heartbeats."""
    url = check_url(url)
    settings = heartbeat_settings()
    engine_kwargs = {"pool_pre_ping": True}
    if make_url(url).get_backend_name() == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
        # LIFO: the second connection stays idle unless two threads overlap, so a server or pooler that closes idle
        # sessions (idle_session_timeout, PgBouncer's client_idle_timeout) frees it; pre-ping reconnects on demand.
        engine_kwargs.update(pool_size=CONNECTIONS_PER_PROCESS, max_overflow=0, pool_use_lifo=True)
    heartbeat_kwargs = (
        {
            "heartbeat_interval": settings.heartbeat_interval,
            "grace_period": settings.grace_period,
            # A trial whose worker died is failed, its params are tried again by another worker, and a line says so.
            "heartbeat_stale_trial_callback": RetryStaleTrial(max_retry=MAX_RETRY),
        }
        if heartbeat
        else {}
    )
    try:
        return _SweepRDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat_kwargs)
    except (*OUTAGE_ERRORS, sqlalchemy.exc.SQLAlchemyError, OSError) as error:
        raise StorageError(f"cannot open storage {mask_url(url)}: {describe_error(error)}") from None


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
    """One line saying why a database call failed, with any password masked and, where there is one, the fix."""
    cause = database_cause(error)
    lines = str(cause).strip().splitlines() or [type(cause).__name__]
    line = mask_secrets(lines[0])
    if getattr(cause, "sqlstate", None) == "53300" or _CONNECTION_LIMIT.search(line):
        line = f"{line}; {CONNECTION_LIMIT_ADVICE}"
    return line


def database_cause(error: BaseException) -> BaseException:
    """The database driver's own error behind ``error``; else the first SQLAlchemy or OS error behind it; else ``error``.

    Optuna wraps every failed query in a StorageInternalError that blames "invalid data in the commit", and its
    trial loop can fail with an UnboundLocalError while handling one: neither says why the database failed.
    """
    seen, link = set(), error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, sqlalchemy.exc.DBAPIError) and isinstance(link.orig, BaseException):
            return link.orig
        if isinstance(link, (sqlalchemy.exc.SQLAlchemyError, OSError)):
            return link
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return error


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


def wait_for_storage(storage: optuna.storages.RDBStorage, reason: str, limit: float | None = None) -> None:
    """Block until the database answers again, retrying with backoff; StorageError after ``limit`` seconds
    (SWEEP_STORAGE_RETRY_LIMIT unless given)."""
    limit = heartbeat_settings().storage_retry_limit if limit is None else limit
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
