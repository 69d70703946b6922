"""Pretrained weights offline: train a backbone on the generated stripes and save it as a local weights file.

The sweep is for fine-tuning pretrained ResNets, whose learning curves settle in far fewer epochs than
a random init's. Hub weights cannot be downloaded here, so this stands in for them: a backbone trained
on a different task (the 10 classes of generated stripes) and fine-tuned on the target (digits).

    .venv/bin/python benchmarks/pretrain.py --out /tmp/resnet18-stripes.pth
    .venv/bin/python benchmarks/pruning.py --weights /tmp/resnet18-stripes.pth

The file holds the backbone's state dict without its head, as `--weights PATH` of the sweep expects.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import models
from _common import add_size_flags, config_from, plain_fit
from sweep.objective import Objective


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_flags(parser, epochs=6, max_train=2000, max_val=500)
    parser.set_defaults(data="synthetic:2500")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--out", type=Path, required=True, help="where to write the weights (.pth)")
    args = parser.parse_args()
    if args.weights != "none":
        parser.error("--weights: pretraining starts from a random init; leave it at none")
    device = torch.device(args.device)
    config = config_from(args)
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
