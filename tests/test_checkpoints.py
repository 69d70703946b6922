"""Checkpoints in the study's artifact store: a retried trial resumes where the one it retries stopped, with the
same curve as a run that was never cut short; only the last state and the best weights of a trial are kept."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
import torch
from safetensors.torch import load_file

import sweep.checkpoints
from sweep import space
from sweep import study as study_module
from sweep.artifacts import state_ids
from sweep.record import CHECKPOINT, RESUMED_FROM, WEIGHTS
from sweep.config import build_config
from sweep.storage import open_storage
from sweep.worker import run_trials

EPOCHS = 4


def tiny_config(artifacts: Path | str, **overrides):
    fixed = {"model": "resnet18", "weights": "none", "data": "synthetic:64", "image_size": 32, "max_train": 32,
             "max_val": 16, "epochs": EPOCHS, "n_trials": 1, "artifacts": str(artifacts), "checkpoint_every": 0}
    # a single point that trains hard (no frozen stage, cosine schedule, dropout): a lost state would show
    space_values = {"batch_size": "16", "dropout": "0.2", "lr": "0.05", "frozen_stages": "0", "scheduler": "cosine",
                    "weight_decay": "0.0001", **overrides.pop("space", {})}
    fixed.update(overrides)
    fixed["space"] = {name: space.parse_param(name, text) for name, text in space_values.items()}
    return build_config(None, fixed)


class StopAt:
    """Progress sink that stops the sweep as Ctrl-C does, when the trial reports ``epoch``."""

    def __init__(self, epoch: int | None):
        self.epoch = epoch

    def trial_started(self, number, params):
        pass

    def epoch_done(self, number, record, epochs):
        if record.epoch == self.epoch:
            raise KeyboardInterrupt

    def __call__(self, study, trial):
        pass


def new_study(tmp_path: Path, name: str, config):
    storage = open_storage(f"sqlite:///{tmp_path / (name + '.db')}")
    study, _ = study_module.create_or_resume(storage, name, config)
    return study, storage


def val_losses(trial: optuna.trial.FrozenTrial) -> list[float]:
    return [row["val_loss"] for row in trial.user_attrs["history"]]


def reference_weights(folder: Path, trial: optuna.trial.FrozenTrial) -> dict:
    return load_file(folder / trial.user_attrs[WEIGHTS]["artifact_id"])


def stored_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.parametrize("frozen", ["0", "2"])
def test_a_retried_trial_resumes_after_the_last_checkpoint_with_the_uninterrupted_curve(tmp_path, frozen):
    point = {"frozen_stages": frozen}
    reference, storage = new_study(tmp_path, "reference", tiny_config(tmp_path / "ref-artifacts", space=point))
    run_trials(reference, tiny_config(tmp_path / "ref-artifacts", space=point), torch.device("cpu"), storage=storage)
    expected = reference.trials[0]

    config = tiny_config(tmp_path / "artifacts", space=point)
    study, storage = new_study(tmp_path, "cut", config)
    with pytest.raises(KeyboardInterrupt):  # during epoch 3's report: epoch 2 is the last complete checkpoint
        run_trials(study, config, torch.device("cpu"), storage=storage, progress=StopAt(3))
    cut = study.trials[0]  # failed and queued again, as by a stop signal
    assert cut.state.name == "FAIL" and cut.user_attrs[CHECKPOINT]["epoch"] == 2
    assert stored_files(tmp_path / "artifacts") == [state_ids("cut", 0)[1]]  # epoch 1's state went with epoch 2's
    # the state holds what training can change: no tensor of a frozen stage (the retry rebuilds those)
    state = torch.load(tmp_path / "artifacts" / state_ids("cut", 0)[1], weights_only=True)
    frozen_names = [name for name in state["model"] if name.startswith(("conv1.", "bn1.", "layer1.", "layer2."))]
    assert frozen_names == [] if frozen == "2" else len(frozen_names) > 0

    run_trials(study, config, torch.device("cpu"), storage=storage)
    assert [trial.state.name for trial in study.trials] == ["FAIL", "COMPLETE"]
    retry = study.trials[1]
    assert retry.system_attrs["failed_trial"] == 0
    assert retry.user_attrs[RESUMED_FROM] == {"trial": 0, "epoch": 2}
    history = retry.user_attrs["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[:2] == cut.user_attrs["history"][:2]  # copied, seconds and all: not trained again
    assert retry.intermediate_values == {row["epoch"]: row["val_loss"] for row in history}
    # the pruner and the analysis see one curve, the same as a run never cut short
    for got, want in zip(val_losses(retry), val_losses(expected)):
        assert got == pytest.approx(want, abs=1e-6)
    assert [row["lr"] for row in history] == [row["lr"] for row in expected.user_attrs["history"]]
    # when it ended its states went, and only its best weights stay
    weights = retry.user_attrs[WEIGHTS]
    assert stored_files(tmp_path / "artifacts") == [weights["artifact_id"]]
    assert weights["val_loss"] == min(val_losses(retry)) and 1 <= weights["epoch"] <= EPOCHS
    # the best weights are the whole model, frozen stages included: the reference's model at the same epoch
    stored = load_file(tmp_path / "artifacts" / weights["artifact_id"])
    assert stored.keys() == reference_weights(tmp_path / "ref-artifacts", expected).keys()
    if weights["epoch"] == expected.user_attrs[WEIGHTS]["epoch"]:
        for name, tensor in reference_weights(tmp_path / "ref-artifacts", expected).items():
            assert torch.allclose(stored[name], tensor, atol=1e-5), name


def test_a_retry_that_builds_other_initial_weights_trains_from_epoch_1_instead_of_resuming(tmp_path, monkeypatch, caplog):
    import dataclasses

    import sweep.objective

    config = tiny_config(tmp_path / "artifacts", space={"frozen_stages": "2"})
    study, storage = new_study(tmp_path, "moved", config)
    with pytest.raises(KeyboardInterrupt):
        run_trials(study, config, torch.device("cpu"), storage=storage, progress=StopAt(3))
    # the retry lands on a worker that built other weights (e.g. the hub was reachable there): the frozen stages
    # the checkpoint leaves out would differ, so it must not resume
    built_here = sweep.objective.build_trial
    monkeypatch.setattr(sweep.objective, "build_trial",
                        lambda *args, **kwargs: dataclasses.replace(built_here(*args, **kwargs), init="pretrained"))
    with caplog.at_level("WARNING", logger="sweep"):
        run_trials(study, config, torch.device("cpu"), storage=storage)
    retry = study.trials[1]
    assert retry.state.name == "COMPLETE" and RESUMED_FROM not in retry.user_attrs
    assert [row["epoch"] for row in retry.user_attrs["history"]] == [1, 2, 3, 4]
    assert "cannot resume from the checkpoint of trial 0 at epoch 2 (it started from random weights, this worker " \
           "built pretrained ones); training from epoch 1" in caplog.text


def test_a_half_written_state_is_never_read_back(tmp_path, caplog):
    config = tiny_config(tmp_path / "artifacts")
    study, storage = new_study(tmp_path, "torn", config)
    with pytest.raises(KeyboardInterrupt):
        run_trials(study, config, torch.device("cpu"), storage=storage, progress=StopAt(3))
    ref = study.trials[0].user_attrs[CHECKPOINT]
    state = tmp_path / "artifacts" / ref["artifact_id"]
    state.write_bytes(state.read_bytes()[: ref["bytes"] // 2])  # a store that kept only part of the write
    with caplog.at_level("WARNING", logger="sweep"):
        run_trials(study, config, torch.device("cpu"), storage=storage)
    retry = study.trials[1]
    assert retry.state.name == "COMPLETE" and RESUMED_FROM not in retry.user_attrs
    assert [row["epoch"] for row in retry.user_attrs["history"]] == [1, 2, 3, 4]
    assert (f"cannot resume from the checkpoint of trial 0 at epoch 2 ({ref['bytes'] // 2} bytes where {ref['bytes']} "
            "were written); training from epoch 1") in caplog.text


class EpochClock(StopAt):
    """A clock for the checkpoints that moves ``seconds`` per finished epoch (an epoch's report comes before its
    state is written); stops like StopAt."""

    def __init__(self, seconds: float, stop_at: int | None, monkeypatch):
        super().__init__(stop_at)
        self.now = 0.0
        self.seconds = seconds
        self.states: list[int] = []
        monkeypatch.setattr("sweep.checkpoints.monotonic", lambda: self.now)

    def epoch_done(self, number, record, epochs):
        self.now += self.seconds
        super().epoch_done(number, record, epochs)


def test_a_state_is_written_once_the_interval_has_passed_and_the_retry_resumes_from_the_last_one(tmp_path,
                                                                                                  monkeypatch):
    config = tiny_config(tmp_path / "artifacts", checkpoint_every=15, epochs=6)
    study, storage = new_study(tmp_path, "every", config)
    writes = []
    saving = sweep.checkpoints.TrialCheckpoints._write
    monkeypatch.setattr(sweep.checkpoints.TrialCheckpoints, "_write",
                        lambda self, target, state, epoch: (writes.append(epoch), saving(self, target, state, epoch)))
    clock = EpochClock(10.0, 6, monkeypatch)  # epochs end at 10, 20, ... s: 20 - 0 and 40 - 20 pass 15 s
    with pytest.raises(KeyboardInterrupt):
        run_trials(study, config, torch.device("cpu"), storage=storage, progress=clock)
    assert writes == [2, 4] and study.trials[0].user_attrs[CHECKPOINT]["epoch"] == 4

    monkeypatch.undo()
    run_trials(study, config, torch.device("cpu"), storage=storage)
    retry = study.trials[1]
    assert retry.state.name == "COMPLETE" and retry.user_attrs[RESUMED_FROM] == {"trial": 0, "epoch": 4}


def test_a_trial_shorter_than_the_interval_writes_no_state_but_keeps_its_best_weights(tmp_path, monkeypatch):
    config = tiny_config(tmp_path / "artifacts", checkpoint_every=3600)
    study, storage = new_study(tmp_path, "long-interval", config)
    with pytest.raises(KeyboardInterrupt):
        run_trials(study, config, torch.device("cpu"), storage=storage, progress=StopAt(3))
    assert CHECKPOINT not in study.trials[0].user_attrs
    run_trials(study, config, torch.device("cpu"), storage=storage)
    retry = study.trials[1]
    assert RESUMED_FROM not in retry.user_attrs and [row["epoch"] for row in retry.user_attrs["history"]] == [1, 2, 3, 4]
    assert stored_files(tmp_path / "artifacts") == [retry.user_attrs[WEIGHTS]["artifact_id"]]


def test_weights_are_written_from_the_tensors_themselves_except_shared_ones(tmp_path):
    from safetensors.torch import save_file

    from sweep.training_state import on_cpu

    head = torch.nn.Linear(4, 4)
    state = {"a.weight": head.weight, "b.weight": head.weight, "a.bias": head.bias, "view": torch.ones(4, 4).t()}
    tensors = on_cpu(state)
    # nothing copied but the second name for the same memory and the view that is not contiguous
    assert tensors["a.weight"].data_ptr() == head.weight.data_ptr() and tensors["a.bias"].data_ptr() == head.bias.data_ptr()
    assert tensors["b.weight"].data_ptr() != head.weight.data_ptr() and tensors["view"].is_contiguous()
    save_file(tensors, tmp_path / "w.safetensors")  # safetensors refuses tensors that share memory
    assert torch.equal(load_file(tmp_path / "w.safetensors")["b.weight"], head.weight.detach())
