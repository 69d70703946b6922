"""The README's main job, timed as a user runs it: `sweep start --study resnet-plateau` in a fresh folder.

Runs the command ``--runs`` times (each in a new temporary folder, so a new study), then reads the study back
with `sweep analyze --format json` and prints per run: wall time, trials, pruned count, the baseline's
verdict and the analysis's top factor with its evidence. The median wall time is the figure.

Machines of one kind differ ~2.5x in speed, so the same run also times a reference workload (a plain
ResNet50 training step at 32 px, the one docs/configuration.md's default budget quotes: 53 img/s on the slow machine)
and scales the median to the slow machine: the bound must hold there.

    .venv/bin/python benchmarks/default_sweep.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

SLOW_MACHINE_IMG_PER_S = 53.0  # plain ResNet50 step at 32 px on the slowest machine of this kind seen
TARGET_MINUTES = 8.0


def reference_img_per_s(seconds: float = 20.0) -> float:
    """Images per second of a plain timm ResNet50 training step at 32 px, batch 32, on this machine now."""
    import timm
    import torch

    torch.manual_seed(0)
    model = timm.create_model("resnet50", num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, labels = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    model.train()

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):  # warm-up: allocator and kernels
        step()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        done += len(images)
    return done / (time.perf_counter() - started)


def sweep_command() -> str:
    return str(Path(sys.executable).with_name("sweep"))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(extra: list[str], keep: Path | None = None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="default-sweep-"))
    try:
        started, cpu_before = time.perf_counter(), _children_cpu()
        result = subprocess.run([sweep_command(), "start", "--study", "resnet-plateau", *extra], cwd=folder,
                                capture_output=True, text=True)
        wall, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
        if result.returncode != 0:
            raise SystemExit(f"sweep start failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
        analysis = json.loads(subprocess.run(
            [sweep_command(), "analyze", "--study", "resnet-plateau", "--format", "json"], cwd=folder,
            capture_output=True, text=True, check=True).stdout)
    finally:
        if keep is not None:  # the study, to look into its curves afterwards
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / "plateau-sweep.db", keep / f"{folder.name}.db")
        shutil.rmtree(folder, ignore_errors=True)
    trials = analysis["trials"]
    factors = analysis.get("factors") or []
    top = factors[0] if factors else None
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "trials": len(trials),
        "pruned": sum(trial["state"] == "PRUNED" for trial in trials),
        "baseline": (analysis.get("baseline") or {}).get("verdict"),
        "top_factor": top["param"] if top else None,
        "evidence": analysis.get("evidence"),
        "recommendation": analysis.get("recommendation") or {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="how many times to run the README's command")
    parser.add_argument("--reference-seconds", type=float, default=20.0, help="how long to time the reference step")
    parser.add_argument("--keep", type=Path, help="copy each run's study database into this folder")
    parser.add_argument("extra", nargs="*", help="flags added to `sweep start` (to try a change before it is a default)")
    args = parser.parse_args()
    if os.environ.get("SWEEP_STORAGE"):
        raise SystemExit("unset SWEEP_STORAGE: the README's command uses the embedded store in a fresh folder")

    print(f"machine: {machine()}; {os.cpu_count()} cores")
    before = reference_img_per_s(args.reference_seconds)
    print(f"reference (plain ResNet50 step, 32 px): {before:.0f} img/s")
    runs = []
    for number in range(1, args.runs + 1):
        run = one_run(args.extra, args.keep)
        runs.append(run)
        print(f"run {number}: {run['wall_s'] / 60:.1f} min ({run['cpu_s'] / 60:.1f} CPU min), {run['trials']} trials ({run['pruned']} pruned), "
              f"baseline {run['baseline']}, top factor {run['top_factor']}, evidence {run['evidence']}, "
              f"recommendation {run['recommendation']}", flush=True)
    after = reference_img_per_s(args.reference_seconds)
    reference = (before + after) / 2
    median_minutes = statistics.median(run["wall_s"] for run in runs) / 60
    on_slow = median_minutes * reference / SLOW_MACHINE_IMG_PER_S
    print(f"reference after: {after:.0f} img/s")
    print(f"median wall time: {median_minutes:.1f} min here; {on_slow:.1f} min scaled to the slow machine "
          f"({SLOW_MACHINE_IMG_PER_S:.0f} img/s); target {TARGET_MINUTES:.0f} min")


if __name__ == "__main__":
    main()
