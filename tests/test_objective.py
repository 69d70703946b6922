"""One trial through the real objective: history per epoch, pruning, and failures that end a trial, not the sweep."""

import optuna
import pytest
import torch

from sweep import space
from sweep.config import SweepConfig, build_config
from sweep.objective import Objective
from sweep.pruning import create_pruner
from sweep.record import HOLD_UNTIL, INIT, N_CLASSES
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
    assert trial.user_attrs[N_CLASSES] == Objective(config, torch.device("cpu")).datasets().num_classes > 1  # chance


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


def test_trial_records_whether_it_started_from_pretrained_weights(tmp_path):
    import timm

    path = tmp_path / "backbone.pth"
    torch.save(timm.create_model("resnet18", num_classes=0).state_dict(), path)
    inits = {}
    for weights in ("none", str(path)):
        config = tiny_config(weights=weights, epochs=1, n_trials=1)
        study = optuna.create_study()
        study.optimize(Objective(config, torch.device("cpu")), n_trials=1)
        inits[weights] = study.trials[0].user_attrs[INIT], study.trials[0].user_attrs[HOLD_UNTIL]
    # epochs=1: every warm-up is cut to the run's one epoch
    assert inits == {"none": ("random", 1), str(path): ("pretrained", 1)}


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


def test_the_same_trial_trains_the_same_twice():
    # Augmentation draws from Python's random: unseeded, two runs of one trial would differ.
    config = tiny_config(epochs=2, n_trials=1, space={"lr": "1e-2", "scheduler": "none", "frozen_stages": "0"})
    curves = []
    for _ in range(2):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        study.optimize(Objective(config, torch.device("cpu")), n_trials=1)
        curves.append([(row["train_loss"], row["val_loss"]) for row in study.trials[0].user_attrs["history"]])
    assert curves[0] == curves[1]


def test_a_proposal_identical_to_an_earlier_trial_is_not_trained_again():
    # One point in the whole space: every trial after the first proposes it again.
    config = tiny_config(epochs=1, n_trials=3, space={"lr": "1e-2", "dropout": "0", "weight_decay": "0",
                                                       "scheduler": "none", "frozen_stages": "4"})
    study = optuna.create_study()
    run_trials(study, config, torch.device("cpu"))
    first, *again = study.trials
    assert first.state.name == "COMPLETE" and len(first.user_attrs["history"]) == 1
    assert [(t.state.name, t.user_attrs.get("duplicate_of"), t.user_attrs.get("history")) for t in again] == [
        ("PRUNED", 0, None), ("PRUNED", 0, None)]
    from sweep.analysis import records_from_study

    assert [record.number for record in records_from_study(study)[0]] == [0]  # the analysis counts the point once


def test_a_resumed_sweep_does_not_replay_its_first_proposals(tmp_path):
    from sweep.storage import open_storage
    from sweep.study import create_or_resume

    storage = f"sqlite:///{tmp_path / 's.db'}"
    config = tiny_config(epochs=1, n_trials=2, pruner="none")
    study, _ = create_or_resume(open_storage(storage), "resumed", config)
    run_trials(study, config, torch.device("cpu"))
    more = tiny_config(epochs=1, n_trials=4, pruner="none")
    study, _ = create_or_resume(open_storage(storage), "resumed", more)
    run_trials(study, more, torch.device("cpu"))
    proposals = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(proposals) == 4 and len(set(proposals)) == 4
