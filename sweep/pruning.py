"""Pruners by name: what stops hopeless trials. Validation loss is reported once per epoch (step = epoch).

No pruner here knows a parameter's name: what a trial's own setup implies for its pruning (when its
rank may first be judged) is recorded on the trial by the objective (``sweep.record.HOLD_UNTIL``).
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import optuna

from sweep.plateau import epochs_to_judge, plateau_epoch
from sweep.record import hold_until

# Finished runs a pruner waits for before it cuts any: with fewer, a percentile or a rung says little.
STARTUP_TRIALS = 3

# A val loss that moved by more than this share in one epoch (either way) is not settled: no rank is judged.
LARGE_MOVE = 0.2


def warmup_epochs(patience: int, epochs: int, init: str | None) -> int:
    """Epochs a run trains before its rank says much, by its initial weights.

    Fine-tuned from pretrained weights a run's rank settles within a few epochs; ``epochs_to_judge`` is the
    least that gives a pruned run its plateau verdict. From a random init the runs that end best (high
    learning rates) are often the worst early on, so they get a third of the epochs. Unknown: the longer.
    """
    if init == "pretrained":
        return min(epochs, epochs_to_judge(patience))
    return min(epochs, max(epochs_to_judge(patience), epochs // 3))


def moved_a_lot(trial: optuna.trial.FrozenTrial, within: int) -> bool:
    """Did the trial's val loss rise or fall by more than ``LARGE_MOVE`` in one of its last ``within`` epochs?

    A high learning rate overshoots, or comes down from a spike, before its schedule settles it; its
    rank at that point says little of where it ends.
    """
    values = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)[-(within + 1):]]
    return any(abs(later - earlier) > LARGE_MOVE * abs(earlier) for earlier, later in zip(values, values[1:]))


class SettledPercentilePruner(optuna.pruners.BasePruner):
    """Optuna's percentile rule, applied to a trial only once it is settled.

    Settled: past its own ``hold_until`` epoch (a trial that has not recorded one waits ``default_hold``
    epochs) and with no large move of its val loss in its last ``patience`` epochs (``moved_a_lot``).
    """

    def __init__(self, percentile: float, patience: int, default_hold: int, n_startup_trials: int = STARTUP_TRIALS):
        self.patience = patience
        self.default_hold = default_hold
        self.percentile = optuna.pruners.PercentilePruner(percentile, n_startup_trials=n_startup_trials)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        hold = hold_until(trial)
        if (trial.last_step or 0) < (self.default_hold if hold is None else hold):
            return False
        if moved_a_lot(trial, within=self.patience):
            return False
        return self.percentile.prune(study, trial)


class PlateauPruner(optuna.pruners.BasePruner):
    """Prunes a trial once its reported validation losses are on a plateau by ``sweep.plateau``'s rule.

    Optuna has no pruner that judges a curve against itself by a relative threshold, so this one is
    written here; the analysis judges by the same rule, so a pruned trial gets the same verdict.
    """

    def __init__(self, patience: int, min_delta: float):
        self.patience = patience
        self.min_delta = min_delta

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        val_losses = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
        val_losses = [value for value in val_losses if math.isfinite(value)]
        return bool(val_losses) and plateau_epoch(val_losses, patience=self.patience, min_delta=self.min_delta) is not None


class StartupPruner(optuna.pruners.BasePruner):
    """Lets ``inner`` judge every step but cuts nothing until ``n_startup_trials`` trials have finished.

    Successive halving on its own promotes the second trial only if it beats the first at the first
    rung: with the baseline (a plateaued run) as the first trial, runs that start slower than it would
    be cut before there is anything to compare them with. ``inner.prune`` is still called, because
    successive halving records each rung's value inside it.
    """

    def __init__(self, inner: optuna.pruners.BasePruner, n_startup_trials: int = STARTUP_TRIALS):
        self.inner = inner
        self.n_startup_trials = n_startup_trials

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if not self.inner.prune(study, trial):
            return False
        finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        return len(finished) >= self.n_startup_trials


def _settled(percentile: float) -> Callable:
    def create(config) -> optuna.pruners.BasePruner:
        return SettledPercentilePruner(percentile, config.patience,
                                       default_hold=warmup_epochs(config.patience, config.epochs, None))
    return create


def _patient(config) -> optuna.pruners.BasePruner:
    with warnings.catch_warnings():  # stable for years; the "experimental" notice only alarms users
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.pruners.PatientPruner(_settled(50.0)(config), patience=config.patience)


# First rung of the halving pruners: epochs_to_judge, so that every pruned run has a verdict.
PRUNERS: dict[str, Callable] = {
    "quartile": _settled(25.0),  # the default: cut a settled run outside the best quarter of the finished ones
    "median": _settled(50.0),
    "asha": lambda config: StartupPruner(optuna.pruners.SuccessiveHalvingPruner(
        min_resource=epochs_to_judge(config.patience), reduction_factor=3, min_early_stopping_rate=0)),
    "hyperband": lambda config: StartupPruner(optuna.pruners.HyperbandPruner(
        min_resource=min(config.epochs, epochs_to_judge(config.patience)), max_resource=config.epochs,
        reduction_factor=3)),
    "patient": _patient,
    "plateau": lambda config: PlateauPruner(config.patience, config.min_delta),
    "none": lambda config: optuna.pruners.NopPruner(),
}


def create_pruner(config) -> optuna.pruners.BasePruner:
    """The pruner ``config.pruner`` names (the config checked the name against ``PRUNERS``)."""
    return PRUNERS[config.pruner](config)
