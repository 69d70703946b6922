"""Where the study lives: storage URLs, password masking, and the RDB storage with heartbeats."""

from __future__ import annotations

import os
import re

import optuna
import sqlalchemy.exc
from sqlalchemy.engine import make_url

DEFAULT_STORAGE = "sqlite:///plateau-sweep.db"
STORAGE_ENV = "SWEEP_STORAGE"

# A worker beats every HEARTBEAT_INTERVAL s; a trial silent for GRACE_PERIOD s is failed and retried.
HEARTBEAT_INTERVAL = int(os.environ.get("SWEEP_HEARTBEAT_INTERVAL", "10"))
GRACE_PERIOD = int(os.environ.get("SWEEP_GRACE_PERIOD", "60"))
MAX_RETRY = 2

_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z0-9+]+://[^:/@\s]*:)(?P<password>[^@\s]*)(?=@)", re.I)


class StorageError(RuntimeError):
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
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat_kwargs)
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as error:
        reason = mask_secrets(str(getattr(error, "orig", None) or error).strip().splitlines()[0])
        raise StorageError(f"cannot open storage {mask_url(url)}: {reason}") from None
