"""Validation images computed once per process give the same batches as decoding them each epoch."""

from __future__ import annotations

import torch

import data
import models


def _datasets():
    probe = models.create_transfer_model("resnet18", num_classes=1, weights="none")
    return data.build_datasets(data.parse_data_spec("digits"), image_size=32,
                               data_config=models.pretrained_data_config(probe), max_train=32, max_val=24)


def test_precomputed_val_equals_the_transformed_images():
    datasets = _datasets()
    fast = data.precompute_val(datasets)
    assert fast.train is datasets.train  # training keeps its per-epoch augmentation
    assert len(fast.val) == len(datasets.val)
    for index in (0, 7, len(datasets.val) - 1):
        image, label = datasets.val[index]
        cached_image, cached_label = fast.val[index]
        assert torch.equal(image, cached_image) and label == cached_label
    assert fast.val.targets == datasets.val.targets


def test_a_val_set_over_the_budget_is_left_alone():
    datasets = _datasets()
    assert data.precompute_val(datasets, max_bytes=1000) is datasets
