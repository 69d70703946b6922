"""Creating the transfer-learning model: a timm ResNet with pretrained backbone, new head, dropout, frozen stages."""

from __future__ import annotations

import difflib
import functools

import timm
from timm.data import resolve_data_config
from timm.models import get_arch_name
from torch import nn

from models.freeze import freeze_stages, validate_frozen_stages
from models.weights import normalize_weights, pretrained_backbone_state

# timm modules whose models are all built on timm.models.resnet.ResNet (stem conv1/bn1, layer1..layer4, fc)
_RESNET_MODULES = ("resnet", "resnest", "sknet")
_EXAMPLES = "resnet18, resnet50, resnet50d"


def validate_model_name(name: str) -> None:
    """Raise ValueError unless `name` (optionally with a pretrained tag) is a timm ResNet with stem + layer1..layer4."""
    if not isinstance(name, str) or not timm.is_model(name):
        close = difflib.get_close_matches(str(name), _resnet_family(), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(
            f"unknown model {name!r}: expected a timm ResNet such as {_EXAMPLES} "
            f"({hint}see timm.list_models(module='resnet'))"
        )
    if get_arch_name(name) not in _resnet_family():
        raise ValueError(
            f"model {name!r} is not a timm ResNet with stem + layer1..layer4: expected one such as {_EXAMPLES} "
            "(see timm.list_models(module='resnet'))"
        )
    try:
        timm.get_pretrained_cfg(name)
    except RuntimeError as error:  # an architecture with a tag timm does not know, e.g. resnet50.nope
        tags = timm.list_pretrained(f"{get_arch_name(name)}.*")
        raise ValueError(f"unknown pretrained tag in {name!r}: expected one of {', '.join(tags)}") from error


def create_transfer_model(
    name: str = "resnet50",
    *,
    num_classes: int,
    dropout: float = 0.0,
    frozen_stages: int = 0,
    weights: str | None = "auto",
) -> nn.Module:
    """A timm ResNet with a new `num_classes` head, `dropout` before it and the first `frozen_stages` frozen.

    `weights`: "auto" or None = pretrained from the Hugging Face hub when it answers (else random init and one
    warning); "none" = random init on purpose; anything else = path of a local weights file.
    """
    validate_model_name(name)
    validate_frozen_stages(frozen_stages)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r}: expected a positive integer")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout={dropout!r}: expected a probability in [0, 1)")
    backbone = pretrained_backbone_state(name, normalize_weights(weights))
    # built with pretrained=False and filled from the per-process cache, so no trial reloads or re-downloads weights
    model = timm.create_model(name, num_classes=num_classes, drop_rate=dropout)
    if backbone is not None:
        _load_backbone(model, backbone)
    freeze_stages(model, frozen_stages)
    return model


def starts_pretrained(name: str, weights: str | None = "auto") -> bool:
    """Whether `create_transfer_model(name, weights=weights)` starts from pretrained weights, not a random init.

    False for "none", and for "auto" when the hub cannot be reached and nothing is cached (the fallback
    to random init). Reads the per-process cache that model creation fills, so it costs nothing after it.
    """
    return pretrained_backbone_state(name, normalize_weights(weights)) is not None


def pretrained_data_config(model: nn.Module) -> dict:
    """Mean, std, interpolation and crop_pct the model's pretrained weights expect."""
    config = resolve_data_config({}, model=model)
    return {key: config[key] for key in ("mean", "std", "interpolation", "crop_pct")}


def _load_backbone(model: nn.Module, backbone: dict) -> None:
    head = model.pretrained_cfg.get("classifier") or "fc"
    incompatible = model.load_state_dict(backbone, strict=False)
    missing = [key for key in incompatible.missing_keys if not key.startswith(f"{head}.")]
    if missing or incompatible.unexpected_keys:
        raise RuntimeError(
            f"cached backbone does not match {type(model).__name__}: missing {missing[:3]}, "
            f"unexpected {incompatible.unexpected_keys[:3]}"
        )


@functools.lru_cache(maxsize=None)
def _resnet_family() -> tuple[str, ...]:
    return tuple(timm.list_models(module=_RESNET_MODULES))
