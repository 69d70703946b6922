"""The study's artifact store (Optuna's ``optuna.artifacts``): where it is, opening it, and which trials' weights
stay. No torch: ``sweep dashboard`` and ``export`` read it.

A trial keeps at most two things in the store: its last training state (``checkpoint``, for a retry to resume
from) while it runs, and its best epoch's weights (``weights``) once it has ended. Of the finished trials only
the best ``keep_best`` keep their weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import optuna
import sqlalchemy.exc
import xxhash
from optuna.artifacts.exceptions import ArtifactNotFound
from sqlalchemy.engine import make_url

from sweep import study as study_module
from sweep.analysis import classify_curve
from sweep.errors import UsageError
from sweep.optuna_internals import rdb_backend
from sweep.record import DIGEST, TrialRecord
from sweep.storage import describe_error, mask_secrets

log = logging.getLogger("sweep")

ARTIFACTS_ENV = "SWEEP_ARTIFACTS"
S3_SCHEME = "s3://"
DEFAULT_FOLDER = "plateau-sweep.artifacts"
# S3's own rule for bucket names: 3-63 lower-case letters, digits, dots and hyphens, a letter or digit at each end.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

# Verdicts whose weights are not worth exporting: the run stalled, or its loss blew up.
UNWANTED_VERDICTS = ("plateau", "diverged")


def default_location(storage_url: str) -> str:
    """A folder beside a SQLite file (``X.db`` -> ``X.artifacts``); for a server database, one in the working
    directory. Absolute, since the location is stored with the study and read by every worker."""
    url = make_url(storage_url)
    database = url.database if url.get_backend_name() == "sqlite" else None
    if database and database != ":memory:":
        path = Path(database).expanduser().resolve()
        return str(path.with_name(path.stem + ".artifacts"))
    return str(Path.cwd() / DEFAULT_FOLDER)


def check_location(text: str) -> str:
    """``s3://BUCKET[/PREFIX]`` or a folder (made absolute); a one-line usage error naming what is accepted."""
    text = text.strip()
    if not text:
        raise UsageError("'' is not a store: expected a folder or s3://BUCKET[/PREFIX]")
    if text.lower().startswith(S3_SCHEME):
        bucket, _ = _split_s3(text)
        if not _BUCKET.match(bucket):
            raise UsageError(f"{mask_secrets(text)!r}: bucket {bucket!r} is not an S3 bucket name (3-63 lower-case "
                             "letters, digits, '.' or '-'); expected s3://BUCKET[/PREFIX]")
        return text
    if "://" in text:
        raise UsageError(f"{mask_secrets(text)!r} is not a store: expected a folder or s3://BUCKET[/PREFIX]")
    path = Path(text).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{text!r} is a file: expected a folder (made if missing) or s3://BUCKET[/PREFIX]")
    return str(path)


def _split_s3(text: str) -> tuple[str, str]:
    bucket, _, prefix = text[len(S3_SCHEME):].partition("/")
    return bucket, prefix.strip("/")


