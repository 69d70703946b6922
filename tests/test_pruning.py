"""The pruners of sweep/pruning.py on real in-memory Optuna studies: the plateau rule, the default percentile rule
with its holds, the halving pruners; and one trial through the objective with a pruner."""

from __future__ import annotations

import random

import optuna
import pytest
import torch
from optuna.trial import TrialState

from sweep import space
from sweep.analysis.curves import classify_curve
from sweep.config import SweepConfig, build_config
from sweep.plateau import plateau_epoch
from sweep.pruning import PlateauPruner, SettledPercentilePruner, StartupPruner, create_pruner
from sweep.record import HOLD_UNTIL
from sweep.trial import first_epoch_at_lowered_lr, hold_until
from test_objective import tiny_config
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


@pytest.mark.parametrize("name, kind", [
    ("median", SettledPercentilePruner), ("quartile", SettledPercentilePruner),
    ("asha", optuna.pruners.SuccessiveHalvingPruner),
    ("hyperband", optuna.pruners.HyperbandPruner),
    ("patient", optuna.pruners.PatientPruner), ("none", optuna.pruners.NopPruner),
])
def test_pruner_choice(name, kind):
    pruner = create_pruner(tiny_config(pruner=name))
    assert isinstance(pruner.inner if isinstance(pruner, StartupPruner) else pruner, kind)


def median_study_after_startup(epochs: int, pruner: str = "median", finished=(1.0, 1.0, 1.0)) -> optuna.Study:
    """A study with the ``pruner`` whose 3 startup trials finished flat at ``finished`` (good runs: 1.0 each epoch)."""
    study = optuna.create_study(pruner=create_pruner(tiny_config(pruner=pruner, epochs=epochs, patience=2)))
    for value in finished:
        trial = study.ask()
        for epoch in range(1, epochs + 1):
            trial.report(value, epoch)
        study.tell(trial, value)
    return study


def held_trial(study: optuna.Study, init: str | None, epochs: int, scheduler: str = "none") -> optuna.Trial:
    """A new trial of ``study`` that recorded its hold as the objective does (none recorded when ``init`` is None)."""
    trial = study.ask()
    if init is not None:
        config = tiny_config(epochs=epochs, patience=2)
        trial.set_user_attr(HOLD_UNTIL, hold_until(config, {"scheduler": scheduler}, init))
    return trial


def pretrained_run_decisions(study: optuna.Study, val_losses: list[float], epochs: int = 12) -> list[bool]:
    """should_prune() after each epoch of a new trial from pretrained weights that reports ``val_losses``."""
    trial = held_trial(study, "pretrained", epochs)
    decisions = []
    for epoch, value in enumerate(val_losses, start=1):
        trial.report(value, epoch)
        decisions.append(trial.should_prune())
    return decisions


def test_default_quartile_pruner_cuts_a_run_the_median_lets_finish():
    # Finished runs at 1.0, 2.0 and 3.0: the median bar is 2.0, the 25th percentile's 1.5. A pretrained
    # run steady at 1.8 is in the better half, not in the best quarter.
    cuts = {}
    for pruner in ("median", SweepConfig().pruner):
        study = median_study_after_startup(epochs=8, pruner=pruner, finished=(1.0, 2.0, 3.0))
        decisions = pretrained_run_decisions(study, [1.8] * 8, epochs=8)
        cuts[pruner] = decisions.index(True) + 1 if True in decisions else None
    # the quartile pruner waits as long as the median (patience + 1 epochs: the run gets its verdict)
    assert cuts == {"median": None, "quartile": 3}


def test_median_pruner_waits_until_the_plateau_rule_can_judge_the_run():
    study = median_study_after_startup(epochs=8)
    hopeless = study.ask()
    decisions = []
    for epoch in range(1, 5):
        hopeless.report(5.0, epoch)
        decisions.append(hopeless.should_prune())
    # patience + 1 = 3 epochs before the first prune: a pruned run still gets a verdict.
    assert decisions == [False, False, True, True]


def first_cut(study, init, epochs):
    """The epoch at which a hopeless trial (started from ``init`` weights, or unsaid) is pruned."""
    trial = held_trial(study, init, epochs)
    for epoch in range(1, epochs + 1):
        trial.report(5.0, epoch)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return epoch
    study.tell(trial, 5.0)
    return None


def test_median_pruner_waits_longer_for_runs_from_a_random_init():
    study = median_study_after_startup(epochs=24)
    # Pretrained: as soon as the plateau rule can judge (patience + 1); random init or unsaid: a third of 24.
    assert [first_cut(study, init, 24) for init in ("pretrained", "random", None)] == [3, 8, 8]


