"""PostgreSQL stopped under running workers: finished trials survive, workers wait and go on, or leave with one line."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from test_workers import TINY, by_state, sweep_env, trials, wait_for

BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None) if Path("/usr/lib/postgresql").exists() else None


class PrivateServer:
    """A PostgreSQL cluster of its own on a free port, run as a non-root user (initdb refuses root)."""

    def __init__(self, root: Path):
        self.data = root / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            shutil.chown(root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.prefix, str(BIN / tool), *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data.parent / "server.log"), "-w",
                  "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data.parent}", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


class StderrLines:
    """A worker's stderr, read as it comes (a pipe left unread would also block the worker)."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def contains(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def text(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def server():
    if BIN is None or not (BIN / "initdb").exists():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="sweep-pg-"))
    server = PrivateServer(root)
    server.start()
    yield server
    try:
        server.stop()
    except subprocess.CalledProcessError:
        pass
    shutil.rmtree(root, ignore_errors=True)


def create(server, name: str, n_trials: int) -> None:
    result = subprocess.run([sys.executable, "-m", "sweep.cli", "start", "--study", name, *TINY, "--n-trials",
                             str(n_trials), "--pruner", "none", "--workers", "0"],
                            env=sweep_env(server.url), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_restart_mid_sweep_keeps_finished_trials_and_workers_go_on(server):
    create(server, "restart", 6)
    worker = subprocess.Popen([sys.executable, "-m", "sweep.cli", "worker", "--study", "restart", "--until-done"],
                              env=sweep_env(server.url, SWEEP_STORAGE_RETRY_LIMIT="120"),
                              stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    before = wait_for(lambda: (lambda done: done if len(done) >= 2 else None)(by_state(trials(server.url, "restart"), "COMPLETE")),
                      180, "two complete trials")
    lines = StderrLines(worker)
    server.stop()
    # Keep the database away until the worker has run into it, however its epochs fall.
    wait_for(lambda: lines.contains("unreachable"), 120, "the worker to notice the outage")
    server.start()
    # Only the reader thread may read stderr: communicate() would take lines from under it
    # (the worker writes next to nothing to stdout, so that pipe cannot fill while we wait).
    try:
        worker.wait(timeout=240)
    except subprocess.TimeoutExpired:
        worker.send_signal(signal.SIGUSR1)  # the worker prints every thread's stack: where it hangs
        time.sleep(3)
    finally:
        worker.kill()
        worker.wait()
    lines.thread.join(timeout=10)
    err = lines.text()
    assert worker.returncode == 0, f"worker did not finish after the restart:\n{err}"
    assert "reachable again" in err
    done = trials(server.url, "restart")
    for trial in before:
        assert done[trial.number].state.name == "COMPLETE" and done[trial.number].value == trial.value
    assert len(by_state(done, "COMPLETE")) == 6
    assert by_state(done, "RUNNING", "WAITING") == []


@pytest.mark.slow
def test_worker_leaves_with_one_line_when_the_database_stays_away(server):
    create(server, "gone", 50)
    worker = subprocess.Popen([sys.executable, "-m", "sweep.cli", "worker", "--study", "gone"],
                              env=sweep_env(server.url, SWEEP_STORAGE_RETRY_LIMIT="4"),
                              stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    wait_for(lambda: by_state(trials(server.url, "gone"), "COMPLETE"), 180, "a complete trial")
    server.stop()
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: storage postgresql+psycopg://postgres@127.0.0.1:") and "unreachable for" in last
    assert "Traceback" not in err
