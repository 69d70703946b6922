"""What `sweep doctor` costs on this machine and what it finds on the seeded setups.

    .venv/bin/python benchmarks/doctor_cost.py --out /tmp/doctor_bench.md
    .venv/bin/python benchmarks/doctor_cost.py --model resnet18 --skip-setups

First `sweep doctor --quick` and the full doctor (its LR range test included) on the sweep's own setup at 32 px,
each through the real command with its progress lines timed as they arrive, so the table shows where the time
goes (targets: quick under 1 minute, full under 3 minutes on 2 CPU cores). Then the full doctor on every setup of
tests/doctor_setups.py: a seeded bug counts as found when its check gives the expected verdict with the expected
words; any other non-ok verdict is a false alarm (but for checks that only point back to a failed train_epoch, and
a second check that names the same cause, ALSO_FOUND_BY), as is any non-ok verdict on a correct setup.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SETUPS_DIR = ROOT / "tests"
SWEEP = Path(sys.executable).with_name("sweep")
# A check that needed the user's loop after it failed points back to the first finding: not an alarm of its own.
FOLLOW_ON = "could not run: train_epoch raised (see "


def timed_doctor(args: list[str], cwd: Path) -> tuple[float, dict[str, float], dict]:
    """(wall seconds, seconds per check, report) of one `sweep doctor --format json` run."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout:  # a file, not a pipe: the report may outgrow a pipe's buffer
        process = subprocess.Popen([str(SWEEP), "doctor", *args, "--format", "json"], cwd=cwd, text=True,
                                   stdout=stdout, stderr=subprocess.PIPE)
        per_check: dict[str, float] = {}
        current, since = "start (imports, data, model)", started
        for line in process.stderr:  # "checking NAME" opens each check; the report follows the last
            if line.startswith("checking "):
                now = time.perf_counter()
                per_check[current] = now - since
                current, since = line.split()[1], now
        process.wait()
        per_check[current] = time.perf_counter() - since
        stdout.seek(0)
        report = json.load(stdout)
    return time.perf_counter() - started, per_check, report


def cost_table(args) -> list[str]:
    own = ["--model", args.model, "--weights", "none", "--data", args.data, "--image-size", str(args.image_size),
           "--device", "cpu"]
    lines = ["| run | wall (s) | target (s) | verdict | where the time went (s) |", "|---|---|---|---|---|"]
    for label, extra, target in (("--quick", ["--quick"], 60), ("full", [], 180)):
        wall, per_check, report = timed_doctor([*own, *extra], ROOT)
        spent = ", ".join(f"{name} {seconds:.1f}" for name, seconds in per_check.items())
        lines.append(f"| `sweep doctor {' '.join(own)} {' '.join(extra)}` ({label}) | {wall:.1f} | {target} | "
                     f"{report['verdict']} ({report['n_problems']} problems, {report['n_warnings']} warnings) | "
                     f"{spent} |")
        print(lines[-1], flush=True)
    return lines


def detection_table(lr_steps: int) -> list[str]:
    sys.path.insert(0, str(SETUPS_DIR))
    from doctor_setups import ALSO_FOUND_BY, CORRECT_SETUPS, SEEDED_BUGS

    lines = ["| setup | expected | got | false alarms | wall (s) |", "|---|---|---|---|---|"]
    found = alarms = 0
    for name in [*SEEDED_BUGS, *CORRECT_SETUPS]:
        wall, _, report = timed_doctor(["--module", f"doctor_setups:{name}", "--lr-steps", str(lr_steps),
                                        "--device", "cpu"], SETUPS_DIR)
        verdicts = {check["name"]: check for check in report["checks"]}
        check, verdict, words = SEEDED_BUGS.get(name, (None, "ok", ""))
        if check is not None:
            got = verdicts[check]
            hit = got["verdict"] == verdict and words in got["message"]
            found += hit
            expected, result = f"{check}: {verdict}", f"{got['verdict']}{'' if hit else ' (missed)'}"
        else:
            expected, result = "no finding", "ok" if report["verdict"] == "ok" else report["verdict"]
        false = [f"{c['name']}: {c['verdict']}" for c in report["checks"]
                 if c["name"] != check and c["verdict"] != "ok" and not c["message"].startswith(FOLLOW_ON)
                 and c["name"] not in ALSO_FOUND_BY.get(name, ())]
        alarms += bool(false)
        lines.append(f"| {name} | {expected} | {result} | {', '.join(false) or 'none'} | {wall:.1f} |")
        print(lines[-1], flush=True)
    lines.append(f"\nfound {found} of {len(SEEDED_BUGS)} seeded bugs; false alarms on {alarms} of "
                 f"{len(SEEDED_BUGS) + len(CORRECT_SETUPS)} setups (full doctor, --lr-steps {lr_steps})")
    return lines


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"load average at the start {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50", help="the sweep's default model")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--lr-steps", type=int, default=100, help="LR range test steps on the seeded setups")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-setups", action="store_true")
    parser.add_argument("--out", type=Path, help="write the Markdown here too")
    args = parser.parse_args()
    lines = [f"Machine: {machine()}", "", f"Command: `.venv/bin/python {' '.join(sys.argv)}`", ""]
    if not args.skip_cost:
        lines += cost_table(args) + [""]
    if not args.skip_setups:
        lines += detection_table(args.lr_steps)
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
