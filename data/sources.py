"""Where the images come from: each kind of DataSpec read once per process into image/label data sets."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10, CIFAR100, ImageFolder

from data.image_check import UnreadableImages, unreadable_images
from data.spec import DataSpec
from reachability import reachable

log = logging.getLogger("sweep")

DOWNLOAD_PROBE_TIMEOUT_S = 3.0
SYNTHETIC_CLASSES = 10
_SYNTHETIC_SEED = 1234  # the synthetic images are the same for every split seed


class DataUnavailableError(FileNotFoundError):
    """A data set that is neither on disk nor downloadable from here."""


@dataclass
class Source:
    """Images as (PIL RGB image, label) pairs; `val` is None when the data set has no split of its own."""

    train: Dataset
    val: Dataset | None
    class_names: list[str]


class InMemoryImages(Dataset):
    """Decoded images held in memory, with their labels as `targets` like torchvision's data sets."""

    def __init__(self, images: list[Image.Image], targets: list[int]):
        self.images = images
        self.targets = targets

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return self.images[index], self.targets[index]


def load_source(spec: DataSpec, image_size: int, skip_bad_images: bool = False) -> Source:
    """The images of `spec`, read once per process (in-memory sets also per image size).

    An image folder's files are all decoded once first: unreadable ones stop it, or are left out with
    ``skip_bad_images``.
    """
    if spec.kind == "digits":
        return _digits(image_size)
    if spec.kind == "synthetic":
        return _synthetic(spec.size, image_size)
    if spec.kind in ("cifar10", "cifar100"):
        return _cifar(spec.kind, spec.root)
    if spec.kind == "imagefolder":
        return _image_folder(spec.root, skip_bad_images)
    raise ValueError(
        f"unknown data set kind {spec.kind!r}: expected digits, synthetic, cifar10, cifar100 or imagefolder"
    )


@functools.lru_cache(maxsize=4)
def _digits(image_size: int) -> Source:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 8x8 pixels with values 0..16, upscaled once so that timm's transforms crop a real-sized image
    pixels = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    images = [
        Image.fromarray(image).resize((image_size, image_size), Image.Resampling.BILINEAR).convert("RGB")
        for image in pixels
    ]
    return Source(InMemoryImages(images, digits.target.tolist()), None, [str(label) for label in digits.target_names])


@functools.lru_cache(maxsize=4)
def _synthetic(size: int, image_size: int) -> Source:
    """Stripes whose colour, angle and frequency depend on the class, with a random phase and noise per image."""
    rng = np.random.default_rng(_SYNTHETIC_SEED)
    palette = rng.uniform(0.2, 1.0, size=(SYNTHETIC_CLASSES, 3))
    y, x = np.mgrid[0:image_size, 0:image_size] / image_size
    images, targets = [], []
    for index in range(size):
        label = index % SYNTHETIC_CLASSES
        angle = np.pi * label / SYNTHETIC_CLASSES
        frequency = 2 + label % 3
        phase = rng.uniform(0, 2 * np.pi)
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)) + phase)
        image = stripes[..., None] * palette[label] + rng.normal(0.0, 0.15, size=(image_size, image_size, 3))
        images.append(Image.fromarray((image.clip(0, 1) * 255).astype(np.uint8)))
        targets.append(label)
    names = [f"class{label}" for label in range(SYNTHETIC_CLASSES)]
    return Source(InMemoryImages(images, targets), None, names)


@functools.lru_cache(maxsize=4)
def _cifar(kind: str, root: str) -> Source:
    dataset_class = CIFAR10 if kind == "cifar10" else CIFAR100
    try:
        train, val = dataset_class(root, train=True), dataset_class(root, train=False)
    except RuntimeError:  # torchvision's "Dataset not found or corrupted"
        _download_cifar(dataset_class, kind, root)
        train, val = dataset_class(root, train=True), dataset_class(root, train=False)
    # the official test split is the validation set: it never shares an image with the training split
    return Source(train, val, list(train.classes))


def _drop_unreadable(root: str, folders: list[ImageFolder], skip: bool) -> None:
    """Stop on files PIL cannot decode, or with ``skip`` leave them out of ``folders`` and say how many."""
    bad = unreadable_images([path for folder in folders for path, _ in folder.samples])
    if not bad:
        return
    if not skip:
        raise UnreadableImages(root, bad)
    unreadable = {path for path, _ in bad}
    for folder in folders:
        folder.samples = [(path, label) for path, label in folder.samples if path not in unreadable]
        folder.imgs = folder.samples
        folder.targets = [label for _, label in folder.samples]
    log.warning("ImageFolder '%s': skipped %d unreadable image file(s) (--skip-bad-images)", root, len(bad))


def _download_cifar(dataset_class: type, kind: str, root: str) -> None:
    what_to_put = (
        f"put {dataset_class.base_folder}/ there (unpack {dataset_class.filename} from {dataset_class.url})"
    )
    # torchvision's download has no timeout: probe first so that an offline machine fails in seconds
    if not reachable(dataset_class.url, DOWNLOAD_PROBE_TIMEOUT_S):
        raise DataUnavailableError(f"{kind} not found in '{root}' and cannot be downloaded (offline): {what_to_put}")
    try:
        dataset_class(root, train=True, download=True)
    except Exception as error:
        raise DataUnavailableError(
            f"{kind} not found in '{root}' and its download failed ({type(error).__name__}: {error}): {what_to_put}"
        ) from error


@functools.lru_cache(maxsize=4)
def _image_folder(root: str, skip_bad_images: bool = False) -> Source:
    train_dir, val_dir = Path(root) / "train", Path(root) / "val"
    split = train_dir.is_dir() and val_dir.is_dir()
    try:
        train, val = (ImageFolder(train_dir), ImageFolder(val_dir)) if split else (ImageFolder(root), None)
    except (FileNotFoundError, OSError) as error:
        raise ValueError(
            f"ImageFolder '{root}' has no images: {error}; expected class subfolders, "
            "or train/ and val/ each with class subfolders"
        ) from error
    if len(train.classes) < 2:
        raise ValueError(f"ImageFolder '{root}' has {len(train.classes)} class ({', '.join(train.classes)}): a "
                         "classifier needs at least 2 class subfolders")
    _drop_unreadable(root, [folder for folder in (train, val) if folder is not None], skip_bad_images)
    if not split:
        return Source(train, None, list(train.classes))
    unknown = sorted(set(val.classes) - set(train.classes))
    if unknown:
        raise ValueError(f"ImageFolder '{root}': classes {unknown} are in val/ but not in train/")
    if val.classes != train.classes:  # val/ may lack a class: label its images with train/'s numbering
        val.samples = [(path, train.class_to_idx[val.classes[label]]) for path, label in val.samples]
        val.imgs = val.samples
        val.targets = [label for _, label in val.samples]
        val.classes, val.class_to_idx = train.classes, train.class_to_idx
    return Source(train, val, list(train.classes))


