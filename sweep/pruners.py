"""Pruners and samplers built from the sweep config: what stops hopeless trials, what proposes new ones."""

from __future__ import annotations

import bisect
import itertools
import math
import warnings

import optuna

from sweep.analysis.curves import plateau_epoch
from sweep.config import SweepConfig


class PlateauPruner(optuna.pruners.BasePruner):
    """Prunes a trial once its reported validation losses are on a plateau by the analysis's rule.

    Optuna has no pruner that judges a curve against itself by a relative threshold, so this one is
    written here; it uses ``plateau_epoch`` from the analysis, so a pruned trial gets the same verdict.
    """

    def __init__(self, patience: int, min_delta: float, n_warmup_steps: int = 0):
        self.patience = patience
        self.min_delta = min_delta
        self.n_warmup_steps = n_warmup_steps

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        steps = sorted(trial.intermediate_values)
        if not steps or steps[-1] < self.n_warmup_steps:
            return False
        val_losses = [trial.intermediate_values[step] for step in steps]
        val_losses = [value for value in val_losses if math.isfinite(value)]
        return plateau_epoch(val_losses, patience=self.patience, min_delta=self.min_delta) is not None


# Trial user attr the objective sets once the model is built: "pretrained" or "random" (the initial weights).
INIT_ATTR = "init"


# A run whose val loss just fell by this share or more in one epoch is not cut at that epoch.
RECOVERING_DROP = 0.2


def coming_down_from_a_spike(trial: optuna.trial.FrozenTrial) -> bool:
    """Did the trial's val loss just fall by ``RECOVERING_DROP`` or more in one epoch?

    A high learning rate's early spike looks hopeless until it comes down, and such a run ended best
    in the replays of BENCHMARKS.md where the plain median rule cut it.
    """
    values = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)[-2:]]
    return len(values) == 2 and values[1] < values[0] * (1 - RECOVERING_DROP)


