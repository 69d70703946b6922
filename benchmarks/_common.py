"""What the benchmarks share: a small sweep config, the plain timm/PyTorch loop we compare against, peak RSS."""

from __future__ import annotations

import os
import resource
import sys
import time
import uuid
from urllib.parse import urlsplit

import optuna
import torch
from torch import nn

import data
import models
from sweep import space
from sweep.config import SweepConfig


def add_size_flags(parser, *, model="resnet18", epochs=3, max_train=256, max_val=128, image_size=32):
    parser.add_argument("--model", default=model)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--max-train", type=int, default=max_train)
    parser.add_argument("--max-val", type=int, default=max_val)
    parser.add_argument("--val-fraction", type=float, default=SweepConfig.val_fraction,
                        help="share of the data set held out for validation, before --max-val")
    parser.add_argument("--image-size", type=int, default=image_size)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frozen-stages", type=int, default=0)
    parser.add_argument("--weights", default="none",
                        help="none (random init), auto (hub) or a local weights file, e.g. from benchmarks/pretrain.py")


def config_from(args, **overrides) -> SweepConfig:
    # 0 means all images, as on the sweep's command line (where the config loader maps it to None)
    values = dict(model=args.model, weights=args.weights, data=args.data, epochs=args.epochs,
                  max_train=args.max_train or None, max_val=args.max_val or None, val_fraction=args.val_fraction,
                  image_size=args.image_size, seed=args.seed)
    values.update(overrides)
    return SweepConfig(**values)


# The PostgreSQL server the benchmarks create throw-away databases on (as the tests do).
PG_ADMIN = os.environ.get("SWEEP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def fresh_database() -> tuple[str, str]:
    """A new, empty PostgreSQL database: (its name, its SQLAlchemy URL)."""
    import psycopg

    name = f"sweep_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://{urlsplit(PG_ADMIN).netloc}/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def new_study(storage, params: dict, pruner=None) -> optuna.Study:
    """A fresh study in ``storage`` (a URL or a storage object) with ``params`` enqueued (creating it is once per sweep, not per trial)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=f"bench-{time.time_ns()}",
                                pruner=pruner or optuna.pruners.NopPruner())
    study.enqueue_trial(params)
    return study


def trial_params(args) -> dict:
    """The baseline's params with the benchmark's ``--frozen-stages`` (0 = the whole network trains)."""
    return dict(space.DEFAULT_BASELINE, frozen_stages=args.frozen_stages)


def plain_trial(config: SweepConfig, datasets, device: torch.device, params: dict | None = None,
                trial_number: int = 0) -> list[float]:
    """The same model, data, epochs and seed as our trial, in a loop any timm user would write: val loss per epoch."""
    params = params or dict(space.DEFAULT_BASELINE)
    torch.manual_seed(config.seed + trial_number)
    model = models.create_transfer_model(config.model, num_classes=datasets.num_classes, dropout=params["dropout"],
                                         frozen_stages=params["frozen_stages"], weights=config.weights).to(device)
    return plain_fit(model, config, datasets, device, params, trial_number)


def plain_train_epoch(model: nn.Module, train_loader, optimizer, device: torch.device, *, log_loss: bool = False) -> None:
    """One epoch of the textbook loop; ``log_loss`` reads the loss each step as a logging loop does (one sync)."""
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    for images, labels in train_loader:
        images, labels = images.to(device), labels.to(device)
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if log_loss:
            loss.item()


def plain_fit(model: nn.Module, config: SweepConfig, datasets, device: torch.device, params: dict,
              trial_number: int = 0) -> list[float]:
    """Trains ``model`` for ``config.epochs`` with SGD + Nesterov as the sweep does: val loss per epoch."""
    train_loader, val_loader = data.build_loaders(datasets, params["batch_size"], device=device.type,
                                                  seed=config.seed + trial_number)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=params["lr"], momentum=0.9, nesterov=True,
                                weight_decay=params["weight_decay"])
    val_losses = []
    for _ in range(config.epochs):
        plain_train_epoch(model, train_loader, optimizer, device)
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for images, labels in val_loader:
                images, labels = images.to(device), labels.to(device)
                total += nn.functional.cross_entropy(model(images), labels, reduction="sum").item()
                count += len(labels)
        val_losses.append(total / count)
    return val_losses


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def machine() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            name = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        name = "unknown CPU"
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{name}, {torch.get_num_threads()} torch threads{gpu}; torch {torch.__version__}"
