"""Synthetic sweeps with a known answer, curves drawn from a rule: test and benchmark fixtures, not shipped."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from sweep.analysis.inputs import TrialRecord

SPACE: dict[str, BaseDistribution] = {
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "batch_size": CategoricalDistribution([16, 32, 64]),
    "dropout": FloatDistribution(0.0, 0.6),
    "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
    "scheduler": CategoricalDistribution(["none", "cosine", "step", "plateau"]),
    "frozen_stages": IntDistribution(0, 4),
}
BASELINE: dict[str, Any] = {
    "lr": 1e-4, "batch_size": 32, "dropout": 0.5, "weight_decay": 1e-3, "scheduler": "none", "frozen_stages": 4,
}


def plateau_rule(params: dict[str, Any]) -> bool:
    """The ground truth of the default synthetic sweep: too many frozen stages or too small a learning rate."""
    return params["frozen_stages"] >= 3 or params["lr"] < 3e-5


def draw(distribution: BaseDistribution, rng: np.random.Generator) -> Any:
    """One value drawn uniformly from a distribution (on the log scale where it is log)."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[int(rng.integers(len(distribution.choices)))]
    if isinstance(distribution, IntDistribution):
        return int(rng.integers(distribution.low, distribution.high + 1))
    if distribution.log:
        return float(math.exp(rng.uniform(math.log(distribution.low), math.log(distribution.high))))
    return float(rng.uniform(distribution.low, distribution.high))


def curve(plateau: bool, epochs: int, rng: np.random.Generator, noise: float = 0.003) -> list[dict]:
    """A history that stalls after two epochs (plateau) or keeps falling (improving), with noise."""
    start = 2.3 * rng.uniform(0.9, 1.1)
    floor = rng.uniform(0.55, 0.7) if plateau else rng.uniform(0.1, 0.3)
    speed = rng.uniform(1.2, 1.8) if plateau else rng.uniform(0.25, 0.4)
    history = []
    for epoch in range(1, epochs + 1):
        shape = floor + (1 - floor) * math.exp(-speed * epoch)
        val_loss = start * shape * (1 + noise * rng.standard_normal())
        train_loss = start * shape * 0.95 * (1 + noise * rng.standard_normal())
        history.append({
            "epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
            "val_acc": max(0.0, 1 - val_loss / start), "lr": None, "seconds": 1.0,
        })
    return history


def overfitting_curve(epochs: int, rng: np.random.Generator, noise: float = 0.003) -> list[dict]:
    """Validation falls until epoch 3 or 4, then creeps up while training loss keeps falling."""
    start, turn = 2.3 * rng.uniform(0.9, 1.1), int(rng.integers(3, 5))
    history = []
    for epoch in range(1, epochs + 1):
        fallen = start * (0.3 + 0.7 * math.exp(-0.6 * min(epoch, turn)))
        val_loss = fallen * (1 + 0.04 * max(0, epoch - turn)) * (1 + noise * rng.standard_normal())
        train_loss = start * 0.95 * math.exp(-0.35 * epoch)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                        "val_acc": max(0.0, 1 - val_loss / start), "lr": None, "seconds": 1.0})
    return history


def oscillating_curve(epochs: int, rng: np.random.Generator, noise: float = 0.003) -> list[dict]:
    """Validation swings 8% up and down around a level from epoch 2, never setting a new best."""
    start, level = 2.3 * rng.uniform(0.9, 1.1), rng.uniform(0.8, 1.0)
    history = []
    for epoch in range(1, epochs + 1):
        swing = 1.0 if epoch == 1 else level * (1 + 0.08 * (-1) ** epoch)
        val_loss = start * swing * (1 + noise * rng.standard_normal())
        history.append({"epoch": epoch, "train_loss": start * level, "val_loss": val_loss,
                        "val_acc": max(0.0, 1 - val_loss / start), "lr": None, "seconds": 1.0})
    return history


