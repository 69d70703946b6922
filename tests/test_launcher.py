"""`sweep workers`: one worker process per GPU, each seeing only its own through CUDA_VISIBLE_DEVICES, restarted when
it dies, all stopped cleanly on SIGTERM. GPUs are faked with CUDA_VISIBLE_DEVICES on this CPU machine: what is checked
is what each child process sees, read from its /proc environment and from the trials it records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sweep import launcher
from sweep.cli import main
from sweep.errors import SweepFailed
from test_workers import by_state, create_study, sweep_env, trials, wait_for


@pytest.mark.parametrize("text, gpus", [("all", ["all"]), ("0,1,3", ["0", "1", "3"]), (" 2 ", ["2"]),
                                        ("GPU-8f3c,MIG-1a", ["GPU-8f3c", "MIG-1a"])])
def test_gpus_accepted(text, gpus):
    assert launcher.parse_gpus(text) == gpus


@pytest.mark.parametrize("text", ["0,,1", "0,0", "-1", "cuda:0", "", "all,1"])
def test_gpus_refused_in_one_line_naming_the_value(text):
    result = CliRunner().invoke(main, ["workers", "--study", "s", "--gpus", text])
    assert result.exit_code == 2
    assert f"{text!r}: expected all, or distinct GPU indices or UUIDs" in result.output


@pytest.mark.parametrize("visible, asked, expected", [
    (None, ["0", "2"], ["0", "2"]),
    ("3,5,6", ["all"], ["3", "5", "6"]),
    ("3,5,6", ["0", "2"], ["3", "6"]),  # numbered as this process sees them, as torch numbers them
    ("GPU-a,GPU-b", ["1"], ["GPU-b"]),
    ("3,5", ["GPU-x"], ["GPU-x"]),
])
def test_each_worker_gets_one_gpu_as_this_process_numbers_them(monkeypatch, visible, asked, expected):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert launcher.visible_gpus(asked) == expected


def test_a_gpu_outside_the_visible_ones_is_refused(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    with pytest.raises(ValueError, match=r"GPU 2 is not among the 2 that CUDA_VISIBLE_DEVICES=3,5 leaves visible"):
        launcher.visible_gpus(["0", "2"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU")
@pytest.mark.parametrize("visible", [None, ""])
def test_all_gpus_on_a_host_without_any_says_to_run_cpu_workers(monkeypatch, visible):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    result = CliRunner().invoke(main, ["workers", "--study", "s"])
    assert result.exit_code == 2
    assert "--gpus all: no GPU is visible here" in result.output and "--cpu N" in result.output


def test_gpus_and_cpu_together_are_refused():
    result = CliRunner().invoke(main, ["workers", "--study", "s", "--gpus", "0,1", "--cpu", "2"])
    assert result.exit_code == 2 and "--cpu 2 runs CPU workers only: drop --gpus 0,1" in result.output


def test_gpu_workers_each_see_one_gpu_and_cpu_workers_share_the_cores():
    gpu = launcher.gpu_workers("s", ["3", "5"], quiet=True)
    assert [child.env["CUDA_VISIBLE_DEVICES"] for child in gpu] == ["3", "5"]
    assert [child.command[child.command.index("--worker-index") + 1] for child in gpu] == ["0", "1"]
    assert all("--until-done" in child.command and "--quiet" in child.command for child in gpu)
    cpu = launcher.cpu_workers("s", 2, "cpu", quiet=False)
    assert [child.command[child.command.index("--device") + 1] for child in cpu] == ["cpu", "cpu"]
    if "OMP_NUM_THREADS" not in os.environ:
        assert cpu[0].env["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))


def _fake_child(tmp_path: Path, label: str, exit_codes: list[int]) -> launcher.Child:
    """A child that exits with the next of ``exit_codes`` each time it is started (the last one repeats)."""
    counter = tmp_path / f"{label}.starts"
    script = (f"import pathlib, sys; p = pathlib.Path({str(counter)!r}); n = len(p.read_text()) if p.exists() else 0; "
              f"p.write_text('x' * (n + 1)); codes = {exit_codes!r}; sys.exit(codes[min(n, len(codes) - 1)])")
    return launcher.Child(label, [sys.executable, "-c", script], dict(os.environ))


def _starts(tmp_path: Path, label: str) -> int:
    return len((tmp_path / f"{label}.starts").read_text())


@pytest.fixture
def quick_restarts(monkeypatch):
    monkeypatch.setattr(launcher, "FIRST_RESTART_DELAY", 0.05)
    monkeypatch.setattr(launcher, "POLL_SECONDS", 0.02)


def test_a_child_that_dies_is_started_again_and_the_rest_go_on(tmp_path, quick_restarts, caplog):
    children = [_fake_child(tmp_path, "flaky", [1, 3, 0]), _fake_child(tmp_path, "steady", [0])]
    with caplog.at_level("WARNING", logger="sweep"):
        launcher.supervise(children, "sqlite:///unused.db", restarts=3)
    assert _starts(tmp_path, "flaky") == 3 and _starts(tmp_path, "steady") == 1
    assert "flaky (pid" in caplog.text and "exited with 1: starting it again in 0s (restart 1 of 3 in a row" in caplog.text


def test_restarts_are_bounded_and_a_usage_error_is_not_restarted(tmp_path, quick_restarts, caplog):
    children = [_fake_child(tmp_path, "broken", [1]), _fake_child(tmp_path, "usage", [2])]
    with caplog.at_level("WARNING", logger="sweep"), pytest.raises(SweepFailed, match=r"2 of 2 workers exited"):
        launcher.supervise(children, "sqlite:///unused.db", restarts=3)
    assert _starts(tmp_path, "broken") == 1 + 3 and _starts(tmp_path, "usage") == 1
    assert "broken (pid" in caplog.text and "exited with 1, 4 times in a row: not started again" in caplog.text


def test_a_child_killed_by_a_signal_is_restarted(tmp_path, quick_restarts, caplog):
    counter = tmp_path / "killed.starts"
    script = (f"import os, pathlib, signal; p = pathlib.Path({str(counter)!r}); n = len(p.read_text()) if p.exists() "
              "else 0; p.write_text('x' * (n + 1)); n or os.kill(os.getpid(), signal.SIGKILL)")
    with caplog.at_level("WARNING", logger="sweep"):
        launcher.supervise([launcher.Child("killed", [sys.executable, "-c", script], dict(os.environ))],
                           "sqlite:///unused.db", restarts=3)
    assert len(counter.read_text()) == 2 and "was killed by SIGKILL: starting it again" in caplog.text


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _visible_devices(pid: int) -> str | None:
    """CUDA_VISIBLE_DEVICES as the process ``pid`` was started with: what CUDA in it sees."""
    for entry in (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0"):
        if entry.startswith(b"CUDA_VISIBLE_DEVICES="):
            return entry.split(b"=", 1)[1].decode()
    return None


@pytest.mark.slow
def test_one_worker_per_gpu_a_killed_one_restarted_and_sigterm_stops_them_all(pg_url, tmp_path):
    create_study(pg_url, "gpus", "--n-trials", "30", "--epochs", "40")
    log = open(tmp_path / "workers.log", "w+")
    fake_gpus = ["3", "5", "6"]
    workers = subprocess.Popen([sys.executable, "-m", "sweep.cli", "workers", "--study", "gpus"],
                               env=sweep_env(pg_url, CUDA_VISIBLE_DEVICES=",".join(fake_gpus)), stderr=log, stdout=log)
    try:
        children = wait_for(lambda: len(_children(workers.pid)) == 3 and _children(workers.pid), 60, "3 workers")
        gpu_of = {pid: _visible_devices(pid) for pid in children}
        assert sorted(gpu_of.values()) == fake_gpus

        def running_by_gpu():
            running = by_state(trials(pg_url, "gpus"), "RUNNING")
            pids = [trial.user_attrs.get("worker", {}).get("pid") for trial in running]
            return len(running) == 3 and all(pid in gpu_of for pid in pids) and {gpu_of[pid]: trial for pid, trial
                                                                                in zip(pids, running)}
        running = wait_for(running_by_gpu, 240, "a trial running on each worker")
        assert sorted(running) == fake_gpus  # each trial recorded by a worker that sees a different single GPU

        victim = next(pid for pid, gpu in gpu_of.items() if gpu == "5")
        os.kill(victim, signal.SIGKILL)
        restarted = wait_for(lambda: [pid for pid in _children(workers.pid) if pid not in gpu_of], 60, "a restart")
        assert [_visible_devices(pid) for pid in restarted] == ["5"]
        lost = running["5"].number  # failed by the other workers' stale-trial watchers after the grace period
        wait_for(lambda: [t for t in trials(pg_url, "gpus") if t.number == lost and t.state.name == "FAIL"], 60,
                 "the killed worker's trial failed")
        gpu_of[restarted[0]] = "5"
        assert sorted(wait_for(running_by_gpu, 240, "a trial running on the restarted worker")) == fake_gpus
    finally:
        workers.send_signal(signal.SIGTERM)
        workers.wait(timeout=120)
    log.seek(0)
    output = log.read()
    assert workers.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert f"worker 1 (GPU 5) (pid {victim}) was killed by SIGKILL: starting it again in 5s" in output
    assert "worker 1 (GPU 5) started again" in output and "stopping 3 workers" in output
    assert "Traceback" not in output
    done = trials(pg_url, "gpus")
    assert by_state(done, "RUNNING") == []
    assert len([line for line in output.splitlines() if line.startswith("interrupted by SIGTERM")]) == 1 + 3
