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
        command = [
            sys.executable, "-m", "sweep.cli", "worker", "--study", study_name,
            "--device", worker_device, "--worker-index", str(index), "--until-done",
        ]
        if quiet:
            command.append("--quiet")
        commands.append((command, env))
    return commands


def run_local_workers(study_name: str, storage_url: str, n_workers: int, device: torch.device, quiet: bool) -> int:
    """Start the workers, wait for them; on Ctrl-C or SIGTERM stop them cleanly. Returns the worst exit code."""
    children: list[subprocess.Popen] = []
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
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
    finally:
        signal.signal(signal.SIGTERM, previous_term)
    failed = [code for code in codes if code != 0]
    if failed:
        log.warning("%d of %d workers exited with an error (exit codes %s)", len(failed), n_workers, failed)
    return max(codes, key=abs) if failed else 0


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop(children: list[subprocess.Popen]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
