"""--stop-when: the settled-answer rule on hand-made answers and curves, and the worker loop that stops on it or on
Optuna's terminator, with a synthetic objective (no torch)."""

from __future__ import annotations

import tomllib

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from optuna.distributions import FloatDistribution

from sweep.analysis import TrialRecord, analyze, records_from_study
from sweep.analysis.answer import answer_of, same_answer
from sweep.analysis.settled import Answer, Thresholds, answers_by_step, is_settled, settled_answer
from sweep.cli import main
from sweep.config import ConfigError, SweepConfig, build_config
from synthetic_studies import outcome_history, plateau_rule

LR = {"lr": FloatDistribution(1e-5, 1e-1, log=True)}
LR_REGION = {"lr": {"low": 1e-3, "high": 1e-1}}
FLAT = [2.0, 1.5, 1.4, 1.4002, 1.3999, 1.4001, 1.3998, 1.4001]
FAST = [2.0 * 0.9 ** epoch for epoch in range(8)]


def answer(factors=LR_REGION, evidence="ok", pending=(), n=10, n_judged=10):
    return Answer(n, n_judged, evidence, factors, pending)


# --- the rule on hand-made answers ------------------------------------------------------------------

def test_the_same_answer_after_each_step_with_evidence_settles():
    assert is_settled([answer(n=n) for n in range(10, 15)], LR)
    # more trials moved an end of the range: still the same answer while they overlap by half their union
    moved = {"lr": {"low": 8e-3, "high": 1e-1}}
    assert is_settled([answer(), answer(moved), answer()], LR)


@pytest.mark.parametrize("odd_one", [
    answer({"lr": {"low": 1e-2, "high": 1e-1}}),  # another region
    answer({}),  # nothing named
    answer(evidence="insufficient"),
    answer(pending=("frozen_stages",)),  # a second cause on its way
    answer(n_judged=4),  # fewer than five judged runs for the one varied parameter
], ids=["other-region", "no-factor", "insufficient", "pending", "too-few-runs"])
def test_one_step_with_another_or_no_answer_keeps_the_sweep_going(odd_one):
    assert not is_settled([answer(), answer(), odd_one, answer(), answer()], LR)


def test_an_empty_answer_never_settles_however_long_it_lasts():
    assert not is_settled([answer({}) for _ in range(20)], LR)
    assert not is_settled([], LR)


# --- the rule on hand-made curves ------------------------------------------------------------------

