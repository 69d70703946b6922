"""Train and validation data sets: a deterministic, disjoint split with augmentation on train only."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

from data.sources import load_source
from data.spec import DataSpec
from data.transforms import create_transforms


@dataclass
class Datasets:
    """What a trial trains and validates on."""

    train: Dataset
    val: Dataset
    num_classes: int
    class_names: list[str]


class TransformedSubset(Dataset):
    """The images of `base` at `indices`, each passed through `transform`."""

    def __init__(self, base: Dataset, indices: list[int], transform):
        self.base = base
        self.indices = indices
        self.transform = transform
        self.targets = [base.targets[index] for index in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        image, label = self.base[self.indices[position]]
        return self.transform(image), label


def build_datasets(
    spec: DataSpec,
    *,
    image_size: int,
    data_config: dict,
    seed: int = 0,
    val_fraction: float = 0.25,
    max_train: int | None = None,
    max_val: int | None = None,
    skip_bad_images: bool = False,
) -> Datasets:
    """Split `spec` into train (augmented) and validation (eval transform) sets, deterministically by `seed`.

    A data set with its own validation split (CIFAR's test set, an ImageFolder's val/) keeps it and ignores
    `val_fraction`; `max_train`/`max_val` keep a seeded, stratified subset of each split. Unreadable image files
    stop it (``data.UnreadableImages``), or are left out with `skip_bad_images`.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction!r}: expected a fraction strictly between 0 and 1")
    for label, limit in (("max_train", max_train), ("max_val", max_val)):
        if limit is not None and limit < 1:
            raise ValueError(f"{label}={limit!r}: expected a positive number of images or None for all")
    source = load_source(spec, image_size, skip_bad_images)
    if source.val is None:
        train_indices, val_indices = _split(source.train.targets, val_fraction, seed)
        train_base = val_base = source.train
    else:
        train_indices, val_indices = np.arange(len(source.train)), np.arange(len(source.val))
        train_base, val_base = source.train, source.val
    train_indices = _subset(train_indices, train_base.targets, max_train, seed)
    val_indices = _subset(val_indices, val_base.targets, max_val, seed)
    gentle = spec.kind in ("digits", "synthetic")
    return Datasets(
        train=TransformedSubset(
            train_base, train_indices, create_transforms(data_config, image_size, train=True, gentle=gentle)
        ),
        val=TransformedSubset(val_base, val_indices, create_transforms(data_config, image_size, train=False)),
        num_classes=len(source.class_names),
        class_names=list(source.class_names),
    )


class PrecomputedSet(Dataset):
    """A deterministic data set with every item computed once: validation without re-decoding each epoch."""

    def __init__(self, dataset: Dataset):
        items = [dataset[index] for index in range(len(dataset))]
        self.images = torch.stack([image for image, _ in items])
        self.targets = [int(label) for _, label in items]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, position: int):
        return self.images[position], self.targets[position]


def precompute_val(datasets: Datasets, max_bytes: int = 512 * 2**20) -> Datasets:
    """``datasets`` with its validation split computed once when it fits in ``max_bytes``; else unchanged.

    The eval transform has no randomness, so every epoch would decode and resize the same images again.
    """
    if len(datasets.val) == 0:
        return datasets
    first, _ = datasets.val[0]
    if first.numel() * first.element_size() * len(datasets.val) > max_bytes:
        return datasets
    return dataclasses.replace(datasets, val=PrecomputedSet(datasets.val))


def _split(targets: list[int], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    indices = np.arange(len(targets))
    try:
        return train_test_split(indices, test_size=val_fraction, random_state=seed, stratify=targets)
    except ValueError:  # a class too small to appear in both splits: fall back to a plain shuffled split
        return train_test_split(indices, test_size=val_fraction, random_state=seed)


def _subset(indices: np.ndarray, targets: list[int], limit: int | None, seed: int) -> list[int]:
    """At most `limit` of `indices`, stratified by label where every class can be kept, in ascending order."""
    if limit is not None and limit < len(indices):
        labels = [targets[index] for index in indices]
        try:
            indices, _ = train_test_split(indices, train_size=limit, random_state=seed, stratify=labels)
        except ValueError:  # fewer images kept than classes: a plain seeded sample
            indices = np.random.default_rng(seed).permutation(indices)[:limit]
    return sorted(int(index) for index in indices)
