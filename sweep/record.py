"""A trial's record: the one reader and writer of the user attrs the objective leaves on a trial.

Everything else (status, progress lines, dashboard notes, the analysis) reads trials through
``TrialRecord.from_trial``, so an attr's name and shape live here only. No torch: ``sweep status``,
``analyze`` and ``dashboard`` import this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import optuna

FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")

# User attr names, written only by ``TrialWriter``.
HISTORY = "history"  # [{epoch, train_loss, val_loss, val_acc, lr, seconds}], epochs from 1
FAILURE = "failure"  # why the trial stopped early: "oom", "nan_loss", ...
PRUNED_AT = "pruned_at"  # the epoch it stopped at
INIT = "init"  # "pretrained" or "random": the weights it started from
HOLD_UNTIL = "hold_until"  # the first epoch at which a pruner may judge its rank
N_CLASSES = "n_classes"  # classes of its data: ln(n_classes) is the loss of a uniform guess, the chance level
WORKER = "worker"  # {host, pid, device}
COMPILE_SECONDS = "compile_seconds"
BASELINE = "baseline"  # set on the enqueued baseline trial
DUPLICATE_OF = "duplicate_of"  # a proposal identical to this earlier trial's params: ended untrained
# {artifact_id, epoch, bytes, trial, xxh3_128}: the last complete training state in the artifact store
CHECKPOINT = "checkpoint"
WEIGHTS = "weights"  # {artifact_id, epoch, val_loss, bytes, xxh3_128}: the best epoch's weights (safetensors)
DIGEST = "xxh3_128"  # key of a CHECKPOINT or WEIGHTS ref: the digest of the bytes written (artifacts.DIGEST_ALGORITHMS)
RESUMED_FROM = "resumed_from"  # {trial, epoch}: the trial and epoch a retry continued from
# {reference, param, value, replicate}: a one-change run, set on the enqueued trial (never pruned, never deduplicated)
CONFIRMATION = "confirmation"


def _float(value: Any) -> float | None:
    """A stored number as a float (NaN and inf kept: a diverged epoch says so); None where it is not one."""
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _epoch_row(row: dict) -> dict:
    """One history row with every value but the epoch number as a float or None: the only coercion of a curve."""
    return {key: int(value) if key == "epoch" else _float(value) for key, value in row.items()}


@dataclass(frozen=True)
class TrialRecord:
    """What is known about one trial, read from the study; plain data, no storage handle."""

    number: int
    state: str  # "COMPLETE" | "PRUNED" | "FAIL" | "RUNNING" | "WAITING"
    params: dict[str, Any]
    history: list[dict] = field(default_factory=list)
    value: float | None = None
    failure: str | None = None
    pruned_at: int | None = None
    init: str | None = None
    hold_until: int | None = None
    worker: dict = field(default_factory=dict)
    is_baseline: bool = False
    duplicate_of: int | None = None
    weights: dict | None = None  # where its best weights are, while the artifact store keeps them
    resumed_from: dict | None = None
    started: str | None = None  # ISO time the trial started
    confirmation: dict | None = None  # what this one-change run tests, or None for a search trial
    n_classes: int | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    @classmethod
    def from_trial(cls, trial: optuna.trial.FrozenTrial) -> "TrialRecord":
        attrs = trial.user_attrs
        values = trial.values
        return cls(
            number=trial.number,
            state=trial.state.name,
            params=dict(trial.params),
            history=_history(trial),
            value=float(values[0]) if values else None,
            failure=attrs.get(FAILURE),
            pruned_at=attrs.get(PRUNED_AT),
            init=attrs.get(INIT),
            hold_until=attrs.get(HOLD_UNTIL),
            worker=dict(attrs.get(WORKER) or {}),
            is_baseline=bool(attrs.get(BASELINE)),
            duplicate_of=attrs.get(DUPLICATE_OF),
            weights=attrs.get(WEIGHTS),
            resumed_from=attrs.get(RESUMED_FROM),
            started=trial.datetime_start.isoformat(timespec="seconds") if trial.datetime_start else None,
            confirmation=attrs.get(CONFIRMATION),
            n_classes=attrs.get(N_CLASSES),
        )


def _history(trial: optuna.trial.FrozenTrial) -> list[dict]:
    history = trial.user_attrs.get(HISTORY)
    if isinstance(history, str):
        history = json.loads(history)
    if history:
        return [_epoch_row(dict(row)) for row in history]
    # A trial stopped before it wrote its history still reported val_loss to the pruner: use that.
    return [{"epoch": int(step), "val_loss": float(value)} for step, value in sorted(trial.intermediate_values.items())]


def hold_until(trial: optuna.trial.FrozenTrial) -> int | None:
    """The trial's own hold for the pruner, without reading the rest of its record (the pruner asks every epoch)."""
    value = trial.user_attrs.get(HOLD_UNTIL)
    return int(value) if value is not None else None


