"""Short training runs the checks make through the setup's own epoch loop (the user's train_epoch, else the
sweep's), and putting the model, optimizer and scheduler back afterwards."""

from __future__ import annotations

import copy
import functools
from typing import Callable, Iterable

import torch
from torch import nn

from sweep.doctor.setup import DoctorSetupError, Setup


class TrainEpochError(DoctorSetupError):
    """The user's train_epoch raised while a check ran it on a few batches."""


class Snapshot:
    """Model, optimizer and scheduler state (every module's train flag and every gradient too), put back after a
    check changed them."""

    def __init__(self, setup: Setup):
        self.setup = setup
        self.model_state = copy.deepcopy(setup.model.state_dict())
        self.modes = {module: module.training for module in setup.model.modules()}
        # a loop that never zeroes its gradients would otherwise carry one check's into the next
        self.grads = {p: None if p.grad is None else p.grad.clone() for p in setup.model.parameters()}
        self.optimizer_state = copy.deepcopy(setup.optimizer.state_dict()) if setup.optimizer else None
        scheduler = setup.scheduler
        self.scheduler_state = copy.deepcopy(scheduler.state_dict()) if hasattr(scheduler, "state_dict") else None

    def restore(self) -> None:
        self.setup.model.load_state_dict(self.model_state)
        for module, mode in self.modes.items():
            module.training = mode  # set directly: a module may override train() (frozen BN does)
        for parameter, grad in self.grads.items():
            parameter.grad = grad
        if self.optimizer_state is not None:
            self.setup.optimizer.load_state_dict(self.optimizer_state)
        if self.scheduler_state is not None:
            self.setup.scheduler.load_state_dict(self.scheduler_state)

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


class FewBatches:
    """What a check hands the epoch loop instead of the train loader: a few of its batches, with the loader's
    ``dataset`` and ``batch_size`` for loops that read them; ``before_batch(step)`` may return False to end early."""

    def __init__(self, loader, batches: Iterable, count: int, before_batch: Callable[[int], bool] | None = None):
        self.dataset = getattr(loader, "dataset", None)
        self.batch_size = getattr(loader, "batch_size", None)
        self.batches, self.count, self.before_batch = batches, count, before_batch

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        for step, batch in enumerate(self.batches):
            if self.before_batch is not None and self.before_batch(step) is False:
                return
            yield batch


class HeldScheduler:
    """The setup's scheduler with step() doing nothing, for a check that sets the lr itself (the LR range test)."""

    def __init__(self, scheduler):
        self._scheduler = scheduler

    def step(self, *args, **kwargs) -> None:
        return None

    def __getattr__(self, name: str):
        return getattr(self._scheduler, name)


def run_epoch(setup: Setup, loader: FewBatches, optimizer: torch.optim.Optimizer, *, hold_lr: bool = False) -> None:
    """One epoch over ``loader`` through the setup's own loop, so a check trains as the run does; with ``hold_lr``
    the loop's scheduler steps change nothing."""
    if setup.train_epoch is None:
        from sweep.train import train_one_epoch

        train_one_epoch(setup.model, loader, optimizer, setup.device)
        return
    scheduler = HeldScheduler(setup.scheduler) if hold_lr and setup.scheduler is not None else setup.scheduler
    try:
        setup.train_epoch(setup.model, loader, optimizer, scheduler)
    except Exception as error:
        raise TrainEpochError(
            f"train_epoch {_name_of(setup.train_epoch)} raised {type(error).__name__}: {error}".splitlines()[0]
            + f" (run on {len(loader)} batches as train_epoch(model, loader, optimizer, scheduler))"
        ) from None


def _name_of(function) -> str:
    """module.qualname of a function, seen through functools.partial."""
    while isinstance(function, functools.partial):
        function = function.func
    name = getattr(function, "__qualname__", type(function).__name__)
    module = getattr(function, "__module__", None)
    return f"{module}.{name}" if module else name


class LossRecorder:
    """The training loss of each batch the loop runs, read off the model's output (the loop keeps its own loss)."""

    def __init__(self, model: nn.Module):
        self.model, self.losses, self.labels = model, [], None
        self.handle = None

    def expect(self, labels: torch.Tensor) -> None:
        self.labels = labels

    def _hook(self, module, inputs, output) -> None:
        if self.labels is None or not isinstance(output, torch.Tensor) or output.dim() != 2:
            return
        if output.shape[0] == self.labels.shape[0]:
            labels, self.labels = self.labels.to(output.device), None  # the batch's first forward only
            self.losses.append(float(nn.functional.cross_entropy(output.detach().float(), labels)))

    def __enter__(self) -> "LossRecorder":
        self.handle = self.model.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def to_device(device, images, labels):
    return images.to(device), labels.to(device)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def training_optimizer(setup: Setup) -> torch.optim.Optimizer | None:
    """The setup's optimizer, else SGD over what trains; None when nothing does."""
    if setup.optimizer is not None:
        return setup.optimizer
    trainable = [p for p in setup.model.parameters() if p.requires_grad]
    return torch.optim.SGD(trainable, lr=0.01, momentum=0.9) if trainable else None


def num_outputs(setup: Setup, images: torch.Tensor) -> int:
    with Snapshot(setup), torch.no_grad():
        setup.model.eval()
        return int(setup.model(images[:2].to(setup.device)).shape[1])