def lr_runs(n):
    """Low and high learning rates in turn: the low ones stay flat, the high ones improve (trial 0: low)."""
    runs = []
    for number in range(n):
        high = number % 2 == 1
        spread = (number // 2 * 0.618034) % 1  # a low-discrepancy walk: the range is covered early on
        lr = 1e-3 * 100 ** spread if high else 1e-5 * 10 ** spread
        curve = FAST if high else FLAT
        runs.append(TrialRecord(number, "COMPLETE", {"lr": lr}, [
            {"epoch": e, "train_loss": v, "val_loss": v} for e, v in enumerate(curve, start=1)], value=min(curve)))
    return runs


def test_settled_answer_needs_the_answer_after_each_of_the_last_k_finished_trials():
    records = lr_runs(30)
    answers = answers_by_step(records, LR, Thresholds(), range(6, 31))
    first_named = next(a.n_finished for a in answers if a.factors)
    assert all(a.factors.keys() == {"lr"} for a in answers if a.n_finished >= first_named)
    k = 5
    assert settled_answer(records[:first_named + k - 2], LR, Thresholds(), k) is None  # k - 1 steps so far
    settled = settled_answer(records[:first_named + k - 1], LR, Thresholds(), k)
    assert settled["n_finished"] == first_named + k - 1 and settled["since"] == first_named
    assert settled["answer"].keys() == {"lr"}


def test_settled_answer_follows_the_order_in_which_trials_finished():
    records = lr_runs(30)
    answers = answers_by_step(records, LR, Thresholds(), range(6, 31))
    just_settled = records[:next(a.n_finished for a in answers if a.factors) + 4]
    assert settled_answer(just_settled, LR, Thresholds(), 5) is not None
    # The same trials, the flat ones finished first: four trials ago too few improving runs were in to name lr.
    flat_first = sorted((r.number for r in just_settled), key=lambda number: number % 2)
    assert settled_answer(just_settled, LR, Thresholds(), 5, finish_order=flat_first) is None


# --- the worker loop --------------------------------------------------------------------------------

class SyntheticObjective:
    """Curves from the default synthetic rule (frozen_stages >= 3 or lr < 3e-5 keeps the plateau), without noise."""

    def __init__(self, config, value=None):
        self.config, self.value, self.rng = config, value, np.random.default_rng(0)

    def __call__(self, trial: optuna.Trial) -> float:
        from sweep import space
        from sweep.record import TrialWriter

        params = space.suggest(trial, self.config.space)
        history, _ = outcome_history("plateau" if plateau_rule(params) else "improving", self.config.epochs, self.rng)
        record = TrialWriter(trial)
        for row in history:
            record.epoch(row)
            trial.report(row["val_loss"], step=row["epoch"])
        return self.value(trial) if self.value else min(row["val_loss"] for row in history)


def sweep_study(tmp_path, **settings):
    from sweep import study as study_module
    from sweep.storage import open_storage

    url = f"sqlite:///{tmp_path / 'stop.db'}"
    config = SweepConfig(epochs=8, pruner="none", checkpoints=False, **settings)
    storage = open_storage(url)
    study, _ = study_module.create_or_resume(storage, "stop", config)
    return url, storage, study, config


def run_here(study, config, storage, objective=None):
    from sweep.worker import run_trials

    # Random draws, as the factor search assumes: TPE's draws follow the loss, and its favourite values of a
    # parameter that is no cause collect plateau-free runs too.
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    return run_trials(study, config, None, storage=storage, until_done=False,
                      objective=objective or SyntheticObjective(config))


@pytest.mark.slow
def test_stop_when_answered_ends_the_sweep_once_the_answer_settled_and_says_why(tmp_path):
    from sweep.status import status_text
    from sweep.stopping import stop_reason

    url, storage, study, config = sweep_study(tmp_path, n_trials=80, stop_when="answered", stop_after=5)
    ran = run_here(study, config, storage)
    reason = stop_reason(study)
    assert reason["rule"] == "answered" and ran == reason["n_finished"] < 80
    records, distributions = records_from_study(study)
    full = answer_of(analyze(records, distributions, study_name="stop"))
    assert same_answer(reason["answer"], full, distributions)  # the quick search agrees with the full analysis
    assert "frozen_stages" in reason["answer"] and set(reason["answer"]) <= {"frozen_stages", "lr"}
    assert "stopped before the budget (--stop-when answered, after" in status_text(url, "stop")
    assert run_here(study, config, storage) == 0  # another worker starts nothing


@pytest.mark.parametrize("stop_after", [1, 3])
def test_stop_when_stalled_stops_after_exactly_stop_after_trials_without_a_new_best(tmp_path, stop_after):
    from sweep.stopping import stop_reason

    _, storage, study, config = sweep_study(tmp_path, n_trials=40, stop_when="stalled", stop_after=stop_after)
    ran = run_here(study, config, storage, SyntheticObjective(config, value=lambda trial: 1.0 + trial.number))
    reason = stop_reason(study)
    assert ran == 1 + stop_after and reason["rule"] == "stalled"  # the best at trial 0, then stop_after without one
    assert (f"no new best validation loss in the last {stop_after} complete trials (best 1, trial 0"
            in reason["reason"])


def test_never_runs_the_whole_budget(tmp_path):
    _, storage, study, config = sweep_study(tmp_path, n_trials=12)
    assert config.stop_when == "never" and run_here(study, config, storage) == 12


def test_resuming_with_another_stop_rule_stores_it_and_lifts_the_stop(tmp_path):
    from sweep import study as study_module
    from sweep.stopping import stop_reason

    _, storage, study, config = sweep_study(tmp_path, n_trials=40, stop_when="stalled", stop_after=3)
    run_here(study, config, storage, SyntheticObjective(config, value=lambda trial: 1.0 + trial.number))
    assert stop_reason(study)
    resumed, _ = study_module.create_or_resume(storage, "stop", SweepConfig(
        epochs=8, pruner="none", checkpoints=False, n_trials=40, stop_when="never", stop_after=3))
    assert stop_reason(resumed) is None
    assert study_module.stored_config(resumed).stop_when == "never"


def test_sweep_worker_stop_when_becomes_the_studys_rule(tmp_path):
    from sweep import study as study_module

    url, storage, study, config = sweep_study(tmp_path, n_trials=3)
    run_here(study, config, storage)  # budget spent: the worker below only joins and leaves
    result = CliRunner().invoke(main, ["worker", "--study", "stop", "--storage", url, "--device", "cpu",
                                       "--stop-when", "answered", "--stop-after", "7", "--quiet"])
    assert result.exit_code == 0, result.output
    stored = study_module.stored_config(optuna.load_study(study_name="stop", storage=url))
    assert (stored.stop_when, stored.stop_after) == ("answered", 7)


def test_a_stop_rule_that_does_not_exist_is_refused_with_what_is_accepted(tmp_path):
    result = CliRunner().invoke(main, ["start", "--study", "s", "--stop-when", "sometimes"])
    assert result.exit_code == 2
    assert "'sometimes' is not one of 'never', 'answered', 'stalled'" in result.output
    path = tmp_path / "sweep.toml"
    path.write_text('stop_when = "sometimes"\n')
    assert tomllib.loads(path.read_text())
    with pytest.raises(ConfigError, match="stop_when='sometimes' is not accepted: expected never, answered or "
                                          "stalled"):
        build_config(path)
    path.write_text("stop_after = 0\n")
    with pytest.raises(ConfigError, match="stop_after=0 is not accepted: expected an integer >= 1"):
        build_config(path)
