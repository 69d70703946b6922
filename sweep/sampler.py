"""The sampler that proposes each trial's params."""

from __future__ import annotations

import zlib

import optuna


def create_sampler(config, worker: str = "", trials_so_far: int = 0) -> optuna.samplers.BaseSampler:
    """TPE seeded from the sweep's seed, the trials already in the study and the worker.

    The trials so far make a resumed sweep go on with new random draws instead of the ones it began
    with; the worker's name (host, pid) keeps parallel workers, of one launcher or several, apart.
    One process on a new study draws the same as any other with the same seed.
    """
    seed = zlib.crc32(f"{config.seed}:{trials_so_far}:{worker}".encode())
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=min(10, max(3, config.n_trials // 3)),
        multivariate=True,
        constant_liar=True,
    )
