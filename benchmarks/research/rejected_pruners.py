"""Pruners tried for the sweep and not offered by it, replayed on stored curves beside the sweep's own.

    .venv/bin/python benchmarks/research/rejected_pruners.py CURVES.json --pruners catch-up,p33,quartile --orders 50

The command line is benchmarks/pruning_replay.py's, with these pruners added to the sweep's.
"""

from __future__ import annotations

import bisect
import itertools
import math
import sys
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/, for pruning_replay

import pruning_replay  # noqa: E402
from sweep.pruning import STARTUP_TRIALS, SettledPercentilePruner, moved_a_lot, warmup_epochs  # noqa: E402


class CatchUpPruner(optuna.pruners.BasePruner):
    """Cuts a run that could not catch up with the sweep's best val loss even at the steepest pace seen so far.

    At epoch ``t`` every finished run tells how far its val loss still fell after ``t``: the ratio of its
    best after ``t`` to its best up to ``t``. A run is cut when its best so far, times the smallest such
    ratio of any finished run, would still be above the best val loss any trial has reached. Not before
    ``patience + 1`` epochs, not until ``n_startup_trials`` runs have finished, not within ``patience``
    epochs of a large move of its val loss (``moved_a_lot``).

    Rejected: with a grace after falls only, it cut the eventual best run in 10 of the 22 replayed sweeps
    it was not designed on, each time a run whose big fall came later than any finished run's had (a
    ReduceLROnPlateau drop, a high learning rate settling late): no finished run's pace foretold it.
    """

    def __init__(self, patience: int, n_startup_trials: int = STARTUP_TRIALS):
        self.patience = patience
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

    def remaining_gain(self, finished_trials: list[optuna.trial.FrozenTrial], epoch: int) -> tuple[float, int]:
        """(smallest ratio of best-after to best-up-to ``epoch`` over the finished runs, how many runs had one)."""
        ratio, runs = 1.0, 0
        for finished in finished_trials:
            steps, best_up_to, best_after, _ = self._digest(finished)
            at = bisect.bisect_right(steps, epoch) - 1
            if at < 0 or at >= len(steps) - 1 or best_up_to[at] <= 0:
                continue
            runs += 1
            ratio = min(ratio, best_after[at] / best_up_to[at])
        return ratio, runs

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        steps = sorted(trial.intermediate_values)
        if not steps or steps[-1] < self.n_warmup_steps or moved_a_lot(trial, within=self.patience):
            return False
        values = [trial.intermediate_values[step] for step in steps if math.isfinite(trial.intermediate_values[step])]
        if not values:
            return False
        ended = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
        finished = [other for other in ended if other.state == optuna.trial.TrialState.COMPLETE]
        if len(finished) < self.n_startup_trials:
            return False
        sweep_best = min((self._digest(other)[3] for other in ended), default=math.inf)
        ratio, runs = self.remaining_gain(finished, steps[-1])
        if runs == 0:
            return False
        return min(values) * ratio > sweep_best


def p33(config) -> optuna.pruners.BasePruner:
    """The default rule at the 33rd percentile: it spent as many epochs as the 25th (``quartile``) or more on
    every sweep replayed, and kept no best run the 25th lost."""
    return SettledPercentilePruner(33.0, config.patience,
                                   default_hold=warmup_epochs(config.patience, config.epochs, None))


# Name for --pruners -> factory(config), as in sweep.pruning.PRUNERS.
REJECTED = {"catch-up": lambda config: CatchUpPruner(config.patience), "p33": p33}


if __name__ == "__main__":
    pruning_replay.main(extra_pruners=REJECTED, description=__doc__)
