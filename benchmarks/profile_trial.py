"""One trial through our Objective on a SQLite study, for a profiler to look at.

    .venv/bin/py-spy record -r 100 -f raw -o trial.txt -- .venv/bin/python benchmarks/profile_trial.py
    .venv/bin/python benchmarks/profile_trial.py --torch-profiler   # table of ops, sorted by CPU time

Prints the trial's wall time and its epochs' seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from _common import add_size_flags, config_from, machine, new_study, trial_params
from sweep.objective import Objective
from sweep.record import TrialRecord


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_flags(parser)
    parser.add_argument("--torch-profiler", action="store_true")
    args = parser.parse_args()
    config = config_from(args)
    objective = Objective(config, torch.device(args.device))
    objective.datasets()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'profile.db'}"
        study = new_study(url, trial_params(args))
        started = time.perf_counter()
        if args.torch_profiler:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
                study.optimize(objective, n_trials=1)
            print(profiler.key_averages().table(sort_by="cpu_time_total", row_limit=25))
        else:
            study.optimize(objective, n_trials=1)
        wall = time.perf_counter() - started
    seconds = [entry["seconds"] for entry in TrialRecord.from_trial(study.trials[0]).history]
    print(f"trial wall {wall:.2f} s; epochs {', '.join(f'{s:.2f}' for s in seconds)} s")


if __name__ == "__main__":
    main()
