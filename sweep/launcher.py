"""Local ``sweep worker`` processes on one study: ``sweep start --workers N`` and ``sweep workers`` (one per GPU of
the host, each seeing only its own through CUDA_VISIBLE_DEVICES), restarted when they die, stopped together."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sweep import study as study_module
from sweep.errors import SweepFailed, UsageError
from sweep.storage import open_storage
from sweep.worker import Interrupted, stop_signals

if TYPE_CHECKING:
    import torch

log = logging.getLogger("sweep")

# How long children get to mark their running trials failed and queue them again after Ctrl-C/SIGTERM.
STOP_GRACE_SECONDS = 30
STOP_SIGNAL_NUMBERS = (int(signal.SIGINT), int(signal.SIGTERM), int(signal.SIGHUP))
USAGE_EXIT = 2  # a usage error would only come back: such a child is not restarted
# A child that dies this many times in a row (a broken GPU, the database gone for longer than
# SWEEP_STORAGE_RETRY_LIMIT) stays down; one that ran for HEALTHY_SECONDS before dying starts a new row.
MAX_RESTARTS = 3
HEALTHY_SECONDS = 600
FIRST_RESTART_DELAY = 5.0  # doubled after each restart in a row
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Child:
    """One worker process to keep running: what the log calls it, its command line and environment."""

    label: str
    command: list[str]
    env: dict[str, str]


def worker_command(study_name: str, index: int, device: str, quiet: bool) -> list[str]:
    # -P: the working directory stays off the import path, so a user's models.py or data/ never shadows ours
    command = [sys.executable, "-P", "-m", "sweep.cli", "worker", "--study", study_name, "--device", device,
               "--worker-index", str(index), "--until-done"]
    return [*command, "--quiet"] if quiet else command


def local_workers(study_name: str, n_workers: int, device: torch.device, quiet: bool) -> list[Child]:
    """``sweep start --workers N``: N workers, spread over the GPUs round robin when training on CUDA."""
    import torch

    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if gpus:
        return [Child(f"worker {index} (GPU {index % gpus})", worker_command(study_name, index, "cuda", quiet),
                      {**os.environ, "CUDA_VISIBLE_DEVICES": str(index % gpus)}) for index in range(n_workers)]
    return cpu_workers(study_name, n_workers, str(device), quiet)


def cpu_workers(study_name: str, n_workers: int, device: str, quiet: bool) -> list[Child]:
    # N processes each using every core would fight over them.
    threads = str(max(1, (os.cpu_count() or 1) // n_workers))
    return [Child(f"worker {index} ({device})", worker_command(study_name, index, device, quiet),
                  {"OMP_NUM_THREADS": threads, **os.environ}) for index in range(n_workers)]


def parse_gpus(text: str) -> list[str]:
    """``--gpus``: ``all`` (checked when the workers start) or distinct GPU indices or UUIDs, e.g. ``0,1,3``."""
    if text.strip() == "all":
        return ["all"]
    gpus = [part.strip() for part in text.split(",")]
    if not all(gpu.isdigit() or gpu.startswith(("GPU-", "MIG-")) for gpu in gpus) or len(set(gpus)) != len(gpus):
        raise ValueError(f"{text!r}: expected all, or distinct GPU indices or UUIDs separated by commas "
                         "(e.g. 0,1,3 or GPU-8f3c...)")
    return gpus


def visible_gpus(asked: list[str]) -> list[str]:
    """The CUDA_VISIBLE_DEVICES value of each worker: one GPU each, numbered as this process sees them."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    visible_list = [gpu.strip() for gpu in visible.split(",") if gpu.strip()] if visible is not None else None
    if asked == ["all"]:
        if visible_list is None:
            import torch

            visible_list = [str(index) for index in range(torch.cuda.device_count())]
        if not visible_list:
            raise ValueError("--gpus all: no GPU is visible here (torch sees none, or CUDA_VISIBLE_DEVICES is empty): "
                             "run CPU workers with --cpu N instead (docker compose: the cpu-workers service)")
        return visible_list
    if visible_list is None:
        return asked
    outside = [gpu for gpu in asked if gpu.isdigit() and int(gpu) >= len(visible_list)]
    if outside:
        raise ValueError(f"--gpus {','.join(asked)}: GPU {outside[0]} is not among the {len(visible_list)} that "
                         f"CUDA_VISIBLE_DEVICES={visible} leaves visible (numbered 0 to {len(visible_list) - 1})")
    return [visible_list[int(gpu)] if gpu.isdigit() else gpu for gpu in asked]


def gpu_workers(study_name: str, gpus: list[str], quiet: bool) -> list[Child]:
    import torch

    # Each child gets --device cuda, so a GPU it cannot use fails loudly instead of training on the CPU.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        log.warning("torch sees no CUDA GPU here: the %d workers (CUDA_VISIBLE_DEVICES %s) train on the CPU",
                    len(gpus), ", ".join(gpus))
    return [Child(f"worker {index} (GPU {gpu})", worker_command(study_name, index, device, quiet),
                  {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}) for index, gpu in enumerate(gpus)]


