"""Pretrained weights offline: train a backbone on the generated stripes and save it as a local weights file.

The sweep is for fine-tuning pretrained ResNets, whose learning curves settle in far fewer epochs than
a random init's. Hub weights cannot be downloaded here, so this stands in for them: a backbone trained
on a different task (the 10 classes of generated stripes) and fine-tuned on the target (digits).

    .venv/bin/python benchmarks/pretrain.py --out /tmp/resnet18-stripes.pth
    .venv/bin/python benchmarks/pruning.py --weights /tmp/resnet18-stripes.pth

The file holds the backbone's state dict without its head, as `--weights PATH` of the sweep expects.

`--source digits-parity` is the closer stand-in for ImageNet weights: the stripes teach features that
hardly transfer (a fine-tuned run starts at chance, val loss ~2.3), while ImageNet features separate
most targets' classes from the first epoch. It trains on the digits images that no benchmark sweep
of seeds `--sweep-seeds` validates on, labelled odd/even: features of handwritten digits, another
task, and none of the validation images the sweeps are scored on.

    .venv/bin/python benchmarks/pretrain.py --source digits-parity --out /tmp/resnet18-parity.pth
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

import data
import models
from _common import add_size_flags, config_from, plain_fit
from sweep.config import SweepConfig
from sweep.objective import Objective
from sweep.trial import load_datasets


class Parity(Dataset):
    """``base`` with each label replaced by its parity (0 even, 1 odd)."""

    def __init__(self, base: Dataset):
        self.base = base
        self.targets = [label % 2 for label in base.targets]

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, label = self.base[index]
        return image, label % 2


def digits_parity(config: SweepConfig, sweep: SweepConfig, sweep_seeds: list[int]) -> data.Datasets:
    """Odd/even digits on every image that no sweep of ``sweep`` with those seeds validates on."""
    splits = [load_datasets(dataclasses.replace(sweep, seed=seed)) for seed in sweep_seeds]
    scored = {index for split in splits for index in split.val.indices}
    layout = splits[0]  # every seed's split draws from the same images with the same transforms
    base = Parity(layout.train.base)
    free = np.random.default_rng(config.seed).permutation([i for i in range(len(base)) if i not in scored])
    val_count = max(1, len(free) // 10)
    return data.Datasets(
        train=data.datasets.TransformedSubset(base, sorted(free[val_count:].tolist()), layout.train.transform),
        val=data.datasets.TransformedSubset(base, sorted(free[:val_count].tolist()), layout.val.transform),
        num_classes=2, class_names=["even", "odd"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_flags(parser, epochs=6, max_train=2000, max_val=500)
    parser.set_defaults(data="synthetic:2500")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--out", type=Path, required=True, help="where to write the weights (.pth)")
    parser.add_argument("--source", choices=("stripes", "digits-parity"), default="stripes",
                        help="stripes: --data (generated stripes); digits-parity: odd/even digits outside the "
                             "sweeps' validation images")
    parser.add_argument("--sweep-seeds", default="0,1,2,3,4",
                        help="digits-parity: the seeds of the sweeps whose validation images are left out")
    parser.add_argument("--sweep-max-val", type=int, default=128, help="digits-parity: the sweeps' --max-val")
    parser.add_argument("--sweep-val-fraction", type=float, default=SweepConfig.val_fraction,
                        help="digits-parity: the sweeps' --val-fraction")
    args = parser.parse_args()
    if args.weights != "none":
        parser.error("--weights: pretraining starts from a random init; leave it at none")
    device = torch.device(args.device)
    config = config_from(args)
    if args.source == "digits-parity":
        # Which images a sweep validates on depends on its seed and --max-val, not on its --max-train.
        sweep = SweepConfig(model=args.model, weights="none", data="digits", image_size=args.image_size,
                            max_val=args.sweep_max_val or None, val_fraction=args.sweep_val_fraction)
        datasets = data.precompute_val(digits_parity(config, sweep, [int(s) for s in args.sweep_seeds.split(",")]))
        print(f"digits-parity: {len(datasets.train)} train / {len(datasets.val)} val images, none of them a "
              f"validation image of the sweeps with seeds {args.sweep_seeds}")
    else:
        datasets = Objective(config, device).datasets()
    torch.manual_seed(args.seed)
    model = models.create_transfer_model(args.model, num_classes=datasets.num_classes, weights="none").to(device)
    params = {"lr": args.lr, "batch_size": 64, "weight_decay": 1e-4}
    val_losses = plain_fit(model, config, datasets, device, params)
    print("source task val loss per epoch:", " ".join(f"{loss:.3f}" for loss in val_losses))
    model.reset_classifier(0)  # timm drops the head; what is left is the backbone the sweep's --weights loads
    backbone = {key: value.cpu() for key, value in model.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(backbone, args.out)
    print(f"wrote {args.out} ({len(backbone)} tensors of {args.model}, head left out)")


if __name__ == "__main__":
    main()
