"""Cost of checkpoints: the same small sweep with and without them (each trial's states, one per --checkpoint-every
seconds of training, and its best weights in a folder artifact store), time ratio and bytes kept. Target: <= 1.03x.

    .venv/bin/python benchmarks/checkpoint_cost.py                       # resnet18, 4 trials x 3 epochs
    .venv/bin/python benchmarks/checkpoint_cost.py --model resnet50 --epochs 6 --max-train 512 --max-val 128 \\
        --n-trials 2 --pairs 2 --frozen-stages 0 --checkpoint-every 0    # a state after every epoch
    .venv/bin/python benchmarks/checkpoint_cost.py --default-sweep --pairs 1   # the default sweep itself

Runs the sweep without and with checkpoints in turn (A B A B ...) in one process, each on a new SQLite study
with the same seed (so the same params), and prints the ratio of each pair and their median, so a machine whose
speed drifts skews both sides alike. On a busy machine, where pairs differ by more than the cost, the time spent
inside the checkpoint calls themselves (timed in the same run) gives the ratio too. Bytes: one trial's last state and best weights (what it holds in the store
while it runs), and what the whole sweep keeps once it has ended (the best --keep-best trials' weights).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import torch

from _common import add_size_flags, config_from, machine, trial_params
import sweep.checkpoints
from sweep import space
from sweep.config import SweepConfig
from sweep import study as study_module
from sweep.record import CHECKPOINT, WEIGHTS
from sweep.storage import open_storage
from sweep.worker import run_trials


def sweep_seconds(config, device: torch.device, folder: Path, name: str) -> tuple[float, list]:
    """Wall time of the whole sweep on a new SQLite study, and its trials."""
    storage = open_storage(f"sqlite:///{folder / (name + '.db')}")
    study, _ = study_module.create_or_resume(storage, name, config)
    started = time.perf_counter()
    run_trials(study, config, device, storage=storage)
    return time.perf_counter() - started, study.get_trials()


class CallTimer:
    """Seconds spent inside the checkpoint methods of every trial (state copies, serialisation, store writes), per
    method too, and seconds spent hashing what is written (states on the writer thread, weights inside ``ended``)."""

    METHODS = ("resume", "epoch_done", "save", "ended")

    def __init__(self):
        self.reset()
        for name in self.METHODS:
            setattr(sweep.checkpoints.TrialCheckpoints, name, self.timed(getattr(sweep.checkpoints.TrialCheckpoints,
                                                                                  name), name))
        sweep.checkpoints.digest_of = self.timed(sweep.checkpoints.digest_of, "hashing")

    def reset(self) -> None:
        self.by_name = dict.fromkeys((*self.METHODS, "hashing"), 0.0)

    @property
    def seconds(self) -> float:
        return sum(self.by_name[name] for name in self.METHODS)

    def timed(self, method, name: str):
        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.by_name[name] += time.perf_counter() - started
        return call


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir()) if folder.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_flags(parser)
    parser.add_argument("--n-trials", type=int, default=4)
    parser.add_argument("--keep-best", type=int, default=3)
    parser.add_argument("--checkpoint-every", type=float, default=SweepConfig.checkpoint_every,
                        help="seconds of training between two states of a trial (0: after every epoch)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--default-sweep", action="store_true",
                        help="pair the default sweep itself (size flags, --n-trials and --frozen-stages ignored)")
    args = parser.parse_args()
    device = torch.device(args.device)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="checkpoint-cost-") as tmp:
        tmp = Path(tmp)
        # every trial the baseline's params with --frozen-stages: the state a checkpoint holds depends on it
        point = trial_params(args)
        base = config_from(args, n_trials=args.n_trials, keep_best=args.keep_best, pruner="none",
                           checkpoint_every=args.checkpoint_every,
                           space={name: space.parse_param(name, str(value)) for name, value in point.items()},
                           baseline=point)
        if args.default_sweep:  # the README's sweep itself: its space, baseline, pruner and budget
            base = SweepConfig(weights=args.weights, seed=args.seed, checkpoint_every=args.checkpoint_every)
        print(machine())
        print(f"{base.model}, {base.n_trials} trials x {base.epochs} epochs, {base.max_train}/{base.max_val} images, "
              f"{base.image_size}px, " + ("the default sweep's space and pruner" if args.default_sweep else
                                          f"frozen_stages={args.frozen_stages}") + f", keep_best={base.keep_best}")
        # warm-up: data set, first-touch allocations, oneDNN kernel choice
        sweep_seconds(dataclasses.replace(base, n_trials=1, epochs=1, checkpoints=False), device, tmp, "warm")
        ratios, inside, states, weights, kept = [], [], [], [], []
        timer = CallTimer()
        for pair in range(1, args.pairs + 1):
            plain, _ = sweep_seconds(dataclasses.replace(base, checkpoints=False), device, tmp, f"off-{pair}")
            store = tmp / f"store-{pair}"
            timer.reset()
            ours, trials = sweep_seconds(dataclasses.replace(base, artifacts=str(store)), device, tmp, f"on-{pair}")
            ratios.append(ours / plain)
            inside.append(ours / (ours - timer.seconds))
            states += [t.user_attrs[CHECKPOINT]["bytes"] for t in trials if CHECKPOINT in t.user_attrs]
            weights += [t.user_attrs[WEIGHTS]["bytes"] for t in trials if WEIGHTS in t.user_attrs]
            kept.append(folder_bytes(store))
            print(f"pair {pair}: without {plain:.2f} s, with checkpoints {ours:.2f} s, ratio {ours / plain:.3f}; "
                  f"{timer.seconds:.2f} s inside checkpoint calls, ratio {inside[-1]:.3f} ("
                  + ", ".join(f"{name} {timer.by_name[name]:.2f} s" for name in timer.METHODS)
                  + f"); {timer.by_name['hashing']:.2f} s hashing (the digest of each state and weights file); "
                  f"of {len(trials)} trials {sum(CHECKPOINT in t.user_attrs for t in trials)} wrote a state, "
                  f"{sum(WEIGHTS in t.user_attrs for t in trials)} their best weights")
    mb = 1e6
    print(f"checkpoint cost ratio with/without: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}; target <= 1.03); from the time inside checkpoint calls: "
          f"median {statistics.median(inside):.3f}")
    state = (f"last state {max(states) / mb:.1f} MB while it runs (best weights inside when not the last epoch's)"
             if states else f"no state (every trial trained less than checkpoint_every = {base.checkpoint_every:g} s)")
    print(f"bytes per trial: {state}, best weights {max(weights) / mb:.1f} MB once it ends; kept per sweep after it "
          f"ends: {statistics.median(kept) / mb:.1f} MB ({min(base.keep_best, base.n_trials)} trials' weights)")

if __name__ == "__main__":
    main()