def duplicate_of(trial: optuna.trial.FrozenTrial) -> int | None:
    """The earlier trial whose params this one repeated (it ended untrained), read without the rest of its record."""
    return trial.user_attrs.get(DUPLICATE_OF)


def confirmation_of(trial: optuna.trial.FrozenTrial | optuna.Trial) -> dict | None:
    """What the one-change run tests ({reference, param, value, replicate}), or None for a search trial."""
    return trial.user_attrs.get(CONFIRMATION)


def checkpoint_of(trial: optuna.trial.FrozenTrial | optuna.Trial) -> dict | None:
    """The trial's last complete checkpoint; a retry starts with the attrs of the trial it retries, so this is
    where it resumes."""
    return trial.user_attrs.get(CHECKPOINT)


class TrialWriter:
    """Writes a running trial's record; the objective's only way to set user attrs."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial
        self.history: list[dict] = []

    def started(self, worker: dict) -> None:
        self.trial.set_user_attr(WORKER, worker)

    def built(self, init: str, hold_until: int, n_classes: int | None = None) -> None:
        self.trial.set_user_attr(INIT, init)
        self.trial.set_user_attr(HOLD_UNTIL, int(hold_until))
        if n_classes is not None:
            self.trial.set_user_attr(N_CLASSES, int(n_classes))

    def epoch(self, row: dict) -> None:
        self.history.append(row)
        self.trial.set_user_attr(HISTORY, self.history)

    def compile_seconds(self, seconds: float) -> None:
        self.trial.set_user_attr(COMPILE_SECONDS, round(seconds, 3))

    def duplicate(self, number: int) -> None:
        self.trial.set_user_attr(DUPLICATE_OF, int(number))

    def checkpoint(self, artifact_id: str, epoch: int, size: int, trial: int, digest: str) -> dict:
        """Record the trial's last complete state; returns the ref (what a retry resumes from)."""
        ref = {"artifact_id": artifact_id, "epoch": int(epoch), "bytes": int(size), "trial": int(trial),
               DIGEST: digest}
        self.trial.set_user_attr(CHECKPOINT, ref)
        return ref

    def weights(self, artifact_id: str, epoch: int, val_loss: float, size: int, digest: str) -> None:
        self.trial.set_user_attr(WEIGHTS, {"artifact_id": artifact_id, "epoch": int(epoch),
                                           "val_loss": float(val_loss), "bytes": int(size), DIGEST: digest})

    def resumed(self, trial: int, epoch: int) -> None:
        self.trial.set_user_attr(RESUMED_FROM, {"trial": int(trial), "epoch": int(epoch)})

    def stopped(self, epoch: int, failure: str | None = None) -> None:
        if failure is not None:
            self.trial.set_user_attr(FAILURE, failure)
        self.trial.set_user_attr(PRUNED_AT, int(epoch))


def trial_records(trials: list[optuna.trial.FrozenTrial]) -> list[TrialRecord]:
    return [TrialRecord.from_trial(trial) for trial in trials]
