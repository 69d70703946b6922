"""A `sweep dashboard` process for the tests, on a free port of 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from types import SimpleNamespace


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def served_dashboard(storage: str, study_name: str, *flags: str):
    """`sweep dashboard` in its own process on a free port of 127.0.0.1; yields what it serves (``url``, ``port``)
    and, once it has stopped, holds what it printed (``output``)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sweep.cli", "dashboard", "--study", study_name, "--storage", storage,
         "--port", str(port), *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    served = SimpleNamespace(url=f"http://127.0.0.1:{port}", port=port, output="")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "dashboard did not start listening within 60 s"
                time.sleep(0.3)
        yield served
    finally:
        server.terminate()
        served.output, _ = server.communicate(timeout=30)
