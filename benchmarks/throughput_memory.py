"""Training throughput (images/s) and peak memory of our loop vs. a plain timm/PyTorch loop, ResNet50 by default.

    .venv/bin/python benchmarks/throughput_memory.py                   # CPU: 128 images of 32 px, 2 pairs
    .venv/bin/python benchmarks/throughput_memory.py --device cuda --image-size 224 --max-train 2048 --pairs 3

Each side runs in a fresh process, in turn (plain, ours, plain, ours ...), so peak RSS is that side's own:
"ours" is a worker (imports, Optuna, a SQLite study, one trial through the Objective) that then times one
training epoch of sweep.train; "plain" times one epoch of a hand-written loop on the same model and data.
On CUDA, peak allocated GPU memory is printed too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import add_size_flags, config_from, machine


def child(args) -> dict:
    import torch

    import data
    from _common import new_study, peak_rss_mib, plain_train_epoch, trial_params
    from sweep.objective import Objective
    from sweep.train import acceleration_for, create_optimizer, train_one_epoch
    import models

    config = config_from(args)
    device = torch.device(args.device)
    params = trial_params(args)
    objective = Objective(config, device)
    datasets = objective.datasets()
    if args.child == "ours":
        with tempfile.TemporaryDirectory() as tmp:
            study = new_study(f"sqlite:///{Path(tmp) / 'worker.db'}", params)
            study.optimize(objective, n_trials=1)  # the worker's memory: a whole trial with storage
    torch.manual_seed(config.seed)
    model = models.create_transfer_model(config.model, num_classes=datasets.num_classes, dropout=params["dropout"],
                                         frozen_stages=params["frozen_stages"], weights="none").to(device)
    train_loader, _ = data.build_loaders(datasets, params["batch_size"], device=device.type, seed=config.seed)
    optimizer = create_optimizer(model, "sgd", params["lr"], params["weight_decay"])
    acceleration = acceleration_for(device)
    if acceleration.channels_last:
        model.to(memory_format=torch.channels_last)
    scaler = torch.amp.GradScaler(device.type) if acceleration.amp_dtype == torch.float16 else None

    def plain_epoch():  # a plain loop reads the loss each step to log it: one sync per step
        plain_train_epoch(model, train_loader, optimizer, device, log_loss=True)

    def our_epoch():
        train_one_epoch(model, train_loader, optimizer, device, scaler, acceleration)

    epoch = our_epoch if args.child == "ours" else plain_epoch
    epoch()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(args.epochs):
        epoch()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {
        "images_per_s": len(datasets.train) * args.epochs / seconds,
        "peak_rss_mib": peak_rss_mib(),
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_flags(parser, model="resnet50", epochs=1, max_train=128, max_val=64)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--child", choices=("ours", "plain"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    print(machine())
    print(f"{args.model}, {args.max_train} images of {args.image_size}px per timed epoch, frozen_stages="
          f"{args.frozen_stages}, device {args.device}")
    forwarded = [arg for arg in sys.argv[1:]]
    runs: dict[str, list[dict]] = {"plain": [], "ours": []}
    for pair in range(1, args.pairs + 1):
        for side in ("plain", "ours"):
            output = subprocess.run([sys.executable, __file__, *forwarded, "--child", side],
                                    check=True, capture_output=True, text=True).stdout
            runs[side].append(json.loads(output.strip().splitlines()[-1]))
        p, o = runs["plain"][-1], runs["ours"][-1]
        print(f"pair {pair}: images/s plain {p['images_per_s']:.1f} ours {o['images_per_s']:.1f} "
              f"(ratio {o['images_per_s'] / p['images_per_s']:.3f}); peak RSS plain {p['peak_rss_mib']:.0f} MiB "
              f"ours {o['peak_rss_mib']:.0f} MiB (ratio {o['peak_rss_mib'] / p['peak_rss_mib']:.3f})"
              + (f"; peak GPU plain {p['peak_cuda_mib']:.0f} MiB ours {o['peak_cuda_mib']:.0f} MiB"
                 if p["peak_cuda_mib"] is not None else ""))
    ratio = statistics.median(o["images_per_s"] / p["images_per_s"] for o, p in zip(runs["ours"], runs["plain"]))
    memory = statistics.median(o["peak_rss_mib"] / p["peak_rss_mib"] for o, p in zip(runs["ours"], runs["plain"]))
    print(f"throughput ours/plain: median {ratio:.3f}; peak RSS ours/plain: median {memory:.3f}")


if __name__ == "__main__":
    main()
