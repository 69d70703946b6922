"""A trial's training state as bytes: what it holds (the model without its frozen stages, optimizer, scheduler,
scaler, loader order and every random generator), torch's serialisation of it, and the thread that writes it
beside training."""

from __future__ import annotations

import io
import random
import threading
from typing import Callable

import numpy as np
import torch
from torch.utils.serialization import config as serialization_config

import models


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


def on_cpu(state_dict: dict) -> dict:
    """The tensors on the CPU, copied only where they are elsewhere, not contiguous, or share memory with one
    before them (safetensors refuses shared tensors): for tensors that no longer change, such as frozen stages."""
    seen: set[int] = set()
    result = {}
    for name, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu").contiguous()
        if tensor.untyped_storage().data_ptr() in seen:
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        result[name] = tensor
    return result


def copied(value):
    """``value`` with every tensor in it copied, so that training may go on while it is written."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: copied(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(copied(item) for item in value)
    return value


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


def capture(epoch: int, built, scaler, history: list[dict], best: dict) -> dict:
    """The state after ``epoch`` of a built trial (``sweep.trial.BuiltTrial``), with its history and best epoch."""
    return {
        "epoch": epoch,
        "init": built.init,  # "pretrained" or "random": what the frozen stages left out of the state are
        "history": list(history),
        "model": changing_state(built.model),
        "optimizer": built.optimizer.state_dict(),
        "scheduler": built.scheduler.state_dict() if built.scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "loader": built.train_loader.generator.get_state(),
        "rng": rng_state(),
        "best": best,
    }


def load_model(state: dict, built) -> None:
    """A captured model back into a rebuilt trial; ValueError when it does not fit."""
    if state.get("init") != built.init:  # the frozen stages it left out would not be the same
        raise ValueError(f"it started from {state.get('init')} weights, this worker built {built.init} ones")
    load_changing_state(built.model, state["model"])


def load_training(state: dict, built, scaler) -> None:
    """The rest of a captured state back into a rebuilt trial whose model it fits."""
    built.optimizer.load_state_dict(state["optimizer"])
    if built.scheduler is not None:
        built.scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    built.train_loader.generator.set_state(state["loader"])
    set_rng_state(state["rng"])


def serialise(state: dict) -> io.BytesIO:
    """``torch.save`` without the zip CRC32 of every tensor (a quarter of the time of a save): a state that is cut
    short is never read back (its reference is written after it), and a read checks the length and digest that the
    reference recorded."""
    payload = io.BytesIO()
    before, serialization_config.save.compute_crc32 = serialization_config.save.compute_crc32, False
    try:
        torch.save(state, payload)
    finally:
        serialization_config.save.compute_crc32 = before
    return payload


def deserialise(data: bytes) -> dict:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


class BackgroundWrite:
    """One write at a time beside training: ``start`` runs it on a thread, ``join`` waits and returns what it
    raised (None when it succeeded or none runs)."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, write: Callable[[], None], name: str) -> None:
        self._thread = threading.Thread(target=self._run, args=(write,), daemon=True, name=name)
        self._thread.start()

    def _run(self, write: Callable[[], None]) -> None:
        try:
            write()
        except BaseException as error:  # e.g. another worker took the trial over: the training thread hears of it
            self._error = error

    def join(self) -> BaseException | None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        return error
