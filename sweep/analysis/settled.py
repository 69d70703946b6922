"""When a sweep has learned enough: its answer, the named factors and their regions, the same after each of the
last trials to finish.

Pure: the trials come in the order they finished. Only the quick factor search runs at each step,
since the rule asks which factors are named, not how important they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from optuna.distributions import BaseDistribution

from sweep.analysis.answer import same_answer
from sweep.analysis.curves import PreparedCurve, prepare_curve
from sweep.analysis.factors import find_factors
from sweep.analysis.inputs import FINISHED_STATES, TrialRecord
from sweep.analysis.judged import judge, observational
from sweep.analysis.regions import ALPHA
from sweep.analysis.robustness import evidence_of


@dataclass(frozen=True)
class Thresholds:
    """What an answer is judged with: the study's plateau rule and the analysis' evidence minimum."""

    patience: int = 2
    min_delta: float = 0.01
    min_trials: int = 6
    baseline_number: int = 0


# Judged runs per varied parameter before an answer may settle: fewer cannot show a second cause whose region holds
# a tenth of a parameter's range (about half a run inside it per parameter); on the synthetic sweeps of
# benchmarks/stop_when.py the second cause is not even close to being named before then.
MIN_RUNS_PER_PARAM = 5


@dataclass(frozen=True)
class Answer:
    n_finished: int
    n_judged: int
    evidence: str
    factors: dict[str, dict]  # {param: region}
    pending: tuple[str, ...]  # not named, but beyond chance before the correction: may be named with more trials


def answer_after(records: list[TrialRecord], distributions: dict[str, BaseDistribution], thresholds: Thresholds,
                 prepared: dict[int, PreparedCurve] | None = None) -> Answer:
    """The evidence, factors and pending parameters of these trials (none unless the evidence is ok)."""
    trials = judge(records, patience=thresholds.patience, min_delta=thresholds.min_delta, prepared=prepared)
    judged = observational(trials)
    evidence = evidence_of(judged, thresholds.min_trials)
    if evidence != "ok":
        return Answer(len(records), len(judged), evidence, {}, ())
    factors, others, _ = find_factors([trial["params"] for trial in judged],
                                      [not trial["plateau_removed"] for trial in judged], distributions,
                                      min_trials=thresholds.min_trials, quick=True)
    pending = tuple(other["param"] for other in others if other.get("p_permutation", 1.0) < ALPHA)
    return Answer(len(records), len(judged), evidence, {f["param"]: f["removes_plateau"] for f in factors}, pending)


def answers_by_step(finished: list[TrialRecord], distributions: dict[str, BaseDistribution], thresholds: Thresholds,
                    steps: range | None = None) -> list[Answer]:
    """The answer after each step: the first n of ``finished`` (in finishing order) for n in ``steps``."""
    prepared = {record.number: prepare_curve(record.history, record.failure) for record in finished}
    steps = steps if steps is not None else range(1, len(finished) + 1)
    return [answer_after(finished[:n], distributions, thresholds, prepared) for n in steps]


def is_settled(answers: list[Answer], distributions: dict[str, BaseDistribution]) -> bool:
    """The same factors and regions after each of these steps, with evidence ok, at least one factor named, no
    parameter pending and ``MIN_RUNS_PER_PARAM`` judged runs per varied parameter.

    An empty answer never settles a sweep: early on nothing is significant yet. A pending parameter
    is a cause still gathering evidence: a strong first factor settles long before a second one is
    named, and stopping then would answer half the question.
    """
    if not answers:
        return False
    first = answers[0].factors
    enough = MIN_RUNS_PER_PARAM * sum(1 for distribution in distributions.values() if not distribution.single())
    return all(answer.evidence == "ok" and answer.factors and not answer.pending and answer.n_judged >= enough
               and same_answer(answer.factors, first, distributions) for answer in answers)


def settled_answer(records: list[TrialRecord], distributions: dict[str, BaseDistribution], thresholds: Thresholds,
                   stable_for: int, finish_order: list[int] | None = None) -> dict | None:
    """Whether the answer has been the same for the last ``stable_for`` finished trials; None while it has not.

    ``finish_order`` lists trial numbers in the order they finished (number order when not given).
    Returns ``{"answer", "n_finished", "since"}``: the answer, the finished trials it was judged on, and the
    step at which it was first given in this run of ``stable_for``.
    """
    by_number = {record.number: record for record in records if record.state in FINISHED_STATES}
    order = finish_order if finish_order is not None else sorted(by_number)
    finished = [by_number[number] for number in order if number in by_number]
    if len(finished) < max(stable_for, thresholds.min_trials):
        return None
    answers = answers_by_step(finished, distributions, thresholds,
                              range(len(finished) - stable_for + 1, len(finished) + 1))
    if not is_settled(answers, distributions):
        return None
    return {"answer": answers[-1].factors, "n_finished": len(finished), "since": answers[0].n_finished}


def first_settled_step(answers: list[Answer], distributions: dict[str, BaseDistribution],
                       stable_for: int) -> int | None:
    """The first step at which the rule would stop a sweep whose answers after each step are ``answers``."""
    for end in range(stable_for, len(answers) + 1):
        if is_settled(answers[end - stable_for:end], distributions):
            return answers[end - 1].n_finished
    return None
