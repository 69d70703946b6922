"""The ask-train-tell loop: run trials of a study until its global trial budget is met."""

from __future__ import annotations

import optuna
import torch
from optuna.trial import TrialState

from sweep.config import SweepConfig
from sweep.objective import Objective

# The budget counts trials that ended with a verdict; crashed (FAIL) trials are retried instead.
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=BUDGET_STATES))


def run_trials(
    study: optuna.Study,
    config: SweepConfig,
    device: torch.device,
    *,
    progress=None,
    callbacks: tuple = (),
) -> int:
    """Run trials until ``config.n_trials`` have finished in the whole study; returns how many ran here."""
    if finished_count(study) >= config.n_trials:
        return 0
    ran = 0

    def count(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal ran
        ran += 1

    all_callbacks = [optuna.study.MaxTrialsCallback(config.n_trials, states=BUDGET_STATES), count]
    if progress is not None:
        all_callbacks.append(progress)
    study.optimize(
        Objective(config, device, progress),
        callbacks=[*all_callbacks, *callbacks],
        gc_after_trial=False,
    )
    return ran
