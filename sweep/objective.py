"""One trial: build the model and loaders for the suggested params, train, report val loss per epoch."""

from __future__ import annotations

import functools
import gc
import logging
import os
import random
import socket
from typing import Protocol

import numpy as np
import optuna
import torch

import data
import models
from sweep import space
from sweep.config import SweepConfig
from sweep.pruners import INIT_ATTR
from sweep.train import DivergedLoss, EpochRecord, acceleration_for, create_optimizer, create_scheduler, fit

log = logging.getLogger("sweep")


class TrialProgress(Protocol):
    def trial_started(self, number: int, params: dict) -> None: ...
    def epoch_done(self, number: int, record: EpochRecord, epochs: int) -> None: ...


def seed_everything(seed: int) -> None:
    """Same seed, same trial: timm's train transforms draw from Python's ``random``, not torch's."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@functools.lru_cache(maxsize=None)
def model_data_config(model_name: str) -> dict:
    """Mean/std/interpolation the model's pretrained weights expect (the head size does not change them)."""
    with torch.random.fork_rng(devices=[]):  # the probe's random init must not shift the trial's seeded draws
        probe = models.create_transfer_model(model_name, num_classes=1, weights="none")
    return models.pretrained_data_config(probe)


def load_datasets(config: SweepConfig) -> data.Datasets:
    """The sweep's train/validation sets, normalised as the model's pretrained weights expect."""
    return data.build_datasets(
        data.parse_data_spec(config.data),
        image_size=config.image_size,
        data_config=model_data_config(config.model),
        seed=config.seed,
        val_fraction=config.val_fraction,
        max_train=config.max_train,
        max_val=config.max_val,
    )


def check_setup(config: SweepConfig) -> None:
    """Load the data and the weights once before any trial, so a bad --data or --weights fails in a line.

    Both are cached per process, so the trials that follow pay nothing for this.
    """
    datasets = load_datasets(config)
    models.create_transfer_model(config.model, num_classes=datasets.num_classes, weights=config.weights)


class Objective:
    """Callable for ``study.optimize``; the data set is prepared once per process, not per trial."""

    def __init__(self, config: SweepConfig, device: torch.device, progress: TrialProgress | None = None):
        self.config = config
        self.device = device
        self.progress = progress
        self._datasets: data.Datasets | None = None

    def datasets(self) -> data.Datasets:
        if self._datasets is None:
            self._datasets = data.precompute_val(load_datasets(self.config))
        return self._datasets

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.config
        params = space.suggest(trial, config.space)
        trial.set_user_attr(
            "worker", {"host": socket.gethostname(), "pid": os.getpid(), "device": str(self.device)}
        )
        if self.progress:
            self.progress.trial_started(trial.number, params)
        datasets = self.datasets()  # once per process; before seeding, so every trial draws the same from its seed
        seed_everything(config.seed + trial.number)
        history: list[dict] = []
        compile_seconds = 0.0

        def on_epoch(record: EpochRecord) -> None:
            nonlocal compile_seconds
            history.append(record.as_dict())
            if record.compile_seconds:
                compile_seconds += record.compile_seconds
                trial.set_user_attr("compile_seconds", round(compile_seconds, 3))
            trial.set_user_attr("history", history)
            trial.report(record.val_loss, step=record.epoch)
            if self.progress:
                self.progress.epoch_done(trial.number, record, config.epochs)
            if record.epoch < config.epochs and trial.should_prune():
                trial.set_user_attr("pruned_at", record.epoch)
                raise optuna.TrialPruned(f"val_loss {record.val_loss:.4f} at epoch {record.epoch}")

        model = None
        try:
            model = models.create_transfer_model(
                config.model,
                num_classes=datasets.num_classes,
                dropout=params["dropout"],
                frozen_stages=params["frozen_stages"],
                weights=config.weights,
            )
            # The default pruner's warm-up depends on it, and it says which trials fell back to random init.
            trial.set_user_attr(INIT_ATTR, "pretrained" if models.starts_pretrained(config.model, config.weights)
                                else "random")
            train_loader, val_loader = data.build_loaders(
                datasets, params["batch_size"], device=self.device.type, seed=config.seed + trial.number
            )
            optimizer = create_optimizer(model, config.optimizer, params["lr"], params["weight_decay"])
            scheduler = create_scheduler(optimizer, params["scheduler"], config.epochs, config.min_delta)
            fit(
                model, train_loader, val_loader,
                epochs=config.epochs, optimizer=optimizer, scheduler=scheduler,
                device=self.device, on_epoch=on_epoch,
                acceleration=acceleration_for(self.device, compile=config.compile),
            )
        except DivergedLoss as error:
            trial.set_user_attr("failure", error.failure)
            trial.set_user_attr("pruned_at", error.epoch)
            raise optuna.TrialPruned(str(error)) from None
        except torch.cuda.OutOfMemoryError:
            # Out of memory says this batch size does not fit, not that the sweep is broken: go on.
            trial.set_user_attr("failure", "oom")
            trial.set_user_attr("pruned_at", len(history))
            raise optuna.TrialPruned(f"out of GPU memory with batch_size={params['batch_size']}") from None
        finally:
            del model
            if self.device.type == "cuda":
                gc.collect()
                torch.cuda.empty_cache()
        return min(record["val_loss"] for record in history)
