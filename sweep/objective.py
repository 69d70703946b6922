"""One trial for ``study.optimize``: build it from its params, train it, report val loss per epoch, record it."""

from __future__ import annotations

import gc
import os
import socket
from typing import Protocol

import optuna
import torch

import data
from sweep.checkpoints import checkpoints_for
from sweep.config import SweepConfig
from sweep.train import DivergedLoss, EpochRecord, acceleration_for, fit, grad_scaler_for
from sweep.trial import build_trial, load_datasets
from sweep.trial_steps import end_of_epoch, start_trial


class TrialProgress(Protocol):
    def trial_started(self, number: int, params: dict) -> None: ...
    def epoch_done(self, number: int, record: EpochRecord, epochs: int) -> None: ...


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
        worker = {"host": socket.gethostname(), "pid": os.getpid(), "device": str(self.device)}
        started = start_trial(trial, config.space, worker)  # a retry is the same run as the trial it retries
        params, record, retries = started.params, started.record, started.retries
        if self.progress:
            self.progress.trial_started(trial.number, params)
        datasets = self.datasets()  # once per process; before seeding, so every trial draws the same from its seed
        compile_seconds = 0.0
        checkpoints = checkpoints_for(config, trial, record, retries)
        acceleration = acceleration_for(self.device, compile=config.compile)
        scaler = grad_scaler_for(self.device, acceleration)

        def on_epoch(epoch: EpochRecord) -> None:
            nonlocal compile_seconds
            if epoch.compile_seconds:
                compile_seconds += epoch.compile_seconds
                record.compile_seconds(compile_seconds)
            checkpoints.epoch_done(epoch.epoch, epoch.val_loss, built.model)
            if self.progress:
                self.progress.epoch_done(trial.number, epoch, config.epochs)
            end_of_epoch(trial, started, epoch.as_dict(), config.epochs)
            if epoch.epoch < config.epochs:  # a retry after the last epoch would have nothing left to train
                checkpoints.save(epoch.epoch, built, scaler)

        built = None
        try:
            # (a checkpoint leaves out the frozen stages, which the same seed builds again)
            seed = config.seed + (trial.number if retries is None else retries)
            built = build_trial(config, params, datasets, device=self.device, seed=seed)
            record.built(built.init, built.hold_until, datasets.num_classes)
            done = checkpoints.resume(built, scaler)  # epochs a retried trial already trained
            fit(
                built.model, built.train_loader, built.val_loader,
                epochs=config.epochs, optimizer=built.optimizer, scheduler=built.scheduler,
                device=self.device, on_epoch=on_epoch, acceleration=acceleration, first_epoch=done + 1, scaler=scaler,
            )
        except optuna.TrialPruned:
            checkpoints.ended("PRUNED")
            raise
        except DivergedLoss as error:
            record.stopped(error.epoch, error.failure)
            checkpoints.ended("PRUNED")
            raise optuna.TrialPruned(str(error)) from None
        except torch.cuda.OutOfMemoryError:
            # Out of memory says this batch size does not fit, not that the sweep is broken: go on.
            record.stopped(len(record.history), "oom")
            checkpoints.ended("PRUNED")
            raise optuna.TrialPruned(f"out of GPU memory with batch_size={params['batch_size']}") from None
        finally:
            checkpoints.close()
            del built
            if self.device.type == "cuda":
                gc.collect()
                torch.cuda.empty_cache()
        checkpoints.ended("COMPLETE")
        return min(row["val_loss"] for row in record.history)
