"""Building one trial from the sweep config and its params: model, loaders, optimizer, scheduler, and when a
pruner may first judge it. The one place a trial is made; the objective trains it, the doctor checks it."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

import data
import models
from sweep.config import SweepConfig
from sweep.pruning import warmup_epochs
from sweep.train import create_optimizer, create_scheduler


@dataclass
class BuiltTrial:
    """A trial ready to train: everything ``sweep.train.fit`` needs, and what the record keeps of its setup."""

    model: nn.Module
    train_loader: Any
    val_loader: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    init: str  # "pretrained" or "random"
    hold_until: int  # first epoch at which a pruner may judge the trial's rank


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
        skip_bad_images=config.skip_bad_images,
    )


def check_setup(config: SweepConfig) -> None:
    """Load the data and the weights once before any trial, so a bad --data or --weights fails in a line.

    Both are cached per process, so the trials that follow pay nothing for this.
    """
    datasets = load_datasets(config)
    models.create_transfer_model(config.model, num_classes=datasets.num_classes, weights=config.weights)


def first_epoch_at_lowered_lr(scheduler_name: str, epochs: int) -> int | None:
    """The first epoch trained at an LR below the initial one, read off the scheduler itself; None if it
    never lowers it on a fixed schedule (``none``, or ``plateau``, which follows the losses)."""
    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    scheduler = create_scheduler(optimizer, scheduler_name, epochs)
    if scheduler is None or isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        return None
    for epoch in range(1, epochs):
        optimizer.step()  # the order torch expects; the weight never changes (no gradient)
        scheduler.step()
        if optimizer.param_groups[0]["lr"] < 1.0:
            return epoch + 1
    return None


def hold_until(config: SweepConfig, params: dict, init: str) -> int:
    """The first epoch at which a trial's rank may be judged: past its warm-up, and not before it has trained an
    epoch at its first lowered LR (until then it trains at its initial LR, and its rank says little)."""
    lowered = first_epoch_at_lowered_lr(params["scheduler"], config.epochs)
    return max(warmup_epochs(config.patience, config.epochs, init), lowered or 0)


def build_trial(
    config: SweepConfig, params: dict, datasets: data.Datasets, *, device: torch.device, seed: int,
) -> BuiltTrial:
    """The model, loaders, optimizer and scheduler of a trial with ``params``, seeded by ``seed``."""
    seed_everything(seed)
    model = models.create_transfer_model(
        config.model,
        num_classes=datasets.num_classes,
        dropout=params["dropout"],
        frozen_stages=params["frozen_stages"],
        weights=config.weights,
    ).to(device)
    init = "pretrained" if models.starts_pretrained(config.model, config.weights) else "random"
    train_loader, val_loader = data.build_loaders(datasets, params["batch_size"], device=device.type, seed=seed)
    optimizer = create_optimizer(model, config.optimizer, params["lr"], params["weight_decay"])
    scheduler = create_scheduler(optimizer, params["scheduler"], config.epochs, config.min_delta)
    return BuiltTrial(model, train_loader, val_loader, optimizer, scheduler, init, hold_until(config, params, init))
