"""The LR range test (fastai's lr_find) through the setup's own epoch loop: the training loss against an
exponentially growing lr, the lr range where it falls fastest, and the run's own lr held against it."""

from __future__ import annotations

import math
from typing import Any, Callable

from optuna.distributions import FloatDistribution

from sweep.doctor.findings import CheckResult, rounded
from sweep.doctor.probes import cycle
from sweep.doctor.setup import Setup
from sweep.doctor.training import FewBatches, LossRecorder, Snapshot, TrainEpochError, run_epoch, training_optimizer

# An lr this many times outside the suggested range is flagged.
OUTSIDE_FACTOR = 10
# The smoothed loss must have fallen by this share by an lr for that lr to count as one that trains.
FALLING_SHARE = 0.02


def _smoothed(losses: list[float], beta: float = 0.9) -> list[float]:
    """fastai's bias-corrected exponential moving average of the loss."""
    average, out = 0.0, []
    for step, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta ** (step + 1)))
    return out


def _range_curve(setup: Setup, optimizer, steps: int, start_lr: float, end_lr: float,
                 progress: Callable[[str], None] | None) -> tuple[list[float], list[float], bool]:
    """(lrs, smoothed losses, diverged): one epoch of the setup's loop whose lr grows before every batch, cut
    short once the loss is 4x its best or not finite."""
    lrs: list[float] = []
    with Snapshot(setup), LossRecorder(setup.model) as recorder:
        def diverging() -> bool:
            curve = _smoothed(recorder.losses)
            if not curve:
                return False
            return not math.isfinite(curve[-1]) or (len(curve) > steps // 10 + 1 and curve[-1] > 4 * min(curve))

        def before_batch(step: int) -> bool:
            if diverging():
                return False
            if progress and step and step % max(1, steps // 4) == 0 and recorder.losses:
                loss = _smoothed(recorder.losses)[-1]
                progress(f"lr range test: step {step}/{steps}, lr {lrs[-1]:.2g}, loss {loss:.3f}")
            lrs.append(start_lr * (end_lr / start_lr) ** (step / (steps - 1)))
            for group in optimizer.param_groups:
                group["lr"] = lrs[-1]
            return True

        def batches():
            for images, labels in cycle(setup.train_loader, steps):
                recorder.expect(labels)
                yield images, labels

        try:
            run_epoch(setup, FewBatches(setup.train_loader, batches(), steps, before_batch), optimizer, hold_lr=True)
        except TrainEpochError:
            if not diverging():  # a loop that refuses a blown-up loss ends the test as the blow-up would
                raise
    raw = recorder.losses[: len(lrs)]
    finite = [loss for loss in raw if math.isfinite(loss)]
    diverged = len(finite) < len(raw) or len(raw) < steps
    return lrs[: len(finite)], _smoothed(finite), diverged


def check_lr_range(setup: Setup, steps: int = 100, start_lr: float = 1e-7, end_lr: float = 10.0,
                   progress: Callable[[str], None] | None = None) -> CheckResult:
    """Loss against an exponentially growing lr: the lr range where the loss falls fastest."""
    steps = max(steps, 5)
    optimizer = training_optimizer(setup)
    if optimizer is None:
        return CheckResult("lr_range", "ok", "nothing trains: no lr to suggest", {})
    own_lr = _own_lr(setup, optimizer)
    lrs, losses, diverged = _range_curve(setup, optimizer, steps, start_lr, end_lr, progress)
    curve = [[float(f"{lr:.4g}"), rounded(loss)] for lr, loss in zip(lrs, losses)]
    evidence: dict[str, Any] = {"steps_run": len(lrs), "start_lr": start_lr, "end_lr": end_lr, "own_lr": own_lr,
                                "curve": curve[:: max(1, len(lrs) // 40)]}
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
    findings = [_own_lr_finding(own_lr, low, high, lrs, losses, diverged, setup)]
    lr_space = setup.sweep.config.space["lr"] if setup.sweep is not None else None
    if isinstance(lr_space, FloatDistribution):
        evidence["sweep_lr_range"] = [lr_space.low, lr_space.high]
        if lr_space.high < low or lr_space.low > high:
            findings.append(("warning", f"the sweep searches {lr_space.low:g}:{lr_space.high:g}",
                             f"sweep start --lr {low:g}:{high:g}"))
    findings = [finding for finding in findings if finding]
    if not findings:
        return CheckResult("lr_range", "ok", message + _inside(own_lr, setup), evidence)
    verdict = "problem" if any(verdict == "problem" for verdict, _, _ in findings) else "warning"
    return CheckResult("lr_range", verdict, message + ", but " + "; ".join(text for _, text, _ in findings), evidence,
                       "; ".join(fix for _, _, fix in findings))


def _own_lr(setup: Setup, optimizer) -> float | None:
    """The lr the run trains at: the sweep's baseline, or the optimizer's before any scheduler step (its peak for a
    cyclic schedule, which keeps it as max_lr)."""
    if setup.sweep is not None:
        return float(setup.sweep.params["lr"])
    if optimizer is not setup.optimizer:
        return None
    group = optimizer.param_groups[0]
    return float(group.get("max_lr") or group.get("initial_lr") or group["lr"])


def _who(setup: Setup) -> str:
    return "the baseline lr" if setup.sweep is not None else "the optimizer's lr"


def _inside(own_lr: float | None, setup: Setup) -> str:
    return f"; {_who(setup)} {own_lr:g} is within {OUTSIDE_FACTOR}x of it" if own_lr else ""


def _own_lr_finding(own_lr, low, high, lrs, losses, diverged, setup: Setup) -> tuple[str, str, str] | None:
    """(verdict, text, fix) when the run's own lr lies over OUTSIDE_FACTOR times outside the suggested range: a
    problem where the test shows that lr does not train (the loss had not yet fallen by it, or was above its start
    there); else a warning, and always one for a sweep's baseline, since the sweep searches the lr."""
    if not own_lr or low / OUTSIDE_FACTOR <= own_lr <= high * OUTSIDE_FACTOR:
        return None
    fix = f"set the lr inside {low:g}:{high:g}"
    if setup.sweep is not None:
        fix += f" (--baseline lr={math.sqrt(low * high):.1g})"
    if own_lr < low:
        reached = [loss for lr, loss in zip(lrs, losses) if lr <= own_lr]
        fallen = 1 - (reached[-1] if reached else losses[0]) / losses[0]
        untrained = fallen < FALLING_SHARE
        text = (f"{_who(setup)} {own_lr:g} is {low / own_lr:.0f}x below it, where the loss had "
                + ("not yet fallen in the test" if untrained else f"fallen by {fallen:.0%} in the test"))
        decisive = untrained
    else:
        blown = diverged and own_lr >= lrs[-1]
        above_start = any(lr >= own_lr and loss > losses[0] for lr, loss in zip(lrs, losses))
        text = f"{_who(setup)} {own_lr:g} is {own_lr / high:.0f}x above it" + (
            ", where the loss blew up in the test" if blown else
            ", where the loss was above its starting value in the test" if above_start else "")
        decisive = blown or above_start
    if not diverged:
        text += f" (the loss never blew up up to lr {lrs[-1]:.2g}, so the range is uncertain)"
    return ("problem" if decisive and setup.sweep is None else "warning"), text, fix


def _one_digit(value: float) -> float:
    return float(f"{value:.1g}")
