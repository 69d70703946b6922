"""Data sets for the sweep: parsing --data, loading images, train-only augmentation, loaders."""

from data.datasets import Datasets, build_datasets, precompute_val
from data.loaders import build_loaders
from data.image_check import UnreadableImages
from data.sources import DataUnavailableError
from data.spec import DATA_HELP, DataSpec, parse_data_spec
from data.transforms import create_transforms

__all__ = [
    "DATA_HELP",
    "DataSpec",
    "DataUnavailableError",
    "UnreadableImages",
    "Datasets",
    "build_datasets",
    "build_loaders",
    "create_transforms",
    "parse_data_spec",
    "precompute_val",
]