def run_host_workers(study_name: str, storage_url: str, *, gpus: list[str] | None, n_cpu: int | None,
                     quiet: bool) -> None:
    """``sweep workers``: one worker per GPU (or ``n_cpu`` CPU workers), each restarted when it dies, until the
    study's budget has finished. A stop signal stops them all cleanly and raises ``Interrupted``."""
    if gpus and n_cpu:
        raise UsageError(f"--cpu {n_cpu} runs CPU workers only: drop --gpus {','.join(gpus)}")
    if n_cpu:
        children = cpu_workers(study_name, n_cpu, "cpu", quiet)
    else:
        try:
            children = gpu_workers(study_name, visible_gpus(gpus or ["all"]), quiet)
        except ValueError as error:
            raise UsageError(str(error)) from None
    storage = open_storage(storage_url, heartbeat=False)
    try:
        study_module.load(storage, study_name)  # a missing study is one line here, not one per child
    finally:
        storage.engine.dispose()
    supervise(children, storage_url, restarts=MAX_RESTARTS)


def run_local_workers(study_name: str, storage_url: str, n_workers: int, device: torch.device, quiet: bool) -> None:
    """``sweep start --workers N``: start the workers and wait for them; a stop signal stops them cleanly and raises
    ``Interrupted``. Raises ``SweepFailed`` when a worker exits with an error."""
    supervise(local_workers(study_name, n_workers, device, quiet), storage_url, restarts=0)


class _Slot:
    """One child kept running: restarted after a delay when it dies, up to ``restarts`` times in a row."""

    def __init__(self, child: Child, storage_url: str, restarts: int):
        # The URL travels in the environment, not in argv, where `ps` would show its password.
        self.child = Child(child.label, child.command, {**child.env, "SWEEP_STORAGE": storage_url})
        self.restarts = restarts
        self.in_a_row = 0
        self.process: subprocess.Popen | None = None
        self.started = 0.0
        self.restart_at: float | None = None
        self.code: int | None = None  # set once the child is done for good

    def start(self) -> None:
        self.process = subprocess.Popen(self.child.command, env=self.child.env)
        self.started = time.monotonic()
        self.restart_at = None

    def check(self) -> None:
        if self.code is not None:
            return
        if self.restart_at is not None:
            if time.monotonic() >= self.restart_at:
                self.start()
                log.warning("%s started again (pid %d)", self.child.label, self.process.pid)
            return
        code = self.process.poll()
        if code is None:
            return
        if code == 0 or code - 128 in STOP_SIGNAL_NUMBERS or code == USAGE_EXIT or not self.restarts:
            self.code = code
            return
        if time.monotonic() - self.started >= HEALTHY_SECONDS:
            self.in_a_row = 0
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        if self.in_a_row >= self.restarts:
            log.error("%s (pid %d) %s, %d times in a row: not started again; the other workers go on",
                      self.child.label, self.process.pid, how, self.in_a_row + 1)
            self.code = code
            return
        self.in_a_row += 1
        delay = FIRST_RESTART_DELAY * 2 ** (self.in_a_row - 1)
        log.warning("%s (pid %d) %s: starting it again in %.0fs (restart %d of %d in a row; its trial is retried "
                    "after the heartbeat grace period)", self.child.label, self.process.pid, how, delay,
                    self.in_a_row, self.restarts)
        self.restart_at = time.monotonic() + delay


def supervise(children: list[Child], storage_url: str, restarts: int) -> None:
    """Run ``children`` until each is done; a child that dies with an error is started again up to ``restarts``
    times in a row. A stop signal stops them all (``_stop``) and raises ``Interrupted``; ``SweepFailed`` when one
    stayed down."""
    slots = [_Slot(child, storage_url, restarts) for child in children]
    with stop_signals():
        try:
            for slot in slots:
                slot.start()
            log.info("started %d workers: %s", len(slots),
                     ", ".join(f"{slot.child.label} pid {slot.process.pid}" for slot in slots))
            while any(slot.code is None for slot in slots):
                for slot in slots:
                    slot.check()
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            _stop([slot.process for slot in slots if slot.process is not None])
            raise
    codes = [slot.code for slot in slots]
    stopped = [code for code in codes if code - 128 in STOP_SIGNAL_NUMBERS]
    if stopped:
        # A terminal's Ctrl-C reaches the workers and this process alike, but Python may not raise it
        # here: a signal taken by another thread does not wake waitpid.
        raise Interrupted(stopped[0] - 128)
    failed = [code for code in codes if code != 0]
    if failed:
        raise SweepFailed(f"{len(failed)} of {len(slots)} workers exited with an error (exit codes {failed}; see their "
                          "log above); finished trials are kept: run the same command to resume")


def _stop(children: list[subprocess.Popen]) -> None:
    alive = [child for child in children if child.poll() is None]
    log.warning("stopping %d workers: their running trials are marked failed and queued again", len(alive))
    for child in alive:
        # A child that already got the terminal's Ctrl-C ignores this second signal while it cleans up.
        child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in alive:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker pid %d did not stop within %ds: killed (its trial is retried after the grace period)",
                        child.pid, STOP_GRACE_SECONDS)
            child.kill()
            child.wait()
