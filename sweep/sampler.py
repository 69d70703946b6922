"""The sampler that proposes each trial's params."""

from __future__ import annotations

import optuna


def create_sampler(config, worker_index: int = 0) -> optuna.samplers.BaseSampler:
    """TPE seeded per worker, so that parallel workers don't propose the same random start points."""
    return optuna.samplers.TPESampler(
        seed=config.seed + worker_index,
        n_startup_trials=min(10, max(3, config.n_trials // 3)),
        multivariate=True,
        constant_liar=True,
    )
