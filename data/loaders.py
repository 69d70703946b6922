"""DataLoaders for a trial: seeded shuffling for train, fixed order for validation."""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader

from data.datasets import Datasets

MAX_CUDA_WORKERS = 8


def build_loaders(
    datasets: Datasets,
    batch_size: int,
    *,
    device: str = "cpu",
    seed: int = 0,
    num_workers: int | None = None,
) -> tuple[DataLoader, DataLoader]:
    """Train loader (shuffled by `seed`) and validation loader (in order) for `datasets`."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: expected a positive integer")
    if len(datasets.train) < 2:
        raise ValueError(f"training split has {len(datasets.train)} image(s): BatchNorm needs at least 2 to train")
    on_cuda = torch.device(device).type == "cuda"
    if num_workers is None:
        # on CPU the training step needs the cores, and in-memory sets decode nothing; a GPU waits on decoding
        num_workers = _default_cuda_workers() if on_cuda else 0
    common = dict(
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=on_cuda,
        persistent_workers=num_workers > 0,
    )
    train = DataLoader(
        datasets.train,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        # BatchNorm cannot train on a batch of one, so the last batch is dropped only when it would be that
        drop_last=len(datasets.train) % batch_size == 1,
        **common,
    )
    val = DataLoader(datasets.val, shuffle=False, **common)
    return train, val


def _default_cuda_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_CUDA_WORKERS, cores - 1))
