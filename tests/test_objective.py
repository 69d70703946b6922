"""One trial through the real objective: history per epoch, pruning, and failures that end a trial, not the sweep."""

import optuna
import pytest
import torch

from sweep import space
from sweep.config import SweepConfig, build_config
from sweep.objective import Objective
from sweep.pruners import INIT_ATTR, InitAwareMedianPruner, StartupPruner, before_first_lr_drop, create_pruner
from sweep.worker import run_trials


def tiny_config(**overrides):
    fixed = {"model": "resnet18", "weights": "none", "data": "synthetic:64", "image_size": 32,
             "max_train": 32, "max_val": 16, "epochs": 2, "n_trials": 2}
    space_overrides = overrides.pop("space", {})
    fixed.update(overrides)
    space_values = {"batch_size": "16", **space_overrides}
    fixed["space"] = {name: space.parse_param(name, text) for name, text in space_values.items()}
    return build_config(None, fixed)


def test_diverging_trial_ends_with_a_failure_and_the_sweep_goes_on():
    # lr=10 with momentum blows a randomly initialised ResNet up within a few steps.
    config = tiny_config(space={"lr": "10", "weight_decay": "0", "frozen_stages": "0"},
                         max_train=64, epochs=4, n_trials=2)
    study = optuna.create_study(pruner=create_pruner(config))
    run_trials(study, config, torch.device("cpu"))
    assert len(study.trials) == 2
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.PRUNED
        assert trial.user_attrs["failure"] in ("nan_loss", "exploding_loss")
        assert 1 <= trial.user_attrs["pruned_at"] < 4
        assert len(trial.user_attrs.get("history", [])) == trial.user_attrs["pruned_at"] - 1


class InterruptedSampler(optuna.samplers.RandomSampler):
    """Ctrl-C right after Optuna has made the new trial RUNNING, before the objective runs."""

    def before_trial(self, study, trial):
        raise KeyboardInterrupt


def test_ctrl_c_before_the_objective_starts_leaves_no_trial_running():
    config = tiny_config(epochs=1, n_trials=2)
    study = optuna.create_study(sampler=InterruptedSampler(seed=0))
    with pytest.raises(KeyboardInterrupt):
        run_trials(study, config, torch.device("cpu"))
    assert [trial.state.name for trial in study.trials] == ["FAIL"]


def test_divergence_is_told_apart_from_a_large_but_finite_loss():
    from sweep.train import EXPLODED_LOSS, DivergedLoss

    assert DivergedLoss(2, float("nan")).failure == "nan_loss"
    assert DivergedLoss(2, float("inf")).failure == "nan_loss"
    assert DivergedLoss(2, EXPLODED_LOSS * 10).failure == "exploding_loss"


