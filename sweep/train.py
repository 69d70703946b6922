"""The epoch loop: optimizer and LR scheduler from a trial's params, train, evaluate, report per epoch."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn


class NonFiniteLoss(RuntimeError):
    """Training loss became NaN or infinite: the run diverged."""

    def __init__(self, epoch: int, loss: float):
        super().__init__(f"training loss is {loss} at epoch {epoch}")
        self.epoch = epoch
        self.loss = loss


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    val_acc: float
    lr: float
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; anything else must be a device torch knows."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU: use --device cpu")
    return device


def create_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    trainable = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(trainable, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True)
    if name == "adamw":
        return torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: expected sgd or adamw")


def create_scheduler(optimizer: torch.optim.Optimizer, name: str, epochs: int, min_delta: float = 0.01):
    """The torch LR scheduler for ``name``, stepped once per epoch (``plateau`` with the val loss)."""
    if name == "none":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.1, patience=1, threshold=min_delta, threshold_mode="rel"
        )
    raise ValueError(f"unknown scheduler {name!r}: expected none, cosine, step or plateau")


def _autocast(device: torch.device):
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def train_one_epoch(model, loader, optimizer, device, scaler=None) -> float:
    """Mean training loss over the epoch; summed on the device so that no step waits for a sync."""
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    total = torch.zeros((), device=device)
    count = 0
    channels_last = device.type == "cuda"
    for images, labels in loader:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with _autocast(device):
            loss = loss_fn(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        total += loss.detach().float() * labels.shape[0]
        count += labels.shape[0]
    return (total / max(count, 1)).item()


def evaluate(model, loader, device) -> tuple[float, float]:
    """Validation loss and accuracy under ``model.eval()`` and inference mode."""
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    channels_last = device.type == "cuda"
    with torch.inference_mode():
        for images, labels in loader:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with _autocast(device):
                logits = model(images)
            total_loss += loss_fn(logits.float(), labels)
            correct += (logits.argmax(dim=1) == labels).sum()
            count += labels.shape[0]
    return (total_loss / max(count, 1)).item(), (correct.float() / max(count, 1)).item()


def fit(
    model: nn.Module,
    train_loader,
    val_loader,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    scheduler=None,
    device: torch.device,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> list[EpochRecord]:
    """Train for ``epochs``, calling ``on_epoch`` after each (it may raise to stop, e.g. to prune)."""
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    needs_scaler = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
    records: list[EpochRecord] = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss = train_one_epoch(model, train_loader, optimizer, device, scaler)
        if not math.isfinite(train_loss):
            raise NonFiniteLoss(epoch, train_loss)
        val_loss, val_acc = evaluate(model, val_loader, device)
        if not math.isfinite(val_loss):
            raise NonFiniteLoss(epoch, val_loss)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(val_loss)
        elif scheduler is not None:
            scheduler.step()
        record = EpochRecord(epoch, train_loss, val_loss, val_acc, lr, time.perf_counter() - started)
        records.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return records
