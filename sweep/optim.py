"""Optimizers and LR schedulers by name: each name's factory, the one table that config, space and training read.

Importing this module does not import torch (``sweep status`` and ``analyze`` read the names); each factory does.
"""

from __future__ import annotations

from typing import Callable


def step_lr_period(epochs: int) -> int:
    """Epochs between the ``step`` scheduler's LR drops (x0.1): a third of the run."""
    return max(1, epochs // 3)


def _sgd(params, lr: float, weight_decay: float):
    import torch

    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True)


def _adamw(params, lr: float, weight_decay: float):
    import torch

    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _cosine(optimizer, epochs: int, min_delta: float):
    import torch

    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)


def _step(optimizer, epochs: int, min_delta: float):
    import torch

    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_lr_period(epochs), gamma=0.1)


def _plateau(optimizer, epochs: int, min_delta: float):
    import torch

    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=0.1, patience=1, threshold=min_delta, threshold_mode="rel"
    )


# name -> factory(trainable parameters, lr, weight_decay)
OPTIMIZERS: dict[str, Callable] = {"sgd": _sgd, "adamw": _adamw}

# name -> factory(optimizer, epochs, min_delta), stepped once per epoch; None keeps the LR constant
SCHEDULERS: dict[str, Callable] = {
    "none": lambda optimizer, epochs, min_delta: None,
    "cosine": _cosine,
    "step": _step,
    "plateau": _plateau,
}