class PrefixedStore:
    """An artifact store under a key prefix of another, so that several sweeps can share one bucket."""

    def __init__(self, store, prefix: str):
        self.store = store
        self.prefix = prefix.rstrip("/") + "/"

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self.store.open_reader(self.prefix + artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.store.write(self.prefix + artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self.store.remove(self.prefix + artifact_id)


class FolderStore(optuna.artifacts.FileSystemArtifactStore):
    """Optuna's folder store, which makes its folder again when it is gone: a process caches its store, so a folder
    deleted while the sweep runs would otherwise fail every later checkpoint of that process."""

    def __init__(self, folder: str):
        super().__init__(folder)
        self.folder = Path(folder)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        if not self.folder.is_dir():
            self.folder.mkdir(parents=True, exist_ok=True)
            log.warning("artifact folder %s was deleted: made it again for the next checkpoints (the checkpoints and "
                        "kept weights it held are lost)", self.folder)
        super().write(artifact_id, content_body)


def open_store(location: str):
    """Optuna's artifact store at ``location``: ``Boto3ArtifactStore`` for s3:// (credentials and endpoint from
    boto3's usual sources: AWS_ENDPOINT_URL points it at MinIO), else ``FolderStore`` (folder made)."""
    if location.lower().startswith(S3_SCHEME):
        try:
            import boto3
        except ImportError:
            raise UsageError(f"--artifacts {location}: needs boto3 (pip install boto3)") from None
        bucket, prefix = _split_s3(location)
        # avoid_buf_copy: checkpoints are already in memory; a second copy of a ResNet's state is not needed
        store = optuna.artifacts.Boto3ArtifactStore(bucket, boto3.client("s3"), avoid_buf_copy=True)
        return PrefixedStore(store, prefix) if prefix else store
    Path(location).mkdir(parents=True, exist_ok=True)
    return FolderStore(location)


def location_of(config, storage: optuna.storages.BaseStorage) -> str | None:
    """The store a study's config names; a config that names none gets SWEEP_ARTIFACTS or the default beside its
    storage; an in-memory study, which nothing can resume, none."""
    if config.artifacts:
        return config.artifacts
    url = getattr(rdb_backend(storage), "url", None)
    if not url:
        return None
    if os.environ.get(ARTIFACTS_ENV, "").strip():
        return check_location(os.environ[ARTIFACTS_ENV])
    return default_location(url)


@dataclass(frozen=True)
class StudyStore:
    """A study's artifact store, open, and where it is (the masked location goes into messages)."""

    location: str
    store: Any


_opened: dict[str, StudyStore] = {}  # one store per location and process, like the data set


def open_study_store(config, storage: optuna.storages.BaseStorage) -> StudyStore | None:
    """The study's artifact store: the one place it is found and opened. None when checkpoints are off, when an
    in-memory study has nowhere to keep one, or when it cannot be opened (said in one line each time it is asked
    for: the sweep goes on without checkpoints and weights)."""
    location = location_of(config, storage) if config.checkpoints else None
    if location is None:
        return None
    if location not in _opened:
        try:
            _opened[location] = StudyStore(location, open_store(location))
        except Exception as error:
            log.warning("artifact store %s cannot be opened (%s): no checkpoints or weights while it cannot",
                        mask_secrets(location), error_line(error))
            return None
    return _opened[location]


def error_line(error: BaseException) -> str:
    """One line for a store's error, any password masked; where the database failed (a record write beside the
    store's), the database's own reason rather than Optuna's wrapper."""
    if isinstance(error, (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)):
        return describe_error(error)
    lines = str(error).strip().splitlines()
    return mask_secrets(lines[0]) if lines else type(error).__name__


def settle_location(config, storage, study_name: str, storage_url: str):
    """The config with its store's location fixed for good: --artifacts, else SWEEP_ARTIFACTS, else what the study
    already holds, else the default beside the storage. Said in one line, where a worker elsewhere must see it."""
    location = config.artifacts or os.environ.get(ARTIFACTS_ENV, "").strip()
    if location:
        try:
            location = check_location(location)
        except UsageError as error:
            given = "--artifacts" if config.artifacts else ARTIFACTS_ENV
            raise UsageError(f"{given}: {error}") from None
    elif study_module.exists(storage, study_name):
        location = study_module.stored_config(optuna.load_study(study_name=study_name, storage=storage)).artifacts
    else:
        location = default_location(storage_url)
        if config.checkpoints and make_url(storage_url).get_backend_name() != "sqlite":
            log.info("checkpoints go to %s (no --artifacts given): workers on other machines need that folder at the "
                     "same path, or pass --artifacts s3://BUCKET/PREFIX", location)
    return dataclasses.replace(config, artifacts=location)


def state_ids(study_name: str, number: int) -> tuple[str, str]:
    """The two keys a trial's training state alternates between: a write cut short only ever hits the one that
    the trial's ``checkpoint`` attr does not name. Named by study and trial so that a store can be shared."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", study_name)[:40]
    digest = hashlib.sha1(study_name.encode()).hexdigest()[:8]
    return tuple(f"{safe}-{digest}-trial-{number}-state-{slot}" for slot in "ab")


# How a ref's digest was made, by its key: the one written now (``DIGEST``, xxh3-128: 25 GB/s on one core, 15x
# sha256's speed, so hashing a 283 MB state beside training costs about 11 ms) and the older one, still checked.
# A digest tells bytes changed by a disk, a torn copy or a hand; it is not a signature.
DIGEST_ALGORITHMS = {DIGEST: xxhash.xxh3_128, "sha256": hashlib.sha256}


class DigestMismatch(ValueError):
    """An artifact's bytes are not the ones written (same length or not): a disk, a copy or a hand changed them."""

    def __init__(self, artifact_id: str, algorithm: str, found: str, written: str):
        super().__init__(f"{artifact_id}: {algorithm} {found[:12]} where {written[:12]} was written")
        self.algorithm = algorithm
        self.found = found
        self.written = written


def digest_of(content: bytes | memoryview | BinaryIO, algorithm: str = DIGEST) -> str:
    """The hex digest of bytes or of an open binary file (read in chunks)."""
    hasher = DIGEST_ALGORITHMS[algorithm]()
    if isinstance(content, (bytes, bytearray, memoryview)):
        hasher.update(content)
    else:
        for chunk in iter(lambda: content.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def verify_digest(ref: dict, content: bytes | memoryview | BinaryIO, artifact: str) -> None:
    """DigestMismatch when ``content`` is not what ``ref`` (a checkpoint or weights record) says was written; a ref
    recorded without a digest (by an older version) passes."""
    algorithm = next((key for key in DIGEST_ALGORITHMS if key in ref), None)
    if algorithm is not None:
        found = digest_of(content, algorithm)
        if found != ref[algorithm]:
            raise DigestMismatch(artifact, algorithm, found, ref[algorithm])


def remove_quietly(store, artifact_id: str) -> bool:
    """Remove an artifact; False when it was not there (already removed, or never finished writing)."""
    try:
        store.remove(artifact_id)
        return True
    except ArtifactNotFound:
        return False
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class Kept:
    """A finished trial whose best weights are in the store, with what ranks it."""

    number: int
    state: str
    verdict: str
    best_val_loss: float
    weights: dict

    @property
    def wanted(self) -> bool:
        return self.state == "COMPLETE" and self.verdict not in UNWANTED_VERDICTS


def ranked_weights(trials: list[optuna.trial.FrozenTrial], *, patience: int, min_delta: float) -> list[Kept]:
    """Finished trials that recorded weights, best first: complete runs without a plateau or divergence by
    validation loss, then the rest by validation loss. ``sweep export`` picks the first wanted one; the sweep
    keeps the first ``keep_best``."""
    return ranked_records([TrialRecord.from_trial(trial) for trial in trials], patience=patience, min_delta=min_delta)


def ranked_records(records: list[TrialRecord], *, patience: int, min_delta: float) -> list[Kept]:
    """``ranked_weights`` of trials already read."""
    kept = []
    for record in records:
        weights = record.weights
        if not weights or record.state not in ("COMPLETE", "PRUNED"):
            continue
        verdict = classify_curve(record.history, patience=patience, min_delta=min_delta, failure=record.failure)
        kept.append(Kept(record.number, record.state, verdict.verdict, float(weights["val_loss"]), weights))
    return sorted(kept, key=_rank)


def exportable(records: list[TrialRecord], *, patience: int, min_delta: float) -> bool:
    """Whether ``sweep export`` without ``--trial`` finds a trial to write: a complete run without a plateau or
    divergence whose weights were recorded."""
    return any(kept.wanted for kept in ranked_records(records, patience=patience, min_delta=min_delta))


def _rank(kept: Kept) -> tuple:
    return not kept.wanted, kept.best_val_loss, kept.number


def ranks_within(trials: list[optuna.trial.FrozenTrial], candidate: Kept, keep_best: int, *, patience: int,
                 min_delta: float) -> bool:
    """Whether ``candidate``, a trial ending now, ranks among the best ``keep_best`` of ``trials``' weights. Where
    ``keep_best`` finished trials rank before it, it ranks after them in any later study too: its weights would
    be removed as soon as they were written."""
    ahead = [kept for kept in ranked_weights(trials, patience=patience, min_delta=min_delta)
             if _rank(kept) < _rank(candidate)]
    return len(ahead) < keep_best


class KeepBest:
    """Optuna callback: after each trial, only the best ``keep_best`` finished trials keep their weights; when the
    whole budget has ended, states that no retry will read any more go too.

    Safe with many workers: a trial dropped from the best K of some finished trials is out of the best K of any
    larger set, so workers that see the study at different moments never remove a weight another one keeps.
    """

    def __init__(self, store, *, keep_best: int, n_trials: int, patience: int, min_delta: float):
        self.store = store
        self.keep_best = keep_best
        self.n_trials = n_trials
        self.patience = patience
        self.min_delta = min_delta
        self._removed: set[str] = set()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._removing = f"the weights of trials outside the best {self.keep_best}"
        try:
            self.prune(study)
        except Exception as error:  # bounding the store's size never stops a sweep
            log.warning("could not remove %s: %s", self._removing, error_line(error))

    def prune(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        ranked = ranked_weights(trials, patience=self.patience, min_delta=self.min_delta)
        for dropped in ranked[self.keep_best:]:
            artifact_id = dropped.weights["artifact_id"]
            if artifact_id not in self._removed:
                remove_quietly(self.store, artifact_id)
                self._removed.add(artifact_id)
        states = optuna.trial.TrialState
        live = [t for t in trials if t.state in (states.RUNNING, states.WAITING)]
        finished = [t for t in trials if t.state in (states.COMPLETE, states.PRUNED)]
        if not live and len(finished) >= self.n_trials:
            self._removing = "the training states of the finished sweep"
            # failed trials that will not be retried any more still hold a state (a retry could have used it)
            for each in trials:
                for artifact_id in state_ids(study.study_name, each.number):
                    if artifact_id not in self._removed:
                        remove_quietly(self.store, artifact_id)
                        self._removed.add(artifact_id)


def keep_best_for(config, opened: StudyStore | None) -> tuple:
    """The worker's ``KeepBest`` callback for the study's store, as a tuple: empty without a store."""
    if opened is None:
        return ()
    return (KeepBest(opened.store, keep_best=config.keep_best, n_trials=config.n_trials, patience=config.patience,
                     min_delta=config.min_delta),)
