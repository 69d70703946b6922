"""The plateau pruner: prunes by the analysis's plateau rule, on a real in-memory Optuna study."""

from __future__ import annotations

import random

import optuna
import pytest
import torch
from optuna.trial import TrialState

from sweep import space
from sweep.analysis.curves import classify_curve, plateau_epoch
from sweep.config import SweepConfig, build_config
from sweep.pruners import PlateauPruner, create_pruner
from sweep.train import EpochRecord

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _prune_decisions(val_losses, patience=2, min_delta=0.01):
    """should_prune() after each reported epoch of one trial of a fresh in-memory study."""
    study = optuna.create_study(pruner=PlateauPruner(patience, min_delta))
    trial = study.ask()
    decisions = []
    for epoch, value in enumerate(val_losses, start=1):
        trial.report(value, step=epoch)
        decisions.append(trial.should_prune())
    return decisions


def test_prunes_at_the_first_epoch_the_plateau_rule_holds():
    # best 0.7 at epoch 3; epochs 4 and 5 improve on it by less than 1 % relative
    decisions = _prune_decisions([1.0, 0.8, 0.7, 0.699, 0.698, 0.5])
    assert decisions == [False, False, False, False, True, False]  # (the objective stops at the first True)


def test_an_improving_curve_is_never_pruned():
    assert not any(_prune_decisions([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]))


def test_a_curve_that_breaks_out_of_a_stall_in_time_is_not_pruned():
    # one flat epoch is within patience=2; the next one improves by more than 1 %
    assert not any(_prune_decisions([1.0, 0.9, 0.9, 0.8, 0.7]))


def test_min_delta_is_relative_and_patience_counts_epochs():
    curve = [1.0, 0.98, 0.97, 0.965, 0.96]
    assert _prune_decisions(curve, patience=2, min_delta=0.05)[2]  # 3 % in two epochs < 5 %
    assert not any(_prune_decisions(curve, patience=2, min_delta=0.001))
    assert _prune_decisions([1.0, 1.0, 1.0, 1.0], patience=3, min_delta=0.01) == [False, False, False, True]


def test_a_short_curve_is_never_judged():
    assert _prune_decisions([1.0, 1.0], patience=2) == [False, False]


def test_warmup_steps_hold_off_pruning():
    study = optuna.create_study(pruner=PlateauPruner(patience=1, min_delta=0.01, n_warmup_steps=4))
    trial = study.ask()
    for epoch in (1, 2, 3):
        trial.report(1.0, step=epoch)
        assert not trial.should_prune()
    trial.report(1.0, step=4)
    assert trial.should_prune()


def test_plateau_epoch_is_the_verdicts_plateau_epoch():
    """The pruner's rule and the analysis's verdict agree on random curves."""
    rng = random.Random(0)
    checked = 0
    for _ in range(500):
        length = rng.randint(1, 12)
        val = [2.0]
        for _ in range(length - 1):
            val.append(val[-1] * rng.uniform(0.9, 1.03))
        history = [{"epoch": epoch, "val_loss": value} for epoch, value in enumerate(val, start=1)]
        verdict = classify_curve(history, patience=2, min_delta=0.01)
        found = plateau_epoch(val, patience=2, min_delta=0.01)
        if verdict.verdict in ("plateau", "overfitting", "oscillating"):
            assert found == verdict.plateau_epoch
            checked += 1
        elif verdict.verdict in ("improving", "too_short"):
            assert found is None
    assert checked > 50


def test_config_names_the_plateau_pruner():
    config = build_config(overrides={"pruner": "plateau", "patience": 3, "min_delta": 0.02})
    pruner = create_pruner(config)
    assert isinstance(pruner, PlateauPruner)
    assert (pruner.patience, pruner.min_delta) == (3, 0.02)


