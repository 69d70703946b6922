"""Ending a sweep before its budget (``--stop-when``): the stored rule checked after each finished trial, and the
reason stored on the study, where every worker and `sweep status` read it. No torch."""

from __future__ import annotations

import logging
import warnings

import optuna
from optuna.terminator import BestValueStagnationEvaluator, Terminator

from sweep.analysis import records_and_space_from_trials
from sweep.analysis.report import region_text
from sweep.analysis.settled import Thresholds, settled_answer
from sweep.config import SweepConfig
from sweep.study_record import StudyWriter, baseline_number, stop_reason

log = logging.getLogger("sweep")


def _region_text(answer: dict) -> str:
    return ", ".join(region_text(param, region) for param, region in answer.items())


def answered(study: optuna.Study, config: SweepConfig) -> dict | None:
    """The analysis' answer settled: the same factors and regions after each of the last ``stop_after`` trials."""
    trials = study.get_trials(deepcopy=False)
    records, distributions = records_and_space_from_trials(trials)
    order = [t.number for t in sorted((t for t in trials if t.datetime_complete), key=lambda t: t.datetime_complete)]
    thresholds = Thresholds(config.patience, config.min_delta, baseline_number=baseline_number(trials))
    settled = settled_answer(records, distributions, thresholds, config.stop_after, order)
    if settled is None:
        return None
    return {"rule": "answered", "n_finished": settled["n_finished"], "answer": settled["answer"],
            "reason": f"the answer ({_region_text(settled['answer'])}) was the same after each of the last "
                      f"{config.stop_after} finished trials, with no other parameter close to being named"}


def stalled(study: optuna.Study, config: SweepConfig) -> dict | None:
    """Optuna's terminator with its stagnation evaluator: no new best value in ``stop_after`` complete trials."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the terminator warns that it is deprecated in Optuna 5; it still works
        # The evaluator stops once the trials since the best exceed its argument: one fewer means "after stop_after".
        terminator = Terminator(improvement_evaluator=BestValueStagnationEvaluator(config.stop_after - 1),
                                min_n_trials=config.stop_after + 1)
        if not terminator.should_terminate(study):
            return None
    best = study.best_trial
    complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    return {"rule": "stalled", "n_finished": complete,
            "reason": f"no new best validation loss in the last {config.stop_after} complete trials (best "
                      f"{best.value:.4g}, trial {best.number}; Optuna's terminator)"}


RULES = {"answered": answered, "stalled": stalled}


class StopWhen:
    """An Optuna callback: after each finished trial, check the study's stop rule; once it holds, store the reason
    and stop this worker's optimize loop (the others see the reason before they start their next trial)."""

    def __init__(self, config: SweepConfig):
        self.config = config
        self.check = RULES[config.stop_when]

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        reason = stop_reason(study)
        if reason is None:
            reason = self.check(study, self.config)
            if reason is None:
                return
            StudyWriter(study).stopped(reason)
            log.info("stopping the sweep (--stop-when %s): %s", self.config.stop_when, reason["reason"])
        study.stop()


def stop_callbacks(config: SweepConfig) -> list:
    return [StopWhen(config)] if config.stop_when in RULES else []
