"""Pruners and samplers built from the sweep config: what stops hopeless trials, what proposes new ones."""

from __future__ import annotations

import math
import warnings

import optuna

from sweep.analysis.curves import plateau_epoch
from sweep.config import SweepConfig
from sweep.space import step_lr_period


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


# Finished runs a pruner waits for before it cuts any: with fewer, a percentile or a rung says little.
STARTUP_TRIALS = 3

# Trial user attr the objective sets once the model is built: "pretrained" or "random" (the initial weights).
INIT_ATTR = "init"


# A run whose val loss fell by this share or more in one epoch is not cut for ``patience`` epochs from then.
RECOVERING_DROP = 0.2


def _recent_moves(trial: optuna.trial.FrozenTrial, within: int) -> list[tuple[float, float]]:
    """(before, after) val loss of each of the trial's last ``within`` epochs."""
    values = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)[-(within + 1):]]
    return list(zip(values, values[1:]))


def coming_down_from_a_spike(trial: optuna.trial.FrozenTrial, within: int) -> bool:
    """Did the trial's val loss fall by ``RECOVERING_DROP`` or more in one epoch, in one of its last ``within`` epochs?

    A high learning rate's early spike looks hopeless until it comes down, and it may bounce once on
    the way: such runs ended best in the replays of BENCHMARKS.md where the plain median rule cut them,
    at the epoch of the fall (4.95 -> 3.59) or at the one after it (3.11 -> 3.48).
    """
    return any(later < earlier * (1 - RECOVERING_DROP) for earlier, later in _recent_moves(trial, within))


# A run whose val loss rose by this share or more in one epoch is not cut for ``patience`` epochs from then.
UNSETTLED_RISE = 0.2


def unsettled(trial: optuna.trial.FrozenTrial, within: int) -> bool:
    """Did the trial's val loss move by a large step, in one of its last ``within`` epochs?

    A fall by ``RECOVERING_DROP`` or more (``coming_down_from_a_spike``), or a rise by ``UNSETTLED_RISE`` or
    more: a high learning rate that overshoots before its schedule brings it down. Its rank at that
    point says little of where it ends. In a held-out sweep of BENCHMARKS.md (session 5) the eventual
    best run went 0.87, 1.11, 1.06 in its first epochs, stood 12th of 32 at epoch 3, was cut there
    by the median rule, and unpruned fell to 0.08 as its cosine schedule lowered the learning rate.
    """
    return any(later < earlier * (1 - RECOVERING_DROP) or later > earlier * (1 + UNSETTLED_RISE)
               for earlier, later in _recent_moves(trial, within))


def before_first_lr_drop(trial: optuna.trial.FrozenTrial, epochs: int) -> bool:
    """Is the trial on the ``step`` schedule and yet to train an epoch at its first lowered LR?

    Until its first drop (a third of the way in) such a run trains at its initial LR, and its rank
    says little of where it ends. In a held-out 40 x 24 sweep of BENCHMARKS.md (session 7) the best
    run (step, lr 0.022) stood 8th of 40 at epoch 3 and 8th at epoch 7, then went 0.16, 0.11 around its
    first drop and ended best; the quartile rule cut it at epoch 3 in 35 of 50 trial orders (1.24x).
    """
    return trial.params.get("scheduler") == "step" and (trial.last_step or 0) <= step_lr_period(epochs)


def warmup_epochs(patience: int, epochs: int, init: str | None) -> int:
    """Epochs a run trains before the default pruners may cut it, by its initial weights (see InitAwareMedianPruner)."""
    if init == "pretrained":
        return min(epochs, patience + 1)
    return min(epochs, max(patience + 1, epochs // 3))


class InitAwareMedianPruner(optuna.pruners.BasePruner):
    """Optuna's percentile rule, with a warm-up that depends on whether the trial started from pretrained weights.

    The 50th percentile (the median) for ``--pruner median``, the 25th for the default ``quartile``.

    Fine-tuned from pretrained weights, a run's rank settles within a few epochs: in the sweeps of
    BENCHMARKS.md the eventual best run was among the best 2 at epoch 3 in most and among the best 9
    in all but those where it was a high learning rate coming down from a spike (which the spike
    rule keeps), so the warm-up is ``patience + 1`` epochs, the least that gives a pruned run its
    plateau verdict. From a random init the runs that end best (high learning rates) were often the
    worst at epoch 3, so the warm-up is a third of the epochs (at least ``patience + 1``). A trial that has not said (no ``init`` attr)
    gets the longer one.

    A run that is not settled is not cut, however it ranks, for ``patience`` epochs from the epoch
    its val loss fell by ``RECOVERING_DROP`` or more, or rose by ``UNSETTLED_RISE`` or more (``unsettled``),
    nor a ``step``-schedule run before it has trained an epoch at its first lowered LR (``before_first_lr_drop``).
    """

    def __init__(self, patience: int, epochs: int, n_startup_trials: int = STARTUP_TRIALS,
                 percentile: float = 50.0):
        # percentile: 50 is the median, 25 the ``quartile`` pruner; lower cuts more
        self.patience = patience
        self.epochs = epochs
        # the warm-up depends on the trial, so it is checked in prune(), with the other holds
        self.percentile = optuna.pruners.PercentilePruner(percentile, n_startup_trials=n_startup_trials)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        warmup = warmup_epochs(self.patience, self.epochs, trial.user_attrs.get(INIT_ATTR))
        if ((trial.last_step or 0) < warmup or before_first_lr_drop(trial, self.epochs)
                or unsettled(trial, within=self.patience)):
            return False
        return self.percentile.prune(study, trial)


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
    if config.pruner == "quartile":
        # The default. The median's rule against the best quarter of the finished runs instead of the
        # better half: the same warm-ups and grace, fewer epochs on runs that finish mid-field; it kept
        # every best run the median kept in the replays of BENCHMARKS.md (sessions 5 and 6).
        return InitAwareMedianPruner(config.patience, config.epochs, percentile=25.0)
    median = InitAwareMedianPruner(config.patience, config.epochs)
    if config.pruner == "median":
        return median
    if config.pruner == "asha":
        # Asynchronous successive halving: at epochs r, 3r, 9r ... only the best third of the
        # trials that got there go on. First rung r = patience + 1, so each pruned run has a verdict.
        halving = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=config.patience + 1, reduction_factor=3, min_early_stopping_rate=0
        )
        return StartupPruner(halving, n_startup_trials=STARTUP_TRIALS)
    if config.pruner == "hyperband":
        hyperband = optuna.pruners.HyperbandPruner(
            min_resource=min(config.epochs, config.patience + 1), max_resource=config.epochs, reduction_factor=3
        )
        return StartupPruner(hyperband, n_startup_trials=STARTUP_TRIALS)
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
