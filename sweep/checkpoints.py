"""A trial's checkpoints in the study's artifact store: its whole training state after each epoch, so that a retry of
a trial cut short resumes where it stopped, and its best epoch's weights (safetensors) once it has ended."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from time import monotonic

import optuna
import torch
from safetensors.torch import save_file as save_safetensors

from sweep import training_state
from sweep.analysis.curves import classify_curve
from sweep.artifacts import (Kept, digest_of, error_line, open_study_store, ranks_within, remove_quietly, state_ids,
                             verify_digest)
from sweep.config import SweepConfig
from sweep.optuna_internals import study_storage
from sweep.record import TrialWriter, checkpoint_of
from sweep.storage import mask_secrets
from sweep.training_state import BackgroundWrite, changing_state, cpu_copy, on_cpu

log = logging.getLogger("sweep")

WEIGHTS_FILE = "model.safetensors"


class _StoreWriteFailed(Exception):
    """A state could not be written: checkpoints end for this trial, which trains on."""

    def __init__(self, error: BaseException, target: str):
        super().__init__(error, target)
        self.error = error
        self.target = target


def checkpoints_for(config: SweepConfig, trial: optuna.Trial, record: TrialWriter,
                    retries: int | None = None) -> "TrialCheckpoints":
    """The trial's checkpoints in the study's store; off (doing nothing) with --no-checkpoints or without a store
    (the trial trains on). ``retries``: the trial this one retries, if any."""
    opened = open_study_store(config, study_storage(trial.study))
    if opened is None:
        return TrialCheckpoints(None, trial, record, config)
    return TrialCheckpoints(opened.store, trial, record, config, opened.location, retries)


class TrialCheckpoints:
    """One trial's checkpoints. ``store`` None: checkpoints are off, and every method does nothing.

    A reference to a checkpoint (the trial's ``checkpoint`` user attr) is written only after the store has all of
    it, so a write cut short is never read back; it records the digest of the bytes written, and a state whose bytes
    differ from it (changed in the store since) is not resumed. A write that fails (full disk, bucket away) is
    logged once and ends checkpoints for this trial only: the trial trains on.

    A state is written after the first epoch that ends ``checkpoint_every`` seconds or more after the trial started
    or its last state was written: on a GPU, where an epoch takes minutes, after every epoch; on a CPU with epochs of
    seconds, writing 283 MB after each would take the cores that training needs. The best weights are written when
    the trial ends, unless ``keep_best`` finished trials already rank before it (they would be removed at once).
    """

    def __init__(self, store, trial: optuna.Trial, record: TrialWriter, config: SweepConfig, location: str = "",
                 retries: int | None = None):
        self.store = store
        self.config = config
        self._last_state = monotonic()
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
        self._writer = BackgroundWrite()

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
            training_state.load_model(state, built)
        except Exception as error:
            log.warning("trial %d: cannot resume from the checkpoint of trial %s at epoch %s (%s); training from "
                        "epoch 1", self.trial.number, ref.get("trial"), ref.get("epoch"), error_line(error))
            return 0
        training_state.load_training(state, built, scaler)
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
        now = monotonic()
        if not self.enabled or now - self._last_state < self.config.checkpoint_every:
            return
        self._last_state = now
        target = self.ids[1] if self.ref and self.ref["artifact_id"] == self.ids[0] else self.ids[0]
        best = self.best or {"epoch": epoch, "val_loss": float("inf"), "model": None}
        state = training_state.capture(epoch, built, scaler, self.record.history, {
            # the best weights ride along only when they are not this epoch's own
            "epoch": best["epoch"], "val_loss": best["val_loss"],
            "model": None if best["epoch"] == epoch else best["model"]})
        # training changes the tensors in place from here on; the best weights are a copy already
        state = {**training_state.copied({key: value for key, value in state.items() if key != "best"}),
                 "best": state["best"]}
        self._writer.start(lambda: self._write(target, state, epoch), name=f"checkpoint-trial-{self.trial.number}")

    def _write(self, target: str, state: dict, epoch: int) -> None:
        try:
            payload = training_state.serialise(state)
            size = payload.tell()
            with payload.getbuffer() as written:  # hashed on this thread, beside training, as the write is
                digest = digest_of(written)
            payload.seek(0)
            self.store.write(target, payload)
        except Exception as error:
            raise _StoreWriteFailed(error, target) from error
        # what it raises (a trial taken over) reaches the training thread in wait()
        ref = self.record.checkpoint(target, epoch, size, self.trial.number, digest)
        previous, self.ref = self.ref, ref
        if previous is not None:
            self._drop_states(keep=target)

    def wait(self) -> None:
        """Until the state being written is in the store and recorded; a failed write turns checkpoints off here,
        a failed record is raised here."""
        error = self._writer.join()
        if isinstance(error, _StoreWriteFailed):
            self._give_up(error.error, error.target)
        elif error is not None:
            raise error

    def close(self) -> None:
        """A trial cut short: its last state is recorded before Optuna marks it failed, so the retry finds it."""
        self._writer.join()

    def ended(self, state: str) -> None:
        """The trial ended, ``state`` "COMPLETE" or "PRUNED": its best weights go to the store where they may be kept,
        its states are removed."""
        if not self.enabled:
            return
        self.wait()
        if self.enabled and self.best is not None and self._may_be_kept(state):
            self._upload_weights()
        if self.store is not None and self.ref is not None:
            self._drop_states(keep=None)

    def _may_be_kept(self, state: str) -> bool:
        config = self.config
        verdict = classify_curve(self.record.history, patience=config.patience, min_delta=config.min_delta).verdict
        candidate = Kept(self.trial.number, state, verdict, float(self.best["val_loss"]), {})
        try:
            trials = self.trial.study.get_trials(deepcopy=False)
        except Exception as error:  # the ranking unread: the weights are written, and KeepBest decides later
            log.debug("trial %d: cannot rank its weights: %s", self.trial.number, error_line(error))
            return True
        if ranks_within(trials, candidate, config.keep_best, patience=config.patience, min_delta=config.min_delta):
            return True
        log.info("trial %d: its best weights are not written: the best %d finished trials rank before it "
                 "(--keep-best)", self.trial.number, config.keep_best)
        return False

    def _read(self, ref: dict) -> dict:
        with self.store.open_reader(ref["artifact_id"]) as reader:
            data = reader.read()
        if len(data) != ref["bytes"]:
            raise ValueError(f"{len(data)} bytes where {ref['bytes']} were written")
        verify_digest(ref, data, f"state {ref['artifact_id']}")  # torch.load reads a changed tensor without a word
        return training_state.deserialise(data)

    def _upload_weights(self) -> None:
        best = self.best
        # the frozen stages are the same at every epoch: the model at its end has them, written without a copy;
        # the file is serialised straight to disk and hashed from there (page cache, a few ms)
        frozen = {name: tensor for name, tensor in self.model.state_dict().items() if name not in best["model"]}
        weights = {**on_cpu(frozen), **best["model"]}
        with tempfile.TemporaryDirectory(prefix="sweep-weights-") as folder:
            path = Path(folder) / WEIGHTS_FILE
            try:
                save_safetensors(weights, path, metadata={"epoch": str(best["epoch"]),
                                                          "trial": str(self.trial.number)})
                with path.open("rb") as written:
                    digest, size = digest_of(written), written.tell()
                artifact_id = optuna.artifacts.upload_artifact(
                    artifact_store=self.store, file_path=str(path), study_or_trial=self.trial)
            except optuna.exceptions.UpdateFinishedTrialError:
                raise  # another worker finished this trial: the worker's loop must hear of it
            except Exception as error:
                self._give_up(error, None)
                return
        self.record.weights(artifact_id, best["epoch"], best["val_loss"], size, digest)

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
            log.debug("could not remove %s: %s", artifact_id, error_line(error))

    def _give_up(self, error: BaseException, partial: str | None) -> None:
        log.warning("trial %d: checkpoints off for this trial, it trains on without them: cannot write to %s: %s",
                    self.trial.number, mask_secrets(self.location) or "the artifact store", error_line(error))
        if partial is not None:
            self._remove(partial)
        self.store = None
