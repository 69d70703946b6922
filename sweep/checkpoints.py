"""A trial's checkpoints in the study's artifact store: its whole training state after each epoch, so that a retry of
a trial cut short resumes where it stopped, and its best epoch's weights (safetensors) once it has ended."""

from __future__ import annotations

import io
import logging
import random
import tempfile
import threading
from pathlib import Path

import numpy as np
import optuna
import torch

import models
from sweep.artifacts import location_of, open_store, remove_quietly, state_ids
from sweep.config import SweepConfig
from sweep.record import TrialWriter, checkpoint_of
from sweep.storage import describe_error, mask_secrets

log = logging.getLogger("sweep")

WEIGHTS_FILE = "model.safetensors"
_stores: dict[str, object] = {}  # one store per location and process, like the data set


def checkpoints_for(config: SweepConfig, trial: optuna.Trial, record: TrialWriter,
                    retries: int | None = None) -> "TrialCheckpoints":
    """The trial's checkpoints in the study's store; off (doing nothing) with --no-checkpoints or when the store
    cannot be opened (said once per trial: the trial trains on). ``retries``: the trial this one retries, if any."""
    location = location_of(config, trial.study)
    if not config.checkpoints or location is None:
        return TrialCheckpoints(None, trial, record)
    try:
        if location not in _stores:
            _stores[location] = open_store(location)
        store = _stores[location]
    except Exception as error:
        log.warning("trial %d: checkpoints off for this trial, it trains on without them: cannot open %s: %s",
                    trial.number, mask_secrets(location), TrialCheckpoints._reason(error))
        store = None
    return TrialCheckpoints(store, trial, record, location, retries)


