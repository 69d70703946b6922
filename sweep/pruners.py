"""Pruners and samplers built from the sweep config: what stops hopeless trials, what proposes new ones."""

from __future__ import annotations

import optuna

from sweep.config import SweepConfig


def create_pruner(config: SweepConfig) -> optuna.pruners.BasePruner:
    """The pruner named by ``config.pruner``; validation loss is reported once per epoch (step = epoch)."""
    # Judge nobody before a third of the epochs: early epochs of fine-tuning are noisy.
    warmup_epochs = max(1, config.epochs // 3)
    median = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup_epochs)
    if config.pruner == "median":
        return median
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=config.epochs, reduction_factor=3
        )
    if config.pruner == "patient":
        return optuna.pruners.PatientPruner(median, patience=config.patience)
    if config.pruner == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {config.pruner!r}")


def create_sampler(config: SweepConfig, worker_index: int = 0) -> optuna.samplers.BaseSampler:
    """TPE seeded per worker, so that parallel workers don't propose the same random start points."""
    return optuna.samplers.TPESampler(
        seed=config.seed + worker_index,
        n_startup_trials=min(10, max(3, config.n_trials // 3)),
        multivariate=True,
        constant_liar=True,
    )
