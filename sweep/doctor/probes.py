"""Reading the user's loaders without training: sample batches, the transforms behind them, their normalisation,
labels, and a hash per raw image."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import os

import torch
from torch.utils.data import ConcatDataset, default_collate

MAX_HASHED = 20_000
AUGMENTATIONS = ("ColorJitter", "RandAugment", "AutoAugment", "TrivialAugmentWide", "AugMix")


def _batch(items: list) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = default_collate(items)[:2]
    return images, torch.as_tensor(labels)


def first_items(loader, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` samples, read from the data set so that a shuffling loader does not matter."""
    dataset = getattr(loader, "dataset", None)
    if dataset is not None and hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        return _batch([dataset[index][:2] for index in range(min(count, len(dataset)))])
    images, labels = next(iter(loader))[:2]
    return images[:count], torch.as_tensor(labels)[:count]


def batches(loader, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(images, torch.as_tensor(labels)) for images, labels, *_ in itertools.islice(loader, count)]


def cycle(loader, steps: int):
    """``steps`` batches, going round the loader again when it runs out."""
    count = 0
    while count < steps:
        empty = True
        for images, labels, *_ in loader:
            empty = False
            yield images, torch.as_tensor(labels)
            count += 1
            if count >= steps:
                return
        if empty:
            return


def _transforms_of(loader) -> list:
    """Transform objects of the loader's data set (through Subset-like wrappers), outermost first."""
    found, dataset, seen = [], getattr(loader, "dataset", None), 0
    while dataset is not None and seen < 5:
        transform = getattr(dataset, "transform", None)
        if transform is not None:
            found.extend(_flatten(transform))
        dataset, seen = getattr(dataset, "dataset", None) or getattr(dataset, "base", None), seen + 1
    return found


def _flatten(transform) -> list:
    inner = getattr(transform, "transforms", None)
    if isinstance(inner, (list, tuple)):
        return [leaf for item in inner for leaf in _flatten(item)]
    return [transform]


def normalize_of(loader) -> dict | None:
    """The mean/std of the first Normalize transform behind the loader, if one can be found."""
    for transform in _transforms_of(loader):
        if type(transform).__name__ == "Normalize" and hasattr(transform, "mean"):
            return {"mean": [round(float(v), 4) for v in transform.mean], "std": [round(float(v), 4) for v in transform.std]}
    return None


def random_transforms(loader) -> list[str]:
    names = [type(transform).__name__ for transform in _transforms_of(loader)]
    return [name for name in names if name.startswith("Random") or name in AUGMENTATIONS]


def targets(loader, limit_batches: int = 200) -> list[int]:
    """Every label of the loader's data set (its ``targets`` where it has them, else read from batches)."""
    dataset = getattr(loader, "dataset", None)
    labels = getattr(dataset, "targets", None)
    if labels is not None and dataset is not None and len(labels) == len(dataset):
        return [int(t) for t in labels]
    found: list[int] = []
    for _, batch_labels in batches(loader, limit_batches):
        found.extend(int(t) for t in batch_labels.flatten())
    return found


def raw_hashes(loader) -> tuple[list[str], str]:
    """A hash per image before any transform (through Subset, ConcatDataset and other index wrappers) where the
    data set lets us reach the raw image, else of the transformed batches."""
    dataset = getattr(loader, "dataset", None)
    if dataset is not None and hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
        try:
            return [_raw_hash(dataset, index) for index in range(min(len(dataset), MAX_HASHED))], "raw"
        except Exception:  # a data set we cannot see through: hash what the loader gives
            pass
    hashes = []
    for images, _ in batches(loader, MAX_HASHED):
        hashes.extend(_hash(image) for image in images)
    return hashes[:MAX_HASHED], "transformed"


def _source_item(dataset, index: int):
    """The innermost data set behind index wrappers, and the index there."""
    for _ in range(10):
        if isinstance(dataset, ConcatDataset):
            part = bisect.bisect_right(dataset.cumulative_sizes, index)
            index -= dataset.cumulative_sizes[part - 1] if part else 0
            dataset = dataset.datasets[part]
            continue
        inner = next((getattr(dataset, name) for name in ("dataset", "base") if hasattr(dataset, name)), None)
        indices = getattr(dataset, "indices", None)
        if inner is None or not hasattr(inner, "__getitem__"):
            break
        if indices is not None:
            index = int(indices[index])
        elif len(inner) != len(dataset):
            break
        dataset = inner
    return dataset, index


def _raw_hash(dataset, index: int) -> str:
    source, index = _source_item(dataset, index)
    samples = getattr(source, "samples", None)
    if samples is not None and isinstance(samples[index][0], (str, os.PathLike)):
        return _file_hash(samples[index][0])
    data = getattr(source, "data", None)
    if data is not None and hasattr(data, "__getitem__") and len(data) == len(source):
        return _hash(data[index])
    if getattr(source, "transform", None) is None:
        return _hash(source[index][0])
    saved = source.transform
    try:
        source.transform = _unchanged  # not None: a data set may call its transform unconditionally
        return _hash(source[index][0])
    finally:
        source.transform = saved


def _unchanged(image):
    return image


def _hash(image) -> str:
    if hasattr(image, "tobytes") and hasattr(image, "size") and not isinstance(image, torch.Tensor):
        payload = image.tobytes() + repr(getattr(image, "size", "")).encode()
    elif isinstance(image, torch.Tensor):
        payload = image.detach().cpu().contiguous().numpy().tobytes()
    else:
        payload = bytes(memoryview(image))
    return hashlib.sha1(payload).hexdigest()


def _file_hash(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha1(handle.read()).hexdigest()
