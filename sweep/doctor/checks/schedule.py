"""The learning rate moves as the scheduler says: the user's loop steps it once per epoch, and so does the sweep's
for every scheduler of its search space."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from optuna.distributions import CategoricalDistribution
from torch import nn

from sweep.doctor.findings import CheckResult
from sweep.doctor.probes import batches
from sweep.doctor.setup import Setup, SweepSetup
from sweep.doctor.training import FewBatches, Snapshot, current_lr, run_epoch

SIMULATED_BATCHES = 2
# Stepping a schedule per batch over a whole run takes epochs x batches steps; past this many the rest is not replayed.
MAX_REPLAYED_STEPS = 20_000
# Below this share of its peak the lr has ended its course (a decay's end, a cosine's trough).
COLLAPSED_SHARE = 0.01


def _expected_schedule(optimizer, scheduler, epochs: int, losses: list[float] | None = None,
                       steps_per_epoch: int = 1) -> list[float]:
    """The lr at the start of each epoch (and after the last) when the scheduler is stepped ``steps_per_epoch``
    times an epoch; shorter when the scheduler refuses more steps (OneCycleLR past its total)."""
    lrs = [current_lr(optimizer)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()": no training here on purpose
        for epoch in range(epochs):
            try:
                for _ in range(steps_per_epoch):
                    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                        scheduler.step(losses[epoch] if losses else 1.0)
                    else:
                        scheduler.step()
            except ValueError:
                break
            lrs.append(current_lr(optimizer))
    return lrs


def _batches_per_epoch(loader) -> int:
    try:
        return max(1, len(loader))
    except TypeError:
        return SIMULATED_BATCHES


def _same_schedule(actual: list[float], expected: list[float]) -> bool:
    return len(actual) == len(expected) and all(math.isclose(a, e, rel_tol=1e-6, abs_tol=1e-12) for a, e in zip(actual, expected))


def _fmt_lrs(lrs: list[float]) -> str:
    return " → ".join(f"{lr:.3g}" for lr in lrs)


def _rounded_lrs(lrs: list[float]) -> list[float]:
    return [float(f"{lr:.6g}") for lr in lrs]


def check_lr_schedule(setup: Setup) -> CheckResult:
    """The learning rate moves as the scheduler says over a simulated run."""
    if setup.sweep is not None:
        return _check_sweep_schedules(setup.sweep)
    optimizer, scheduler, epochs = setup.optimizer, setup.scheduler, setup.epochs
    if optimizer is None or scheduler is None:
        lr = f" at {current_lr(optimizer):.3g}" if optimizer else ""
        return CheckResult("lr_schedule", "ok", f"no LR scheduler given: the lr stays constant{lr}",
                           {"scheduler": None})
    with Snapshot(setup) as snapshot:
        expected = _expected_schedule(optimizer, scheduler, epochs)
        snapshot.restore()
        evidence: dict[str, Any] = {"scheduler": type(scheduler).__name__, "epochs": epochs,
                                    "expected_lr": _rounded_lrs(expected)}
        if setup.train_epoch is None:
            moves = not all(math.isclose(lr, expected[0]) for lr in expected)
            if not moves:
                return CheckResult(
                    "lr_schedule", "warning",
                    f"{type(scheduler).__name__} keeps the lr at {expected[0]:.3g} over {epochs} epochs", evidence,
                    "choose a schedule that changes the lr within the run (e.g. CosineAnnealingLR(T_max=epochs))",
                )
            return CheckResult(
                "lr_schedule", "ok",
                f"{type(scheduler).__name__} stepped per epoch gives {_fmt_lrs(expected[:3])} … {expected[-1]:.3g} "
                "(return train_epoch from --module to check that your loop steps it)", evidence,
            )
        sample = batches(setup.train_loader, SIMULATED_BATCHES)
        start_step = getattr(scheduler, "last_epoch", None)
        actual = [current_lr(optimizer)]
        for _ in range(epochs):
            run_epoch(setup, FewBatches(setup.train_loader, sample, len(sample)), optimizer)
            actual.append(current_lr(optimizer))
        steps = None if start_step is None else scheduler.last_epoch - start_step
    evidence.update({"actual_lr": _rounded_lrs(actual), "scheduler_steps": steps})
    if steps == 0 or (steps is None and all(math.isclose(lr, actual[0]) for lr in actual)
                      and not all(math.isclose(lr, expected[0]) for lr in expected)):
        return CheckResult(
            "lr_schedule", "problem",
            f"the scheduler is never stepped: over {epochs} simulated epochs the lr stayed at {actual[0]:.3g}, "
            f"where {type(scheduler).__name__} would take it to {expected[-1]:.3g}", evidence,
            "call scheduler.step() once per epoch (after optimizer.step(); ReduceLROnPlateau: scheduler.step(val_loss))",
        )
    if steps is not None and steps > epochs:
        return _stepped_per_batch(setup, steps, len(sample), evidence)
    if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and not _same_schedule(actual, expected):
        return CheckResult(
            "lr_schedule", "warning",
            f"the lr ran {_fmt_lrs(actual)} where the scheduler says {_fmt_lrs(expected)}", evidence,
            "step the scheduler exactly once per epoch and do not set the lr by hand",
        )
    return CheckResult(
        "lr_schedule", "ok",
        f"{type(scheduler).__name__} stepped once per epoch: lr {_fmt_lrs(actual[:3])} … {actual[-1]:.3g} as expected",
        evidence,
    )


def _stepped_per_batch(setup: Setup, steps: int, sample_batches: int, evidence: dict) -> CheckResult:
    """A scheduler the loop steps more than once an epoch, replayed per batch over the run's real length. Sized in
    epochs when it runs out, or past its peak falls under COLLAPSED_SHARE of it, within about `epochs` steps (below
    their geometric mean with the run's epochs x batches: robust to a guessed epoch count), or when it restarts more
    often than once an epoch; else sized in batches."""
    scheduler, epochs = setup.scheduler, setup.epochs
    name, per_epoch = type(scheduler).__name__, _batches_per_epoch(setup.train_loader)
    total = epochs * per_epoch
    replayed_steps = min(total, MAX_REPLAYED_STEPS)
    with Snapshot(setup):
        lrs = _expected_schedule(setup.optimizer, scheduler, replayed_steps)
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    collapsed = next((step for step in range(peak, len(lrs)) if lrs[step] <= COLLAPSED_SHARE * lrs[peak]), None)
    restarts = _restarts(lrs)
    evidence.update({"batches_per_epoch": per_epoch, "run_steps": total, "replayed_steps": len(lrs) - 1,
                     "per_batch_lr": _rounded_lrs(lrs[:: max(1, len(lrs) // 40)]), "peak_step": peak,
                     "collapsed_at_step": collapsed, "restarts": restarts})
    stepped = (f"{name} was stepped {steps} times in {epochs} simulated epochs of {sample_batches} batches (per "
               f"batch); replayed per batch over the run's {total} steps ({epochs} epochs of {per_epoch} batches)")
    # nearer, on a log scale, to `epochs` steps (sized in epochs) than to the run's epochs x batches (sized in batches)
    epochs_scale = epochs * math.sqrt(per_epoch)
    evidence["epochs_sized_below_step"] = round(epochs_scale, 1)
    if len(lrs) - 1 < replayed_steps and len(lrs) - 1 <= epochs_scale:
        found = f"it runs out after {len(lrs) - 1} steps"
    elif collapsed is not None and collapsed <= epochs_scale:
        found = (f"the lr falls to {lrs[collapsed]:.3g}, under {COLLAPSED_SHARE:.0%} of its peak {lrs[peak]:.3g}, "
                 f"by step {collapsed} (epoch {collapsed / per_epoch:.2g} of {epochs})")
    elif restarts > epochs:
        found = f"the lr restarts {restarts} times, more than once an epoch"
    else:
        return CheckResult(
            "lr_schedule", "ok",
            f"{stepped} it runs {_fmt_lrs([lrs[0], lrs[peak], lrs[-1]])} (peak at step {peak}): sized in batches, "
            "as it is stepped", evidence,
        )
    return CheckResult(
        "lr_schedule", "problem", f"{stepped} {found}: it is sized in epochs", evidence,
        "step the scheduler once per epoch (after the batch loop), or size it in batches "
        "(e.g. T_max=epochs*len(train_loader))",
    )


def _restarts(lrs: list[float]) -> int:
    """How many times the lr rises again after having fallen."""
    count, fallen = 0, False
    for before, after in zip(lrs, lrs[1:]):
        if after < before * (1 - 1e-9):
            fallen = True
        elif after > before * (1 + 1e-9) and fallen:
            count, fallen = count + 1, False
    return count


def _space_schedulers(sweep: SweepSetup) -> tuple[str, ...]:
    space = sweep.config.space["scheduler"]
    return tuple(space.choices) if isinstance(space, CategoricalDistribution) else (sweep.params["scheduler"],)


def _check_sweep_schedules(sweep: SweepSetup) -> CheckResult:
    """Every scheduler of the sweep's space, run through sweep.train.fit on a stand-in model, follows its schedule."""
    from sweep.train import create_optimizer, create_scheduler, fit

    config, params = sweep.config, sweep.params
    generator = torch.Generator().manual_seed(0)
    inputs, labels = torch.randn(8, 4, generator=generator), torch.randint(0, 2, (8,), generator=generator)
    loader = [(inputs[:4], labels[:4]), (inputs[4:], labels[4:])]
    schedulers = _space_schedulers(sweep)
    evidence: dict[str, Any] = {"epochs": config.epochs, "schedules": {}}
    wrong, constant = [], []
    for name in schedulers:
        stand_in, shadow = nn.Linear(4, 2), nn.Linear(4, 2)
        optimizer, shadow_optimizer = (create_optimizer(model, config.optimizer, params["lr"], params["weight_decay"])
                                       for model in (stand_in, shadow))
        scheduler = create_scheduler(optimizer, name, config.epochs, config.min_delta)
        records = fit(stand_in, loader, loader, epochs=config.epochs, optimizer=optimizer, scheduler=scheduler,
                      device=torch.device("cpu"))
        actual = [record.lr for record in records] + [current_lr(optimizer)]
        shadow_scheduler = create_scheduler(shadow_optimizer, name, config.epochs, config.min_delta)
        expected = (_expected_schedule(shadow_optimizer, shadow_scheduler, config.epochs, [r.val_loss for r in records])
                    if shadow_scheduler else [current_lr(shadow_optimizer)] * (config.epochs + 1))
        evidence["schedules"][name] = {"actual_lr": _rounded_lrs(actual), "expected_lr": _rounded_lrs(expected)}
        if not _same_schedule(actual, expected):
            wrong.append(name)
        elif name not in ("none", "plateau") and all(math.isclose(lr, actual[0]) for lr in actual):
            constant.append(name)
    if wrong:
        return CheckResult(
            "lr_schedule", "problem",
            f"the training loop does not step {', '.join(wrong)} as scheduled over {config.epochs} epochs", evidence,
            "step the scheduler once per epoch in sweep.train.fit",
        )
    if constant:
        return CheckResult(
            "lr_schedule", "warning",
            f"{', '.join(constant)} leaves the lr unchanged over {config.epochs} epochs", evidence,
            "run more epochs (--epochs) so that the schedule has room to act",
        )
    return CheckResult(
        "lr_schedule", "ok",
        f"{', '.join(schedulers)}: the lr follows the schedule over a simulated {config.epochs}-epoch run",
        evidence,
    )
