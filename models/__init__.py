"""Building a timm ResNet for transfer learning: pretrained weights, a new head, dropout, frozen stages.

The builders load on first use, so reading ``models.stages`` (the sweep's search space does) imports no torch.
"""

from __future__ import annotations

import importlib

from models.stages import RESNET_STAGES

_LAZY = {
    "create_transfer_model": "models.factory",
    "pretrained_data_config": "models.factory",
    "starts_pretrained": "models.factory",
    "validate_model_name": "models.factory",
    "frozen_modules": "models.freeze",
}

__all__ = ["RESNET_STAGES", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
