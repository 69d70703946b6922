"""The LR range test (fastai's lr_find): the training loss against an exponentially growing lr, and the lr range
where it falls fastest."""

from __future__ import annotations

import math
from typing import Any, Callable

from optuna.distributions import FloatDistribution
from torch import nn

from sweep.doctor.probes import cycle
from sweep.doctor.result import CheckResult, rounded
from sweep.doctor.setup import Setup
from sweep.doctor.training import Snapshot, fallback_optimizer, to_device


def check_lr_range(setup: Setup, steps: int = 100, start_lr: float = 1e-7, end_lr: float = 10.0,
                   progress: Callable[[str], None] | None = None) -> CheckResult:
    """Loss against an exponentially growing lr: the lr range where the loss falls fastest."""
    steps = max(steps, 5)
    beta, smoothed, best = 0.9, 0.0, math.inf
    lrs, losses = [], []
    model, loss_fn = setup.model, nn.CrossEntropyLoss()
    with Snapshot(setup):
        optimizer = setup.optimizer or fallback_optimizer(model)
        if optimizer is None:
            return CheckResult("lr_range", "ok", "nothing trains: no lr to suggest", {})
        model.train()
        for step, (images, labels) in enumerate(cycle(setup.train_loader, steps)):
            lr = start_lr * (end_lr / start_lr) ** (step / (steps - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            images, labels = to_device(setup.device, images, labels)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(images), labels)
            value = float(loss.detach())
            if not math.isfinite(value):
                break
            loss.backward()
            optimizer.step()
            smoothed = beta * smoothed + (1 - beta) * value
            current = smoothed / (1 - beta ** (step + 1))
            lrs.append(lr)
            losses.append(current)
            best = min(best, current)
            if progress and (step + 1) % max(1, steps // 4) == 0:
                progress(f"lr range test: step {step + 1}/{steps}, lr {lr:.2g}, loss {current:.3f}")
            if step > steps // 10 and current > 4 * best:
                break
    evidence: dict[str, Any] = {"steps_run": len(lrs), "start_lr": start_lr, "end_lr": end_lr,
                                "curve": [[float(f"{lr:.4g}"), rounded(loss)] for lr, loss in zip(lrs, losses)][:: max(1, len(lrs) // 40)]}
    skip = max(1, len(losses) // 10)
    if len(losses) < skip + 3 or min(losses[skip:]) > 0.95 * losses[skip]:
        return CheckResult(
            "lr_range", "warning",
            f"the training loss did not fall at any lr from {start_lr:g} to {end_lr:g} in {len(lrs)} steps", evidence,
            "check that labels match images and that some layers train; or run more steps (--lr-steps)",
        )
    index_min = skip + min(range(len(losses) - skip), key=lambda i: losses[skip + i])
    slopes = [(losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i])) for i in range(skip, index_min)]
    index_steep = skip + min(range(len(slopes)), key=slopes.__getitem__) if slopes else index_min
    lr_steep, lr_min = lrs[index_steep], lrs[index_min]
    low, high = _one_digit(min(lr_steep, lr_min / 10) / 3), _one_digit(lr_min / 3)
    low = min(low, high / 3)
    evidence.update({"lr_steepest": float(f"{lr_steep:.3g}"), "lr_at_min_loss": float(f"{lr_min:.3g}"),
                     "suggested_lr_range": [low, high]})
    message = f"loss falls fastest at lr {lr_steep:.2g} and is lowest at {lr_min:.2g}: search lr in {low:g}:{high:g}"
    lr_space = setup.sweep.config.space["lr"] if setup.sweep is not None else None
    if isinstance(lr_space, FloatDistribution):
        sweep_low, sweep_high = lr_space.low, lr_space.high
        evidence["sweep_lr_range"] = [sweep_low, sweep_high]
        if sweep_high < low or sweep_low > high:
            return CheckResult(
                "lr_range", "warning", message + f", but the sweep searches {sweep_low:g}:{sweep_high:g}", evidence,
                f"sweep start --lr {low:g}:{high:g}",
            )
    return CheckResult("lr_range", "ok", message, evidence)


def _one_digit(value: float) -> float:
    return float(f"{value:.1g}")
