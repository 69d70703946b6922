"""``sweep start --workers N``: N local ``sweep worker`` processes on one study, one GPU each when there are GPUs."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import torch

log = logging.getLogger("sweep")

# How long children get to mark their running trials failed and queue them again after Ctrl-C/SIGTERM.
STOP_GRACE_SECONDS = 30
STOP_SIGNAL_NUMBERS = (int(signal.SIGINT), int(signal.SIGTERM), int(signal.SIGHUP))


def worker_commands(study_name: str, n_workers: int, device: torch.device, quiet: bool) -> list[tuple[list[str], dict]]:
    """The command line and environment of each local worker."""
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    commands = []
    for index in range(n_workers):
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
            worker_device = "cuda"
        else:
            worker_device = str(device)
            # N processes each using every core would fight over them.
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n_workers)))
        # -P: the working directory stays off the import path, so a user's models.py or data/ never shadows ours
        command = [
            sys.executable, "-P", "-m", "sweep.cli", "worker", "--study", study_name,
            "--device", worker_device, "--worker-index", str(index), "--until-done",
        ]
        if quiet:
            command.append("--quiet")
        commands.append((command, env))
    return commands


def run_local_workers(study_name: str, storage_url: str, n_workers: int, device: torch.device, quiet: bool) -> None:
    """Start the workers and wait for them; a stop signal stops them cleanly and raises ``Interrupted``.

    Raises ``SweepFailed`` when a worker exits with an error.
    """
    from sweep.errors import SweepFailed
    from sweep.worker import Interrupted, stop_signals

    children: list[subprocess.Popen] = []
    with stop_signals():
        try:
            for command, env in worker_commands(study_name, n_workers, device, quiet):
                # The URL travels in the environment, not in argv, where `ps` would show its password.
                env["SWEEP_STORAGE"] = storage_url
                children.append(subprocess.Popen(command, env=env))
            log.info("started %d workers (pids %s)", n_workers, " ".join(str(child.pid) for child in children))
            codes = [child.wait() for child in children]
        except KeyboardInterrupt:
            _stop(children)
            raise
    stopped = [code for code in codes if code - 128 in STOP_SIGNAL_NUMBERS]
    if stopped:
        # A terminal's Ctrl-C reaches the workers and this process alike, but Python may not raise it
        # here: a signal taken by another thread does not wake waitpid.
        raise Interrupted(stopped[0] - 128)
    failed = [code for code in codes if code != 0]
    if failed:
        raise SweepFailed(f"{len(failed)} of {n_workers} workers exited with an error (exit codes {failed}; see their "
                          "log above); finished trials are kept: run the same command to resume")


def _stop(children: list[subprocess.Popen]) -> None:
    alive = [child for child in children if child.poll() is None]
    log.warning("stopping %d workers: their running trials are marked failed and queued again", len(alive))
    for child in alive:
        # A child that already got the terminal's Ctrl-C ignores this second signal while it cleans up.
        child.send_signal(signal.SIGTERM)
    for child in alive:
        try:
            child.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("worker pid %d did not stop within %ds: killed (its trial is retried after the grace period)",
                        child.pid, STOP_GRACE_SECONDS)
            child.kill()
            child.wait()
