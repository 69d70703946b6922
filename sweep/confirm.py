"""One-change runs queued in the study: once a plateau-free run exists, each varied parameter set back to the
baseline's value alone, as ordinary trials of the study tagged in their record (workers, resume, checkpoints and
the dashboard treat them like any other). How many: ``confirmation_size``. No torch."""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from sweep.analysis.confirmation import changed_params, control_outcome, plan_runs, plateau_free, reference_of
from sweep.analysis.judged import judge, observational
from sweep.analysis.open_regions import in_region, regions_of
from sweep.analysis.inputs import records_and_space_from_trials
from sweep.config import CONFIRM_SHARE
from sweep.record import confirmation_of
from sweep.study_record import StudyWriter

log = logging.getLogger("sweep")


def confirmation_size(n_trials: int, n_runs: int) -> tuple[int, int]:
    """(runs, replicates) for ``n_runs`` distinct runs (the control and one per change): a second seed of each change
    where ``CONFIRM_SHARE`` of the budget holds them all twice; with fewer slots, the first in ``plan_runs``' order."""
    slots = int(CONFIRM_SHARE * n_trials)
    replicates = 2 if 2 * n_runs - 1 <= slots else 1
    return min(slots, (n_runs - 1) * replicates + 1), replicates


def _most_suspect_first(changed: list[str], baseline: dict[str, Any], trials: list[dict],
                        distributions: dict[str, BaseDistribution]) -> list[str]:
    """``changed``, the parameters whose baseline value the search left most suspect first: with fewer slots than
    parameters, the runs go where the search left a doubt. Per parameter, among the judged search runs in the
    range of the baseline's value: one plateau-free run rules the value out as a sole cause (last); otherwise
    the more runs kept the plateau there, the earlier."""
    def suspicion(param: str) -> tuple[bool, int]:
        region = next((r for r in regions_of(distributions[param]) if in_region(baseline[param], r)), None)
        if region is None:  # a baseline outside the searched space: no search run near it
            return False, 0
        there = [t for t in observational(trials) if in_region(t["params"].get(param), region)]
        return any(t["plateau_removed"] for t in there), -sum(1 for t in there if not t["plateau_removed"])
    return sorted(changed, key=suspicion)


def _tried_references(trials: list[dict]) -> dict[int, str | None]:
    """Each reference one-change runs were queued from, with its control's outcome."""
    controls: dict[int, list[dict]] = {}
    for trial in trials:
        tag = trial.get("confirmation")
        if tag:
            controls.setdefault(tag["reference"], [])
            if tag["param"] is None:
                controls[tag["reference"]].append(trial)
    return {reference: control_outcome(runs) for reference, runs in controls.items()}


def plateau_free_trials(study: optuna.Study, config) -> list[int]:
    """The search runs a plan may start from, the best first: trained to the end and still improving."""
    records, _ = records_and_space_from_trials(study.get_trials(deepcopy=False))
    return [t["number"] for t in plateau_free(judge(records, patience=config.patience, min_delta=config.min_delta))]


def due_runs(study: optuna.Study, config, *, reference_number: int | None = None,
             changes: list[tuple[str, Any]] | None = None, replicates: int | None = None,
             slots: int | None = None) -> list[dict]:
    """The one-change runs to queue now. The sweep's own: none until a plateau-free run exists, and none while a
    plan stands; a plan whose control kept the plateau gives way to one from the next plateau-free run. Asked for
    (``sweep confirm``): from ``reference_number`` (default: the best plateau-free run), with ``changes``
    (default: each varied parameter back to the baseline's value); a control only where that reference has none."""
    frozen = study.get_trials(deepcopy=False)
    asked = reference_number is not None or changes is not None or slots is not None
    room = config.n_trials - sum(1 for t in frozen if t.state != TrialState.FAIL)
    if not asked and room > int(CONFIRM_SHARE * config.n_trials):
        return []  # the search goes first; nothing is read or judged before the room left is the share
    records, distributions = records_and_space_from_trials(frozen)
    trials = judge(records, patience=config.patience, min_delta=config.min_delta)
    tried = _tried_references(trials)
    if not asked and any(outcome != "kept" for outcome in tried.values()):
        return []  # a plan stands (its control plateau-free or not done): one per sweep
    baseline = next((r.params for r in records if r.is_baseline and r.finished), None)
    if reference_number is None:
        reference = reference_of([t for t in trials if t["number"] not in tried])
    else:
        reference = next((t for t in trials if t["number"] == reference_number), None)
    if reference is None or baseline is None:
        return []
    if changes is None:
        changed = _most_suspect_first(changed_params(reference["params"], baseline, distributions), baseline, trials,
                                      distributions)
        changes = [(param, baseline[param]) for param in changed]
    control = reference["number"] not in tried
    size, each = confirmation_size(config.n_trials, len(changes) + control)
    if slots is None:  # the sweep's own plans share CONFIRM_SHARE of the budget, a second plan what the first left
        if room > size:
            return []  # the search goes first: a later plan starts from a better run and knows what to test first
        spent = sum(1 for t in trials if t.get("confirmation"))
        slots = min(size, int(CONFIRM_SHARE * config.n_trials) - spent, room)
        if slots < 2:  # a control alone proves nothing
            return []
    return plan_runs(reference, changes, slots=slots, replicates=replicates or each, control=control)


def queue_runs(study: optuna.Study, runs: list[dict]) -> None:
    writer = StudyWriter(study)
    for run in runs:
        writer.one_change_queued(run["params"], run["confirmation"])
    if runs:
        params = sorted({run["confirmation"]["param"] for run in runs} - {None})
        control = " (and the reference again, unchanged, as a control)" if runs[0]["confirmation"]["param"] is None else ""
        log.info("trial %d is plateau-free: %d one-change run(s) queued to confirm or rule out %s%s",
                 runs[0]["confirmation"]["reference"], len(runs), ", ".join(params), control)


def schedule_confirmations(study: optuna.Study, config) -> int:
    """Queue the one-change runs that are due (the sweep's own, from its best plateau-free run); how many."""
    if not config.confirm:
        return 0
    runs = due_runs(study, config)
    queue_runs(study, runs)
    return len(runs)