def rng_state() -> dict:
    """Every random generator a trial's training draws from: augmentation (Python, NumPy), dropout and init (torch)."""
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        # as plain values: torch.load(weights_only=True) reads tensors and built-in types only
        "numpy": (numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def set_rng_state(state: dict) -> None:
    version, keys, *rest = state["numpy"]
    random.setstate(_as_tuples(state["python"]))
    np.random.set_state((version, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        # a retry may run on a host that shows another number of GPUs: each GPU this one has gets its state
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def _as_tuples(value):
    # random.setstate wants the tuples back that a round trip through torch.save may have kept as lists
    return tuple(_as_tuples(item) for item in value) if isinstance(value, (list, tuple)) else value


def cpu_copy(state_dict: dict) -> dict:
    return {name: tensor.detach().to("cpu", copy=True).contiguous() for name, tensor in state_dict.items()}


def _copied(value):
    """``value`` with every tensor in it copied, so that training may go on while it is written."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(item) for item in value)
    return value


def _save_without_crc(state: dict, payload: io.BytesIO) -> None:
    """``torch.save`` without the zip CRC32 of every tensor (a quarter of the time of a save): a state that is cut
    short is never read back (its reference is written after it), and a read checks its length."""
    from torch.utils.serialization import config

    before, config.save.compute_crc32 = config.save.compute_crc32, False
    try:
        torch.save(state, payload)
    finally:
        config.save.compute_crc32 = before


def _frozen_prefixes(model: torch.nn.Module) -> tuple[str, ...]:
    frozen = {id(module) for module in models.frozen_modules(model)}
    return tuple(name + "." for name, module in model.named_modules() if id(module) in frozen)


def changing_state(model: torch.nn.Module) -> dict:
    """The model's state without its frozen stages: those tensors never change during a trial (no gradient, their
    BatchNorm in eval mode) and a rebuilt trial has them again, so the state that is copied and written each epoch
    holds only what training can change."""
    prefixes = _frozen_prefixes(model)
    return {name: tensor for name, tensor in model.state_dict().items() if not name.startswith(prefixes)}


def load_changing_state(model: torch.nn.Module, state: dict) -> None:
    """Put a ``changing_state`` back: every tensor it lacks must belong to a frozen stage of the rebuilt model."""
    result = model.load_state_dict(state, strict=False)
    prefixes = _frozen_prefixes(model)
    missing = [name for name in result.missing_keys if not name.startswith(prefixes)]
    if missing or result.unexpected_keys:
        raise ValueError(f"the checkpoint does not fit the rebuilt model (missing {missing[:3]}, unexpected "
                         f"{result.unexpected_keys[:3]})")


class TrialCheckpoints:
    """One trial's checkpoints. ``store`` None: checkpoints are off, and every method does nothing.

    A reference to a checkpoint (the trial's ``checkpoint`` user attr) is written only after the store has all of
    it, so a write cut short is never read back. A write that fails (full disk, bucket away) is logged once and
    ends checkpoints for this trial only: the trial trains on.
    """

    def __init__(self, store, trial: optuna.Trial, record: TrialWriter, location: str = "",
                 retries: int | None = None):
        self.store = store
        self.retries = retries
        self.trial = trial
        self.record = record
        self.location = location
        self.ids = state_ids(trial.study.study_name, trial.number)
        # a retry starts with the user attrs of the trial it retries: its checkpoint is where to resume
        self.ref: dict | None = checkpoint_of(trial) if store is not None else None
        self.best: dict | None = None  # {epoch, val_loss, model}: the best epoch's changing weights, on the CPU
        self.model: torch.nn.Module | None = None  # the trial's model, once it has trained an epoch or resumed
        # whose states this trial removes once it no longer needs them: its own and the one it inherited
        self.owners = {trial.number} | ({int(self.ref["trial"])} if self.ref else set())
        self._writer: threading.Thread | None = None
        self._write_failed: tuple[BaseException, str] | None = None
        self._record_failed: BaseException | None = None

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def resume(self, built, scaler) -> int:
        """Restore the inherited state into ``built`` (and ``scaler``), copy its history into this trial's record
        and report it again to the pruner; returns the epochs already done (0: start from the beginning)."""
        ref = self.ref
        if not self.enabled or not ref or self.retries is None:
            return 0
        try:
            state = self._read(ref)
            if state.get("init") != built.init:  # the frozen stages it left out would not be the same
                raise ValueError(f"it started from {state.get('init')} weights, this worker built {built.init} ones")
            load_changing_state(built.model, state["model"])
        except Exception as error:
            log.warning("trial %d: cannot resume from the checkpoint of trial %s at epoch %s (%s); training from "
                        "epoch 1", self.trial.number, ref.get("trial"), ref.get("epoch"), self._reason(error))
            return 0
        built.optimizer.load_state_dict(state["optimizer"])
        if built.scheduler is not None:
            built.scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        built.train_loader.generator.set_state(state["loader"])
        set_rng_state(state["rng"])
        self.model = built.model
        best = state["best"]
        self.best = {**best, "model": best["model"] if best["model"] is not None else cpu_copy(state["model"])}
        for row in state["history"]:
            self.record.epoch(row)
            self.trial.report(row["val_loss"], step=row["epoch"])
        self.record.resumed(ref["trial"], state["epoch"])
        log.info("trial %d resumes trial %d after epoch %d", self.trial.number, ref["trial"], state["epoch"])
        return int(state["epoch"])

    def epoch_done(self, epoch: int, val_loss: float, model: torch.nn.Module) -> None:
        """Keep the weights of the best epoch so far (in memory, without the frozen stages; they go to the store
        with each state)."""
        self.model = model
        if self.enabled and (self.best is None or val_loss < self.best["val_loss"]):
            self.best = {"epoch": epoch, "val_loss": val_loss, "model": cpu_copy(changing_state(model))}

    def save(self, epoch: int, built, scaler) -> None:
        """The training state after ``epoch`` into the slot the current checkpoint does not use, then the
        reference to it, then the previous state goes. The state's tensors are copied here; serialising and
        writing them runs beside the next epoch's training."""
        self.wait()
        if not self.enabled:
            return
        target = self.ids[1] if self.ref and self.ref["artifact_id"] == self.ids[0] else self.ids[0]
        state = self._state(epoch, built, scaler)
        # training changes the tensors in place from here on; the best weights are a copy already
        state = {**_copied({key: value for key, value in state.items() if key != "best"}), "best": state["best"]}
        self._writer = threading.Thread(target=self._write, args=(target, state, epoch), daemon=True,
                                        name=f"checkpoint-trial-{self.trial.number}")
        self._writer.start()

    def _write(self, target: str, state: dict, epoch: int) -> None:
        payload = io.BytesIO()
        _save_without_crc(state, payload)
        size = payload.tell()
        payload.seek(0)
        try:
            self.store.write(target, payload)
        except Exception as error:
            self._write_failed = (error, target)
            return
        ref = {"artifact_id": target, "epoch": epoch, "bytes": size, "trial": self.trial.number}
        try:
            self.record.checkpoint(ref)
        except BaseException as error:  # e.g. another worker took the trial over: the training thread raises it
            self._record_failed = error
            return
        previous, self.ref = self.ref, ref
        if previous is not None:
            self._drop_states(keep=target)

    def wait(self) -> None:
        """Until the state being written is in the store and recorded; a failed write turns checkpoints off here,
        a failed record is raised here."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        if self._write_failed is not None:
            error, target = self._write_failed
            self._write_failed = None
            self._give_up(error, target)
        if self._record_failed is not None:
            error, self._record_failed = self._record_failed, None
            raise error

    def close(self) -> None:
        """A trial cut short: its last state is recorded before Optuna marks it failed, so the retry finds it."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None

    def ended(self) -> None:
        """The trial ended (complete or pruned): its best weights go to the store, its states are removed."""
        if not self.enabled:
            return
        self.wait()
        if self.enabled and self.best is not None:
            self._upload_weights()
        if self.store is not None and self.ref is not None:
            self._drop_states(keep=None)

    def _state(self, epoch: int, built, scaler) -> dict:
        model_state = changing_state(built.model)
        best = self.best or {"epoch": epoch, "val_loss": float("inf"), "model": None}
        return {
            "epoch": epoch,
            "init": built.init,  # "pretrained" or "random": what the frozen stages left out of the state are
            "history": list(self.record.history),
            "model": model_state,
            "optimizer": built.optimizer.state_dict(),
            "scheduler": built.scheduler.state_dict() if built.scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "loader": built.train_loader.generator.get_state(),
            "rng": rng_state(),
            # the best weights ride along only when they are not this epoch's own
            "best": {"epoch": best["epoch"], "val_loss": best["val_loss"],
                     "model": None if best["epoch"] == epoch else best["model"]},
        }

    def _read(self, ref: dict) -> dict:
        with self.store.open_reader(ref["artifact_id"]) as reader:
            data = reader.read()
        if len(data) != ref["bytes"]:
            raise ValueError(f"{len(data)} bytes where {ref['bytes']} were written")
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)

    def _upload_weights(self) -> None:
        from safetensors.torch import save_file

        best = self.best
        # the frozen stages are the same at every epoch: the model at its end has them
        frozen = {name: tensor for name, tensor in self.model.state_dict().items() if name not in best["model"]}
        weights = {**cpu_copy(frozen), **best["model"]}
        with tempfile.TemporaryDirectory(prefix="sweep-weights-") as folder:
            path = Path(folder) / WEIGHTS_FILE
            try:
                save_file(weights, str(path), metadata={"epoch": str(best["epoch"]),
                                                                "trial": str(self.trial.number)})
                artifact_id = optuna.artifacts.upload_artifact(
                    artifact_store=self.store, file_path=str(path), study_or_trial=self.trial)
            except optuna.exceptions.UpdateFinishedTrialError:
                raise  # another worker finished this trial: the worker's loop must hear of it
            except Exception as error:
                self._give_up(error, None)
                return
            size = path.stat().st_size
        self.record.weights({"artifact_id": artifact_id, "epoch": best["epoch"],
                                           "val_loss": best["val_loss"], "bytes": size})

    def _drop_states(self, keep: str | None) -> None:
        """Remove the states of this trial and of the trial it took its checkpoint from, except ``keep``."""
        for owner in self.owners:
            for artifact_id in state_ids(self.trial.study.study_name, owner):
                if artifact_id != keep:
                    self._remove(artifact_id)

    def _remove(self, artifact_id: str) -> None:
        try:
            remove_quietly(self.store, artifact_id)
        except Exception as error:  # a leftover is removed when the sweep ends; never stop a trial for it
            log.debug("could not remove %s: %s", artifact_id, self._reason(error))

    def _give_up(self, error: BaseException, partial: str | None) -> None:
        log.warning("trial %d: checkpoints off for this trial, it trains on without them: cannot write to %s: %s",
                    self.trial.number, mask_secrets(self.location) or "the artifact store", self._reason(error))
        if partial is not None:
            self._remove(partial)
        self.store = None

    @staticmethod
    def _reason(error: BaseException) -> str:
        return describe_error(error)  # the database's own reason, not Optuna's "invalid data" wrapper
