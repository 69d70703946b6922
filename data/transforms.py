"""Train and eval transforms from timm, normalised with the model's pretrained mean and std."""

from __future__ import annotations

from timm.data import create_transform


# Small centred glyphs (digits, synthetic shapes): a 0.08-scale crop or a mirror changes the class.
GENTLE_AUGMENTATION = {"scale": (0.7, 1.0), "ratio": (0.9, 1.1), "hflip": 0.0, "color_jitter": None}


def create_transforms(data_config: dict, image_size: int, *, train: bool, gentle: bool = False):
    """timm's train transform (random resized crop, flip, colour jitter) or its deterministic eval transform.

    `data_config` is `models.pretrained_data_config(model)`: mean, std, interpolation, crop_pct.
    `gentle` keeps training crops large and unmirrored, for data whose label depends on orientation.
    """
    augmentation = GENTLE_AUGMENTATION if (train and gentle) else {}
    return create_transform(
        image_size,
        is_training=train,
        interpolation=data_config.get("interpolation", "bilinear"),
        mean=tuple(data_config["mean"]),
        std=tuple(data_config["std"]),
        crop_pct=data_config.get("crop_pct"),
        **augmentation,
    )
