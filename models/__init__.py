"""Building a timm ResNet for transfer learning: pretrained weights, a new head, dropout, frozen stages."""

from models.factory import create_transfer_model, pretrained_data_config, starts_pretrained, validate_model_name
from models.freeze import RESNET_STAGES, frozen_modules

__all__ = [
    "RESNET_STAGES",
    "create_transfer_model",
    "frozen_modules",
    "pretrained_data_config",
    "starts_pretrained",
    "validate_model_name",
]
