"""Train and eval transforms from timm, normalised with the model's pretrained mean and std."""

from __future__ import annotations

from timm.data import create_transform


def create_transforms(data_config: dict, image_size: int, *, train: bool):
    """timm's train transform (random resized crop, flip, colour jitter) or its deterministic eval transform.

    `data_config` is `models.pretrained_data_config(model)`: mean, std, interpolation, crop_pct.
    """
    return create_transform(
        image_size,
        is_training=train,
        interpolation=data_config.get("interpolation", "bilinear"),
        mean=tuple(data_config["mean"]),
        std=tuple(data_config["std"]),
        crop_pct=data_config.get("crop_pct"),
    )
