"""Short training runs the checks make on the setup, and putting the model, optimizer and scheduler back after."""

from __future__ import annotations

import copy

import torch
from torch import nn

from sweep.doctor.probes import cycle
from sweep.doctor.setup import Setup


class Snapshot:
    """Model, optimizer and scheduler state (and every module's train flag), put back after a check changed them."""

    def __init__(self, setup: Setup):
        self.setup = setup
        self.model_state = copy.deepcopy(setup.model.state_dict())
        self.modes = {module: module.training for module in setup.model.modules()}
        self.optimizer_state = copy.deepcopy(setup.optimizer.state_dict()) if setup.optimizer else None
        scheduler = setup.scheduler
        self.scheduler_state = copy.deepcopy(scheduler.state_dict()) if hasattr(scheduler, "state_dict") else None

    def restore(self) -> None:
        self.setup.model.load_state_dict(self.model_state)
        for module, mode in self.modes.items():
            module.training = mode  # set directly: a module may override train() (frozen BN does)
        if self.optimizer_state is not None:
            self.setup.optimizer.load_state_dict(self.optimizer_state)
        if self.scheduler_state is not None:
            self.setup.scheduler.load_state_dict(self.scheduler_state)

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


def to_device(device, images, labels):
    return images.to(device), labels.to(device)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def fallback_optimizer(model: nn.Module) -> torch.optim.Optimizer | None:
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(trainable, lr=0.01, momentum=0.9) if trainable else None


def train_steps(setup: Setup, steps: int, optimizer: torch.optim.Optimizer) -> None:
    model, loss_fn = setup.model, nn.CrossEntropyLoss()
    model.train()
    for images, labels in cycle(setup.train_loader, steps):
        images, labels = to_device(setup.device, images, labels)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), labels).backward()
        optimizer.step()


def num_outputs(setup: Setup, images: torch.Tensor) -> int:
    with Snapshot(setup), torch.no_grad():
        setup.model.eval()
        return int(setup.model(images[:2].to(setup.device)).shape[1])