@pytest.mark.parametrize("pruner", ["median", "quartile"])
def test_median_pruner_does_not_cut_a_run_coming_down_from_a_spike(pruner):
    study = median_study_after_startup(epochs=12, pruner=pruner)
    # Worse than the median throughout; at epoch 3 it fell 28 % in one epoch, at epoch 4 it bounces
    # (still within patience = 2 epochs of the fall), at epoch 5 it stalls.
    decisions = pretrained_run_decisions(study, [2.2, 5.0, 3.6, 3.9, 3.9])
    assert decisions == [False, False, False, False, True]


@pytest.mark.parametrize("pruner", ["median", "quartile"])
def test_median_pruner_does_not_cut_a_run_that_overshoots_before_settling(pruner):
    study = median_study_after_startup(epochs=12, pruner=pruner)
    # A held-out sweep's best run began so (0.87, 1.11, 1.06, here doubled to
    # stay above the others' 1.0): a 27 % rise at epoch 2, then flat; the rise holds the cut for
    # patience = 2 epochs (2 and 3), and at epoch 4, without a large move since, it is cut.
    decisions = pretrained_run_decisions(study, [1.74, 2.22, 2.12, 2.10])
    assert decisions == [False, False, False, True]


@pytest.mark.parametrize("pruner", ["median", "quartile"])
@pytest.mark.parametrize("scheduler, cut_at", [("step", 9), ("cosine", 3), ("plateau", 3), ("none", 3)])
def test_a_step_schedule_run_is_not_cut_before_its_first_lr_drop(pruner, scheduler, cut_at):
    study = median_study_after_startup(epochs=24, pruner=pruner)
    trial = held_trial(study, "pretrained", 24, scheduler)
    for epoch in range(1, 25):
        trial.report(5.0, epoch)
        if trial.should_prune():
            break
    # step: LR x0.1 after epoch 8 (a third of 24), so epoch 9 is the first the run trains at the lower
    # LR; every other schedule is judged once the plateau rule can (patience + 1 = 3)
    assert epoch == cut_at


def test_a_trials_hold_is_the_first_epoch_its_own_scheduler_trains_at_a_lowered_lr():
    from sweep.train import create_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = create_scheduler(optimizer, "step", epochs=24)
    lrs = []
    for _ in range(24):  # the lr each epoch trains at, stepped after it as the epoch loop does
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    first_lowered = next(epoch for epoch, lr in enumerate(lrs, start=1) if lr < 0.1)
    assert first_lowered == 9
    config = tiny_config(epochs=24, patience=2)
    assert first_epoch_at_lowered_lr("step", 24) == first_lowered
    assert hold_until(config, {"scheduler": "step"}, "pretrained") == first_lowered
    # cosine lowers the LR from epoch 2, inside every warm-up; none and plateau have no fixed drop
    assert first_epoch_at_lowered_lr("cosine", 24) == 2
    assert first_epoch_at_lowered_lr("none", 24) is None and first_epoch_at_lowered_lr("plateau", 24) is None
    assert [hold_until(config, {"scheduler": name}, init) for name, init in
            (("none", "pretrained"), ("cosine", "pretrained"), ("none", "random"))] == [3, 3, 8]


@pytest.mark.parametrize("pruner", ["asha", "hyperband"])
def test_halving_pruners_first_cut_comes_after_patience_plus_one_epochs(pruner):
    config = tiny_config(pruner=pruner, epochs=12, patience=2)
    # Hyperband puts each trial in a bracket by a hash of study name and trial number: fix the name.
    study = optuna.create_study(study_name="halving", pruner=create_pruner(config))
    for _ in range(12):  # good runs that reach the end (halving pruners record rungs in should_prune)
        trial = study.ask()
        for epoch in range(1, 13):
            trial.report(1.0, epoch)
            assert not trial.should_prune()
        study.tell(trial, 1.0)
    decisions = []
    for _ in range(3):  # hopeless runs: hyperband sends each to one of its brackets
        hopeless = study.ask()
        for epoch in range(1, 13):
            hopeless.report(5.0, epoch)
            if hopeless.should_prune():
                decisions.append(epoch)
                study.tell(hopeless, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(hopeless, 5.0)
    # Never before patience + 1 = 3 epochs (the plateau rule's minimum), and each hopeless run is cut.
    assert len(decisions) == 3 and min(decisions) >= 3, decisions


def test_asha_cuts_nothing_before_three_trials_have_finished():
    # Alone, successive halving would cut trial 1 at epoch 3 for being worse than trial 0 (the baseline).
    study = optuna.create_study(pruner=create_pruner(tiny_config(pruner="asha", epochs=12, patience=2)))
    cut = []
    for number, loss in enumerate([1.0, 2.0, 3.0, 4.0]):
        trial = study.ask()
        for epoch in range(1, 13):
            trial.report(loss, epoch)
            if trial.should_prune():
                cut.append((number, epoch))
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, loss)
    assert cut == [(3, 3)]
