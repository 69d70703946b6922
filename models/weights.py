"""Pretrained backbone weights: from the Hugging Face hub when it answers, or from a local file; once per process."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import timm
import torch
from timm.models import load_checkpoint

from reachability import reachable

logger = logging.getLogger(__name__)

AUTO = "auto"
NONE = "none"
HUB_PROBE_TIMEOUT_S = 3.0
_DEFAULT_ENDPOINT = "https://huggingface.co"
_HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")  # what timm looks for in a timm/* hub repo


def normalize_weights(weights: str | os.PathLike | None) -> str:
    """'auto' for None or any casing of auto, 'none' for any casing of none; otherwise the path as a string."""
    weights = os.fspath(weights) if weights is not None else None
    if weights is None or weights.strip().lower() == AUTO:
        return AUTO
    if weights.strip().lower() == NONE:
        return NONE
    return weights


@functools.lru_cache(maxsize=None)
def pretrained_backbone_state(name: str, weights: str) -> dict[str, torch.Tensor] | None:
    """Backbone tensors (no head) of model `name` from `weights`, or None for random init.

    Cached so that a sweep building one model per trial reads or downloads weights once per process,
    and says once (not once per trial) when it falls back to random init.
    """
    if weights == NONE:
        return None
    # Building the model to load into draws its random init from torch's global generator: fork it, so
    # that the first trial of a process (which fills this cache) trains as it would in any other order.
    with torch.random.fork_rng(devices=[]):
        if weights == AUTO:
            return _hub_backbone(name)
        return _file_backbone(name, weights)


def hub_unreachable_reason() -> str | None:
    """Why the Hugging Face hub cannot be used right now, or None when it answers a quick probe."""
    from huggingface_hub import constants

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    if offline or constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT or _DEFAULT_ENDPOINT
    if not reachable(endpoint, HUB_PROBE_TIMEOUT_S):
        return f"hub unreachable at {endpoint}"
    return None


def _hub_backbone(name: str) -> dict[str, torch.Tensor] | None:
    pretrained_cfg = timm.get_pretrained_cfg(name)
    if pretrained_cfg is None or not pretrained_cfg.hf_hub_id:
        _warn_random_init(name, "none published for this model")
        return None
    reason = hub_unreachable_reason()
    if reason is not None:
        cached_file = _cached_hub_file(pretrained_cfg.hf_hub_id, pretrained_cfg.hf_hub_filename)
        if cached_file is not None:
            logger.info("%s: loading %s weights from the local hub cache %s", reason, name, cached_file)
            return _file_backbone(name, cached_file)
        _warn_random_init(name, reason)
        return None
    try:
        # num_classes=0 drops the ImageNet head: only the backbone is cached and reused
        model = timm.create_model(name, pretrained=True, num_classes=0)
    except Exception as error:  # any hub or download failure is a fallback to random init, not a crash
        _warn_random_init(name, f"download failed: {_one_line(error)}")
        return None
    return model.state_dict()


def _file_backbone(name: str, weights: str) -> dict[str, torch.Tensor]:
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file '{weights}' not found: expected 'auto' (hub), 'none' (random init) "
            "or a path to a .safetensors/.pth/.bin file"
        )
    model = timm.create_model(name, num_classes=0)
    # timm's load_checkpoint reads .safetensors/.pth/.bin, EMA and DDP checkpoints alike, and, unlike the
    # pretrained=True path (which loads non-strictly), reports which keys did not match
    try:
        incompatible = load_checkpoint(model, str(path), strict=False)
    except Exception as error:
        raise ValueError(f"weights file '{weights}' cannot be loaded into {name}: {_one_line(error)}") from error
    head = model.pretrained_cfg.get("classifier") or "fc"
    unexpected = [key for key in incompatible.unexpected_keys if not key.startswith(f"{head}.")]
    if incompatible.missing_keys or unexpected:
        expected_count = len(model.state_dict())
        raise ValueError(
            f"weights file '{weights}' does not fit {name}: {len(incompatible.missing_keys)} of "
            f"{expected_count} backbone tensors missing, {len(unexpected)} unexpected "
            f"(e.g. {(incompatible.missing_keys + unexpected)[0]!r}); expected a state dict of {name}"
        )
    return model.state_dict()


def _cached_hub_file(hf_hub_id: str, hf_hub_filename: str | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    repo_id, _, revision = hf_hub_id.partition("@")
    # read at call time, as HF_ENDPOINT is: huggingface_hub reads both once, at import
    cache_dir = os.environ.get("HF_HUB_CACHE")
    for filename in (hf_hub_filename,) if hf_hub_filename else _HUB_FILENAMES:
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision or None)
        if isinstance(cached, str):
            return cached
    return None


def _warn_random_init(name: str, reason: str) -> None:
    logger.warning(
        "pretrained weights for %s unavailable (%s): training from random init; "
        "pass --weights PATH to fine-tune offline",
        name,
        reason,
    )


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split())  # torch's load errors span lines; the useful part is on the second
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