def test_pruned_trial_keeps_history_pruned_at_and_its_plateau_verdict(monkeypatch):
    """Through the real Objective: the plateaued trial stops early and the analysis still calls it a plateau."""
    from sweep import objective as objective_module

    curve = [1.0, 0.8, 0.7, 0.699, 0.698, 0.5, 0.4, 0.3]

    def fake_fit(model, train_loader, val_loader, *, epochs, on_epoch, **_):
        for epoch, value in enumerate(curve[:epochs], start=1):
            on_epoch(EpochRecord(epoch, value + 0.1, value, 0.5, 1e-3, 0.01))

    monkeypatch.setattr(objective_module, "fit", fake_fit)
    config = SweepConfig(model="resnet18", weights="none", data="synthetic:64", max_train=32, max_val=16,
                         epochs=8, n_trials=1, pruner="plateau")
    study = optuna.create_study(pruner=create_pruner(config))
    study.enqueue_trial(dict(space.DEFAULT_BASELINE))
    study.optimize(objective_module.Objective(config, torch.device("cpu")), n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["pruned_at"] == 5
    assert [entry["val_loss"] for entry in trial.user_attrs["history"]] == pytest.approx(curve[:5])
    verdict = classify_curve(trial.user_attrs["history"], patience=config.patience, min_delta=config.min_delta)
    assert (verdict.verdict, verdict.plateau_epoch) == ("plateau", 3)


# --- catch-up pruner -----------------------------------------------------------------------------

def _catch_up_study(finished_curves, pruned_curves=()):
    """An in-memory study with the catch-up pruner (patience 2) whose pruned, then finished runs had these val losses."""
    study = optuna.create_study(pruner=create_pruner(SweepConfig(pruner="catch-up", patience=2, epochs=6)))
    for curve, state in [(c, TrialState.PRUNED) for c in pruned_curves] + [(c, TrialState.COMPLETE) for c in finished_curves]:
        trial = study.ask()
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
        study.tell(trial, min(curve) if state == TrialState.COMPLETE else None, state=state)
    return study


def _catch_up_decisions(study, curve):
    trial = study.ask()
    decisions = []
    for epoch, value in enumerate(curve, start=1):
        trial.report(value, epoch)
        decisions.append(trial.should_prune())
    return decisions


# Three finished runs; the steepest (the first) halves its val loss after epoch 3 (2.0 -> 1.0), after
# epoch 4 it falls by a third (1.5 -> 1.0); the sweep's best is 0.9.
STARTUP = [[3.0, 2.5, 2.0, 1.5, 1.2, 1.0], [1.5, 1.3, 1.1, 1.0, 0.95, 0.9], [2.0, 1.9, 1.8, 1.8, 1.8, 1.8]]


def test_catch_up_cuts_a_run_that_could_not_reach_the_best_even_at_the_steepest_pace_seen():
    # At epoch 3 its best, 1.9, halved would be 0.95, above 0.9: it cannot catch up.
    assert _catch_up_decisions(_catch_up_study(STARTUP), [2.1, 2.0, 1.9]) == [False, False, True]


def test_catch_up_keeps_a_run_that_could_still_win_at_the_steepest_pace_seen():
    # At epoch 3: 1.7 halved is 0.85 < 0.9; at epoch 4: 1.3 less a third is 0.87 < 0.9; at epoch 5 the
    # steepest finished run fell by 1/1.2 after epoch 5: 1.05 / 1.2 = 0.875 < 0.9. It is never cut.
    assert _catch_up_decisions(_catch_up_study(STARTUP), [2.4, 2.0, 1.7, 1.3, 1.05, 0.85]) == [False] * 6


def test_catch_up_waits_for_a_verdict_and_for_three_finished_runs():
    hopeless = [9.0] * 5
    assert _catch_up_decisions(_catch_up_study(STARTUP), hopeless) == [False, False, True, True, True]
    # Two finished runs: nothing to learn the pace from yet; pruned runs do not count as finished.
    assert _catch_up_decisions(_catch_up_study(STARTUP[:2], pruned_curves=[[9.0] * 3]), hopeless) == [False] * 5


def test_catch_up_measures_against_the_best_val_loss_of_any_run_pruned_ones_included():
    # A pruned run reached 0.5 before it was cut: 1.7 halved (0.85) can no longer catch up.
    decisions = _catch_up_decisions(_catch_up_study(STARTUP, pruned_curves=[[0.8, 0.6, 0.5, 0.7]]), [2.4, 2.0, 1.7])
    assert decisions == [False, False, True]


def test_catch_up_does_not_cut_a_run_coming_down_from_a_spike():
    # 3.6 after 5.0 is a fall of 28 % in one epoch: not cut then, though 3.6 halved is far above 0.9.
    assert _catch_up_decisions(_catch_up_study(STARTUP), [2.2, 5.0, 3.6, 3.6]) == [False, False, False, True]


def test_catch_up_ignores_the_non_finite_val_losses_of_diverged_runs():
    # A NaN first would make min() NaN and every comparison False: the run below would never be cut.
    diverged = [[float("nan"), float("nan")], [float("inf")]]
    assert _catch_up_decisions(_catch_up_study(STARTUP, pruned_curves=diverged), [2.1, 2.0, 1.9]) == [False, False, True]
