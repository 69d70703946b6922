"""The epoch loop: optimizer and LR scheduler from a trial's params, train, evaluate, report per epoch."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from sweep.optim import OPTIMIZERS, SCHEDULERS


# A mean training loss this large (logits ~1e4 apart) does not come back; under fp16 it is inf soon after.
EXPLODED_LOSS = 1e4


class DivergedLoss(RuntimeError):
    """The loss became NaN/infinite (``failure`` nan_loss) or exploded past EXPLODED_LOSS (exploding_loss)."""

    def __init__(self, epoch: int, loss: float):
        super().__init__(f"loss is {loss:.4g} at epoch {epoch}")
        self.epoch = epoch
        self.loss = loss
        self.failure = "nan_loss" if not math.isfinite(loss) else "exploding_loss"


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    val_acc: float
    lr: float
    seconds: float  # training and validation, without the time torch.compile spent compiling
    compile_seconds: float = 0.0

    def as_dict(self) -> dict:
        record = asdict(self)
        if not self.compile_seconds:
            del record["compile_seconds"]  # only compiled epochs carry it, so history stays as it was
        return record


@dataclass(frozen=True)
class Acceleration:
    """How the loop uses the device: mixed precision, memory format, compilation."""

    amp_dtype: torch.dtype | None = None  # autocast dtype; float16 also gets a GradScaler
    channels_last: bool = False
    compile: bool = False
    compile_backend: str = "inductor"


def acceleration_for(device: torch.device, *, compile: bool = False) -> Acceleration:
    """bf16 autocast (fp16 with a GradScaler where bf16 is missing) and channels_last on CUDA; plain fp32 on CPU.

    CPU autocast is left off: on CPUs without bf16 units it is slower than fp32.
    """
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return Acceleration(amp_dtype=dtype, channels_last=True, compile=compile)
    return Acceleration(compile=compile)


def grad_scaler_for(device: torch.device, acceleration: Acceleration) -> torch.amp.GradScaler | None:
    """The GradScaler fp16 autocast needs (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type) if acceleration.amp_dtype == torch.float16 else None


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; anything else must be a device torch knows."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU: use --device cpu")
    return device


def create_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """The optimizer ``name`` of ``sweep.optim.OPTIMIZERS`` over the model's trainable parameters."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return OPTIMIZERS[name](trainable, lr, weight_decay)


def create_scheduler(optimizer: torch.optim.Optimizer, name: str, epochs: int, min_delta: float = 0.01):
    """The LR scheduler ``name`` of ``sweep.optim.SCHEDULERS``, stepped once per epoch (``plateau`` with the val loss)."""
    return SCHEDULERS[name](optimizer, epochs, min_delta)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _compile_seconds() -> float:
    # torch has no public counter of compile time; dynamo's own metrics include recompiles (eval mode, last batch)
    from torch._dynamo.utils import compilation_time_metrics

    return sum(compilation_time_metrics.get("_compile.compile_inner", []))


def train_one_epoch(model, loader, optimizer, device, scaler=None, acceleration: Acceleration | None = None) -> float:
    """Mean training loss over the epoch; summed on the device so that no step waits for a sync."""
    acceleration = acceleration or acceleration_for(device)
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    total = torch.zeros((), device=device)
    count = 0
    for images, labels in loader:
        images, labels = _to_device(images, labels, device, acceleration.channels_last)
        with _autocast(device, acceleration.amp_dtype):
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


def _to_device(images, labels, device, channels_last: bool):
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True)


def evaluate(model, loader, device, acceleration: Acceleration | None = None) -> tuple[float, float]:
    """Validation loss and accuracy under ``model.eval()`` and inference mode."""
    acceleration = acceleration or acceleration_for(device)
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    with torch.inference_mode():
        for images, labels in loader:
            images, labels = _to_device(images, labels, device, acceleration.channels_last)
            with _autocast(device, acceleration.amp_dtype):
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
    acceleration: Acceleration | None = None,
    first_epoch: int = 1,
    scaler: torch.amp.GradScaler | None = None,
) -> list[EpochRecord]:
    """Train epochs ``first_epoch``..``epochs``, calling ``on_epoch`` after each (it may raise to stop, e.g. to prune).

    ``acceleration`` defaults to ``acceleration_for(device)``: AMP and channels_last on CUDA only. A run resumed
    from a checkpoint passes the epoch after it and the restored ``scaler``; otherwise fp16 gets a new one.
    """
    acceleration = acceleration or acceleration_for(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size per trial: pick the fastest conv kernels once
    model.to(device)
    if acceleration.channels_last:
        model.to(memory_format=torch.channels_last)
    scaler = scaler if scaler is not None else grad_scaler_for(device, acceleration)
    # the compiled wrapper shares parameters and train/eval mode with ``model``
    runner = torch.compile(model, backend=acceleration.compile_backend) if acceleration.compile else model
    records: list[EpochRecord] = []
    for epoch in range(first_epoch, epochs + 1):
        started = time.perf_counter()
        compiled_before = _compile_seconds() if acceleration.compile else 0.0
        lr = optimizer.param_groups[0]["lr"]
        train_loss = train_one_epoch(runner, train_loader, optimizer, device, scaler, acceleration)
        if not math.isfinite(train_loss) or train_loss > EXPLODED_LOSS:
            raise DivergedLoss(epoch, train_loss)
        val_loss, val_acc = evaluate(runner, val_loader, device, acceleration)
        if not math.isfinite(val_loss):
            raise DivergedLoss(epoch, val_loss)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(val_loss)
        elif scheduler is not None:
            scheduler.step()
        compile_seconds = _compile_seconds() - compiled_before if acceleration.compile else 0.0
        record = EpochRecord(
            epoch, train_loss, val_loss, val_acc, lr, time.perf_counter() - started - compile_seconds, compile_seconds
        )
        records.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return records
