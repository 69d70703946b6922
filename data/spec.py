"""What --data names: the DataSpec and its parser."""

from __future__ import annotations

import os
from dataclasses import dataclass

DATA_HELP = (
    "digits (default: scikit-learn's 8x8 digits, offline), synthetic or synthetic:N (N generated images), "
    "cifar10:ROOT, cifar100:ROOT, or an ImageFolder directory (class subfolders, or train/ and val/ "
    "each with class subfolders)"
)
DEFAULT_SYNTHETIC_SIZE = 512

_CIFAR_KINDS = ("cifar10", "cifar100")


@dataclass(frozen=True)
class DataSpec:
    """A data set named on the command line; kind is digits, synthetic, cifar10, cifar100 or imagefolder."""

    kind: str
    root: str | None = None
    size: int | None = None


def parse_data_spec(text: str) -> DataSpec:
    """Parse a --data value into a DataSpec; ValueError names the value and the accepted forms."""
    value = text.strip()
    if value in ("", "digits"):
        return DataSpec("digits")
    if value == "synthetic":
        return DataSpec("synthetic", size=DEFAULT_SYNTHETIC_SIZE)
    prefix, colon, rest = value.partition(":")
    if colon and prefix == "synthetic":
        if not rest.isdigit() or int(rest) < 2:
            raise ValueError(f"bad data set {text!r}: expected synthetic:N with N an integer of at least 2")
        return DataSpec("synthetic", size=int(rest))
    if colon and prefix in _CIFAR_KINDS:
        if not rest:
            raise ValueError(
                f"bad data set {text!r}: expected {prefix}:ROOT, the directory that holds (or will hold) it"
            )
        return DataSpec(prefix, root=os.path.abspath(os.path.expanduser(rest)))
    path = os.path.expanduser(value)
    if os.path.isdir(path):
        return DataSpec("imagefolder", root=os.path.abspath(path))
    if os.path.exists(path):
        raise ValueError(f"data set {text!r} is a file: expected an ImageFolder directory, or {DATA_HELP}")
    if os.sep in value or value.startswith((".", "~")) or (os.altsep and os.altsep in value):
        raise ValueError(f"data directory {path!r} does not exist: expected an ImageFolder directory there")
    raise ValueError(f"unknown data set {text!r}: expected {DATA_HELP}")