def test_every_epoch_is_reported_and_recorded():
    config = tiny_config(space={"lr": "1e-2", "scheduler": "none"}, epochs=3, n_trials=1)
    study = optuna.create_study()
    study.optimize(Objective(config, torch.device("cpu")), n_trials=1)
    trial = study.trials[0]
    history = trial.user_attrs["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert trial.intermediate_values == {row["epoch"]: row["val_loss"] for row in history}
    assert trial.value == min(row["val_loss"] for row in history)
    assert all(row["lr"] == pytest.approx(1e-2) for row in history)  # no scheduler: lr stays
    assert trial.user_attrs["worker"]["device"] == "cpu"


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_pruned_trial_keeps_its_history_and_pruned_at():
    config = tiny_config(epochs=3, n_trials=1, space={"scheduler": "none"})
    study = optuna.create_study(pruner=AlwaysPrune())
    study.optimize(Objective(config, torch.device("cpu")), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["pruned_at"] == 1
    assert len(trial.user_attrs["history"]) == 1


@pytest.mark.parametrize("name, kind", [
    ("median", InitAwareMedianPruner), ("quartile", InitAwareMedianPruner),
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


def pretrained_run_decisions(study: optuna.Study, val_losses: list[float]) -> list[bool]:
    """should_prune() after each epoch of a new trial from pretrained weights that reports ``val_losses``."""
    trial = study.ask()
    trial.set_user_attr(INIT_ATTR, "pretrained")
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
        decisions = pretrained_run_decisions(study, [1.8] * 8)
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
    trial = study.ask()
    if init is not None:
        trial.set_user_attr(INIT_ATTR, init)
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
    # A held-out sweep's best run began so (BENCHMARKS.md, session 5: 0.87, 1.11, 1.06, here doubled to
    # stay above the others' 1.0): a 27 % rise at epoch 2, then flat; the rise holds the cut for
    # patience = 2 epochs (2 and 3), and at epoch 4, without a large move since, it is cut.
    decisions = pretrained_run_decisions(study, [1.74, 2.22, 2.12, 2.10])
    assert decisions == [False, False, False, True]


@pytest.mark.parametrize("pruner", ["median", "quartile"])
@pytest.mark.parametrize("scheduler, cut_at", [("step", 9), ("cosine", 3), ("plateau", 3), ("none", 3)])
def test_a_step_schedule_run_is_not_cut_before_its_first_lr_drop(pruner, scheduler, cut_at):
    study = median_study_after_startup(epochs=24, pruner=pruner)
    trial = study.ask()
    trial.suggest_categorical("scheduler", [scheduler])  # as the objective suggests every param, fixed or not
    trial.set_user_attr(INIT_ATTR, "pretrained")
    for epoch in range(1, 25):
        trial.report(5.0, epoch)
        if trial.should_prune():
            break
    # step: LR x0.1 after epoch 8 (a third of 24), so epoch 9 is the first the run trains at the lower
    # LR; every other schedule is judged once the plateau rule can (patience + 1 = 3)
    assert epoch == cut_at


def test_the_pruners_first_lr_drop_is_the_step_schedulers():
    from sweep.train import create_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = create_scheduler(optimizer, "step", epochs=24)
    lrs = []
    for _ in range(24):  # the lr each epoch trains at, stepped after it as the epoch loop does
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    first_lowered = next(epoch for epoch, lr in enumerate(lrs, start=1) if lr < 0.1)

    def step_run_after(epochs_trained: int) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(
            params={"scheduler": "step"},
            distributions={"scheduler": optuna.distributions.CategoricalDistribution(space.SCHEDULERS)},
            intermediate_values={epoch: 1.0 for epoch in range(1, epochs_trained + 1)},
            state=optuna.trial.TrialState.RUNNING,
        )

    assert first_lowered == 9
    assert before_first_lr_drop(step_run_after(first_lowered - 1), epochs=24)
    assert not before_first_lr_drop(step_run_after(first_lowered), epochs=24)


def test_trial_records_whether_it_started_from_pretrained_weights(tmp_path):
    import timm

    path = tmp_path / "backbone.pth"
    torch.save(timm.create_model("resnet18", num_classes=0).state_dict(), path)
    inits = {}
    for weights in ("none", str(path)):
        config = tiny_config(weights=weights, epochs=1, n_trials=1)
        study = optuna.create_study()
        study.optimize(Objective(config, torch.device("cpu")), n_trials=1)
        inits[weights] = study.trials[0].user_attrs[INIT_ATTR]
    assert inits == {"none": "random", str(path): "pretrained"}


def test_first_trial_of_a_process_trains_as_it_would_later(tmp_path):
    # The first trial fills the per-process caches (weights file, data); loading them must not draw
    # from the trial's seeded generators, or the same trial gives another curve in another order.
    import timm

    from models.weights import pretrained_backbone_state

    path = tmp_path / "backbone.pth"
    torch.save(timm.create_model("resnet18", num_classes=0).state_dict(), path)
    config = tiny_config(weights=str(path), epochs=2, n_trials=1, space={"lr": "1e-2", "frozen_stages": "0"})
    pretrained_backbone_state.cache_clear()
    curves = []
    for _ in range(2):  # cold caches, then warm ones
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))  # the same params twice
        study.optimize(Objective(config, torch.device("cpu")), n_trials=1)
        curves.append([row["val_loss"] for row in study.trials[0].user_attrs["history"]])
    assert curves[0] == curves[1]


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


def test_the_same_trial_trains_the_same_twice():
    # Augmentation draws from Python's random: unseeded, two runs of one trial would differ.
    config = tiny_config(epochs=2, n_trials=1, space={"lr": "1e-2", "scheduler": "none", "frozen_stages": "0"})
    curves = []
    for _ in range(2):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        study.optimize(Objective(config, torch.device("cpu")), n_trials=1)
        curves.append([(row["train_loss"], row["val_loss"]) for row in study.trials[0].user_attrs["history"]])
    assert curves[0] == curves[1]
