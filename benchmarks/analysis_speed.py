"""How long the analysis of a large sweep takes: 2,000 synthetic trial records (target: under 10 s on 2 cores).

    .venv/bin/python benchmarks/analysis_speed.py [--trials 2000] [--repeat 3]

Prints the time of each step and of the whole (and the CPU time of the analysis, which a machine busy with
other work inflates less); not a test, so a slow machine fails nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sweep.analysis import analyze, render_html, render_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the synthetic sweeps are test fixtures
from synthetic_studies import synthetic_records  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    records, space = synthetic_records(args.trials, seed=0, epochs=args.epochs)
    print(f"{args.trials} synthetic trials, {args.epochs} epochs each")
    best = None
    for run in range(1, args.repeat + 1):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = analyze(records, space, study_name="benchmark")
        analysed, cpu = time.perf_counter(), time.process_time() - cpu_started
        json.dumps(result, allow_nan=False)
        render_text(result)
        reported = time.perf_counter()
        render_html(result, records, space)
        finished = time.perf_counter()
        total = finished - started
        best = total if best is None else min(best, total)
        print(
            f"run {run}: analyze {analysed - started:.2f} s (cpu {cpu:.2f} s), json+text {reported - analysed:.2f} s, "
            f"html {finished - reported:.2f} s, total {total:.2f} s"
        )
    print(f"best total: {best:.2f} s (target < 10 s); factors: "
          + ", ".join(factor["param"] for factor in result["factors"]))


if __name__ == "__main__":
    main()
