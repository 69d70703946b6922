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
