"""The private parts of Optuna the sweep needs where Optuna has no public API: each wrapped here, once.

Checked against Optuna 5.0.0.
"""

from __future__ import annotations

import optuna


def study_storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study handle reads and writes through; for callers handed only the study."""
    return study._storage  # Optuna 5.0.0: a Study has no public getter for its storage


def rdb_backend(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """The RDB storage itself where Optuna wrapped it in its trial cache; any other storage as it is."""
    return getattr(storage, "_backend", storage)  # Optuna 5.0.0: _CachedStorage keeps the RDBStorage as _backend


def trial_id(trial: optuna.trial.FrozenTrial) -> int:
    """The storage's id of a trial, which optuna_dashboard's notes are keyed by."""
    return trial._trial_id  # Optuna 5.0.0: FrozenTrial keeps its storage id private


def holds_queued_run(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether the trial was popped from the queue (``enqueue_trial``: the baseline, a retry, a one-change run)."""
    return "fixed_params" in trial.system_attrs  # Optuna 5.0.0: enqueue_trial keeps the params in this system attr