def outcome_history(outcome: str, epochs: int, rng: np.random.Generator) -> tuple[list[dict], str | None]:
    """A curve that ends with ``outcome`` (a verdict), and the failure the training loop would record."""
    if outcome in ("plateau", "improving"):
        return curve(outcome == "plateau", epochs, rng), None
    if outcome == "overfitting":
        return overfitting_curve(epochs, rng), None
    if outcome == "oscillating":
        return oscillating_curve(epochs, rng), None
    if outcome == "diverged":  # the loss turns NaN and the loop stops the run
        history = curve(False, int(rng.integers(2, epochs)), rng)
        history[-1] = {**history[-1], "train_loss": math.nan, "val_loss": math.nan}
        return history, "nan_loss"
    raise ValueError(f"no synthetic curve for {outcome!r}")


def synthetic_records(
    n_trials: int,
    *,
    seed: int = 0,
    epochs: int = 8,
    rule: Callable[[dict[str, Any]], bool] = plateau_rule,
    flip_rate: float = 0.05,
    pruned_rate: float = 0.1,
    space: dict[str, BaseDistribution] | None = None,
    outcome: Callable[[dict[str, Any]], str] | None = None,
) -> tuple[list[TrialRecord], dict[str, BaseDistribution]]:
    """Trial 0 is the baseline; the others are drawn at random. A share ``flip_rate`` of runs
    behaves against the rule (noise), and a share ``pruned_rate`` stops early as pruned.

    ``outcome`` (params -> verdict) replaces ``rule`` where runs that leave the plateau may also
    overfit, oscillate or diverge; noise swaps plateau and improving only.
    """
    space = dict(space or SPACE)
    rng = np.random.default_rng(seed)
    records = []
    for number in range(n_trials):
        params = dict(BASELINE) if number == 0 else {name: draw(d, rng) for name, d in space.items()}
        verdict = outcome(params) if outcome else ("plateau" if rule(params) else "improving")
        if rng.uniform() < flip_rate and number != 0:
            verdict = {"plateau": "improving", "improving": "plateau"}.get(verdict, verdict)
        history, failure = outcome_history(verdict, epochs, rng)
        state, pruned_at = "COMPLETE", None
        if failure:
            state, pruned_at = "PRUNED", len(history)
        elif number and rng.uniform() < pruned_rate:
            pruned_at = int(rng.integers(1, epochs))
            history, state = history[:pruned_at], "PRUNED"
        finite = [entry["val_loss"] for entry in history if math.isfinite(entry["val_loss"])]
        value = min(finite) if finite else None
        records.append(TrialRecord(number, state, params, history, value=value, failure=failure, pruned_at=pruned_at))
    return records, space


def store_study(records: list[TrialRecord], space: dict[str, BaseDistribution], storage: str, study_name: str,
                config=None):
    """The records as a study made by ``sweep start``: the sweep config on it, each trial's history as the
    objective records it, trial 0 marked as the baseline."""
    import optuna

    from sweep.config import CONFIG_ATTR, SweepConfig
    from sweep.record import BASELINE, FAILURE, HISTORY, PRUNED_AT

    study = optuna.create_study(study_name=study_name, storage=storage)
    study.set_user_attr(CONFIG_ATTR, (config or SweepConfig()).to_dict())
    for record in records:
        attrs = {HISTORY: record.history, BASELINE: record.number == 0}
        attrs.update({key: value for key, value in ((FAILURE, record.failure), (PRUNED_AT, record.pruned_at))
                      if value is not None})
        finite = {row["epoch"]: row["val_loss"] for row in record.history if math.isfinite(row["val_loss"])}
        study.add_trial(optuna.trial.create_trial(
            params=record.params, distributions={name: space[name] for name in record.params},
            value=record.value if record.state == "COMPLETE" else None,
            state=optuna.trial.TrialState[record.state], intermediate_values=finite, user_attrs=attrs))
    return study