class InitAwareMedianPruner(optuna.pruners.BasePruner):
    """Optuna's median rule, with a warm-up that depends on whether the trial started from pretrained weights.

    Fine-tuned from pretrained weights, a run's rank settles within a few epochs: in every sweep of
    BENCHMARKS.md the eventual best run was already among the best 6 of 24 at epoch 3, so the warm-up
    is ``patience + 1`` epochs, the least that gives a pruned run its plateau verdict. From a random
    init the runs that end best (high learning rates) were often the worst at epoch 3, so the warm-up
    is a third of the epochs (at least ``patience + 1``). A trial that has not said (no ``init`` attr)
    gets the longer one.

    A run coming down from a spike (``coming_down_from_a_spike``) is not cut at that epoch, however it ranks.
    """

    def __init__(self, patience: int, epochs: int, n_startup_trials: int = 3):
        self.pretrained = optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials,
                                                      n_warmup_steps=min(epochs, patience + 1))
        self.random_init = optuna.pruners.MedianPruner(
            n_startup_trials=n_startup_trials, n_warmup_steps=min(epochs, max(patience + 1, epochs // 3))
        )

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if coming_down_from_a_spike(trial):
            return False
        chosen = self.pretrained if trial.user_attrs.get(INIT_ATTR) == "pretrained" else self.random_init
        return chosen.prune(study, trial)


class CatchUpPruner(optuna.pruners.BasePruner):
    """Cuts a run that could not catch up with the sweep's best val loss even at the steepest pace seen so far.

    At epoch ``t`` every finished run tells how far its val loss still fell after ``t``: the ratio of its
    best after ``t`` to its best up to ``t``. A run is cut when its best so far, times the smallest such
    ratio of any finished run, would still be above the best val loss any trial has reached. Unlike a
    median, this keeps every run that could still win by the sweep's own evidence and cuts runs that
    are merely good but cannot win, which is where the median rule spends most of its epochs on long
    runs; how much a run can still gain is learnt from the runs themselves, so a random init's steep
    curves are cut later than a fine-tuned backbone's flat ones without a separate warm-up. Not before
    ``patience + 1`` epochs (every pruned run keeps a plateau verdict), not until ``n_startup_trials``
    runs have finished, and never in an epoch where the run is coming down from a spike. Optuna's
    pruners rank runs at one step against each other and none bounds a run by others' remaining
    gain, so this one is written here.
    """

    def __init__(self, patience: int, n_startup_trials: int = 3):
        self.n_warmup_steps = patience + 1
        self.n_startup_trials = n_startup_trials
        # Finished trials never change: their curves, digested once per process, keyed by trial id.
        self._finished: dict[int, tuple[list[int], list[float], list[float], float]] = {}

    def _digest(self, trial: optuna.trial.FrozenTrial) -> tuple[list[int], list[float], list[float], float]:
        """(steps, best up to each step, best after each step, best overall) of a finished trial's finite values."""
        digested = self._finished.get(trial._trial_id)
        if digested is None:
            steps = [step for step in sorted(trial.intermediate_values) if math.isfinite(trial.intermediate_values[step])]
            values = [trial.intermediate_values[step] for step in steps]
            best_up_to = list(itertools.accumulate(values, min))
            best_after = list(itertools.accumulate(reversed(values[1:] + [math.inf]), min))[::-1]
            digested = (steps, best_up_to, best_after, min(values, default=math.inf))
            self._finished[trial._trial_id] = digested
        return digested

    def remaining_gain(self, study: optuna.Study, epoch: int) -> tuple[float, int]:
        """(smallest ratio of best-after to best-up-to ``epoch`` over the finished runs, how many runs had one)."""
        ratio, runs = 1.0, 0
        for finished in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            steps, best_up_to, best_after, _ = self._digest(finished)
            at = bisect.bisect_right(steps, epoch) - 1
            if at < 0 or at >= len(steps) - 1 or best_up_to[at] <= 0:
                continue
            runs += 1
            ratio = min(ratio, best_after[at] / best_up_to[at])
        return ratio, runs

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        steps = sorted(trial.intermediate_values)
        if not steps or steps[-1] < self.n_warmup_steps or coming_down_from_a_spike(trial):
            return False
        values = [trial.intermediate_values[step] for step in steps if math.isfinite(trial.intermediate_values[step])]
        if not values:
            return False
        ended = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
        if sum(other.state == optuna.trial.TrialState.COMPLETE for other in ended) < self.n_startup_trials:
            return False
        sweep_best = min((self._digest(other)[3] for other in ended), default=math.inf)
        ratio, runs = self.remaining_gain(study, steps[-1])
        if runs == 0:
            return False
        return min(values) * ratio > sweep_best


class StartupPruner(optuna.pruners.BasePruner):
    """Lets ``inner`` judge every step but cuts nothing until ``n_startup_trials`` trials have finished.

    Successive halving on its own promotes the second trial only if it beats the first at the first
    rung, and so on: with the sweep's baseline (a plateaued run) as the first trial, runs that start
    slower than it are cut before there is anything to compare them with. ``inner.prune`` is still
    called, because successive halving records each rung's value inside it.
    """

    def __init__(self, inner: optuna.pruners.BasePruner, n_startup_trials: int):
        self.inner = inner
        self.n_startup_trials = n_startup_trials

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if not self.inner.prune(study, trial):
            return False
        finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        return len(finished) >= self.n_startup_trials


def create_pruner(config: SweepConfig) -> optuna.pruners.BasePruner:
    """The pruner named by ``config.pruner``; validation loss is reported once per epoch (step = epoch)."""
    # A run pruned before the plateau rule can judge it (patience + 1 epochs) gets no verdict; from a
    # random init early epochs say little more, so those runs wait longer (see InitAwareMedianPruner).
    median = InitAwareMedianPruner(config.patience, config.epochs)
    if config.pruner == "catch-up":
        return CatchUpPruner(config.patience)
    if config.pruner == "median":
        return median
    if config.pruner == "asha":
        # Asynchronous successive halving: at epochs r, 3r, 9r ... only the best third of the
        # trials that got there go on. First rung r = patience + 1, so each pruned run has a verdict.
        halving = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=config.patience + 1, reduction_factor=3, min_early_stopping_rate=0
        )
        return StartupPruner(halving, n_startup_trials=3)
    if config.pruner == "hyperband":
        hyperband = optuna.pruners.HyperbandPruner(
            min_resource=min(config.epochs, config.patience + 1), max_resource=config.epochs, reduction_factor=3
        )
        return StartupPruner(hyperband, n_startup_trials=3)
    if config.pruner == "patient":
        with warnings.catch_warnings():  # stable for years; the "experimental" notice only alarms users
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.PatientPruner(median, patience=config.patience)
    if config.pruner == "plateau":
        return PlateauPruner(config.patience, config.min_delta)
    if config.pruner == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {config.pruner!r}")


def create_sampler(config: SweepConfig, worker_index: int = 0) -> optuna.samplers.BaseSampler:
    """TPE seeded per worker, so that parallel workers don't propose the same random start points."""
    return optuna.samplers.TPESampler(
        seed=config.seed + worker_index,
        n_startup_trials=min(10, max(3, config.n_trials // 3)),
        multivariate=True,
        constant_liar=True,
    )
