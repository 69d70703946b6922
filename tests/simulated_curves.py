"""Learning curves drawn from a trial's params by a rule with known causes: the stand-in for training in the
end-to-end benchmark and the confirmation tests. No torch; microseconds a curve. Test and benchmark fixture,
not shipped.

A cause is a region of one parameter whose runs stall from its onset epoch (validation and training loss flat);
the overfitting parameter's region makes validation rise from its onset while training loss falls (no cause:
the plateau counts as removed). Any other parameter only moves the loss a run reaches.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import optuna

from sweep.pruning import warmup_epochs
from sweep.trial_steps import end_of_epoch, start_trial


@dataclass(frozen=True)
class Cause:
    param: str
    holds: Callable[[Any], bool]
    onset: int  # the epoch from which a run in the region stalls
    label: str  # the region in words, for tables


@dataclass(frozen=True)
class Generator:
    name: str
    causes: tuple[Cause, ...]
    overfit: Cause | None = None
    noise: float = 0.004  # relative noise of each epoch's validation loss


# Regions by generator. "tuning": the shapes the defaults are chosen on; "held-out": others, never used to choose.
_REGIONS: dict[str, list[tuple[str, Callable[[Any], bool], str]]] = {
    "tuning": [("frozen_stages", lambda v: v >= 3, "frozen_stages >= 3"),
               ("weight_decay", lambda v: v > 3e-4, "weight_decay > 3e-4"),
               ("scheduler", lambda v: v == "none", "scheduler = none")],
    "held-out": [("lr", lambda v: v < 3e-4, "lr < 3e-4"),
                 ("dropout", lambda v: v > 0.35, "dropout > 0.35"),
                 ("batch_size", lambda v: v == 32, "batch_size = 32")],
}
_OVERFIT = {
    "tuning": ("dropout", lambda v: v < 0.1, "dropout < 0.1"),
    "held-out": ("weight_decay", lambda v: v < 1e-5, "weight_decay < 1e-5"),
}
# Onsets of the first, second and third cause: all early, or one cause that stalls only late in the run.
ONSETS = {"early": (1, 2, 1), "late": (4, 1, 3)}


def generator(name: str, n_causes: int, onsets: str = "early", noise: float = 0.004) -> Generator:
    causes = tuple(Cause(param, holds, onset, label) for (param, holds, label), onset
                   in zip(_REGIONS[name][:n_causes], ONSETS[onsets]))
    param, holds, label = _OVERFIT[name]
    return Generator(f"{name}/{n_causes}/{onsets}", causes, Cause(param, holds, 3, label), noise)


def curve(gen: Generator, params: dict[str, Any], epochs: int, rng: np.random.Generator) -> list[dict]:
    """One run's history rows. The loss it can reach depends on every parameter a little and on lr most."""
    lr_distance = abs(math.log10(params["lr"] / 3e-3))
    floor = (0.25 + 0.08 * lr_distance + 0.05 * abs(params["dropout"] - 0.2)
             + 0.02 * abs(math.log10(params["weight_decay"] / 1e-4)) + 0.01 * params["frozen_stages"]
             + {16: 0.01, 32: 0.0, 64: 0.015}.get(params["batch_size"], 0.0)
             + {"none": 0.03, "cosine": 0.0, "step": 0.01, "plateau": 0.015}.get(params["scheduler"], 0.0))
    rate = 0.45 * max(0.3, 1 - 0.15 * lr_distance)
    start = 2.3
    onsets = [cause.onset for cause in gen.causes if cause.holds(params[cause.param])]
    stall = min(onsets) if onsets else None
    overfit = gen.overfit.onset if gen.overfit and not onsets and gen.overfit.holds(params[gen.overfit.param]) else None
    rows = []
    for epoch in range(1, epochs + 1):
        clean = floor + (start - floor) * math.exp(-rate * epoch)
        train = clean * 0.95
        if stall is not None and epoch > stall:
            clean = floor + (start - floor) * math.exp(-rate * stall)
            train = clean * 0.95
        elif overfit is not None and epoch > overfit:
            at_onset = floor + (start - floor) * math.exp(-rate * overfit)
            clean = at_onset * (1 + 0.04 * (epoch - overfit))
            train = at_onset * 0.95 * (1 - 0.15 * (epoch - overfit))
        val = clean * (1 + gen.noise * rng.standard_normal())
        rows.append({"epoch": epoch, "train_loss": train * (1 + gen.noise * rng.standard_normal()), "val_loss": val,
                     "val_acc": max(0.0, 1 - val / start), "lr": params["lr"], "seconds": 0.0})
    return rows


def has_plateau(gen: Generator, params: dict[str, Any]) -> bool:
    return any(cause.holds(params[cause.param]) for cause in gen.causes)


class SimulatedObjective:
    """``sweep start``'s objective with a drawn curve in place of training: the same trial steps, record and pruning."""

    def __init__(self, gen: Generator, config, seed: int):
        self.gen = gen
        self.config = config
        self.seed = seed
        self.hold = warmup_epochs(config.patience, config.epochs, "random")

    def __call__(self, trial: optuna.Trial) -> float:
        started = start_trial(trial, self.config.space, {"host": "simulated", "pid": os.getpid(), "device": "none"})
        started.record.built("random", self.hold)
        rng = np.random.default_rng([self.seed, trial.number])
        for row in curve(self.gen, started.params, self.config.epochs, rng):
            end_of_epoch(trial, started, row, self.config.epochs)
        return min(row["val_loss"] for row in started.record.history)


def simulated_sweep(storage, name: str, config, gen: Generator, seed: int, sampler=None) -> optuna.Study:
    """A real sweep (``create_or_resume``, the worker loop, the trial steps) with drawn curves in place of training;
    ``sampler`` replaces the sweep's own."""
    from sweep.study import create_or_resume
    from sweep.worker import run_trials

    study, _ = create_or_resume(storage, name, config)
    if sampler is not None:
        study.sampler = sampler
    run_trials(study, config, None, storage=storage, objective=SimulatedObjective(gen, config, seed),
               until_done=False, poll_seconds=1.0)
    return study
