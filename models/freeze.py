"""Freezing the first k stages of a timm ResNet, their BatchNorm kept in eval mode."""

from __future__ import annotations

import functools

from torch import nn

from models.stages import RESNET_STAGES, STAGE_MODULE_NAMES


def validate_frozen_stages(frozen_stages: int) -> None:
    """Raise ValueError unless `frozen_stages` is a whole number of ResNet stages."""
    if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) or not 0 <= frozen_stages <= RESNET_STAGES:
        raise ValueError(
            f"frozen_stages={frozen_stages!r}: expected an integer from 0 (train everything) "
            f"to {RESNET_STAGES} (train only the head)"
        )


def freeze_stages(model: nn.Module, frozen_stages: int) -> None:
    """Stop gradients in the first `frozen_stages` stages (checked by `create_transfer_model`) and keep their
    BatchNorm in eval mode."""
    for module in _stage_modules(model, frozen_stages):
        module.requires_grad_(False)
        # BN of frozen stages stays in eval so its running stats keep the pretrained values; a partial
        # (not a lambda or a subclass) survives copy.deepcopy and pickling and leaves state_dict keys alone.
        module.train = functools.partial(_stay_in_eval, module)
        module.eval()


def frozen_modules(model: nn.Module) -> list[nn.Module]:
    """The modules of the frozen stages, stem first; empty when no stage is frozen."""
    return [module for module in _stage_modules(model, RESNET_STAGES) if _is_frozen(module)]


def _stay_in_eval(module: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(module, False)


def _is_frozen(module: nn.Module) -> bool:
    override = module.__dict__.get("train")
    return isinstance(override, functools.partial) and override.func is _stay_in_eval


def _stage_modules(model: nn.Module, stages: int) -> list[nn.Module]:
    names = [name for stage in STAGE_MODULE_NAMES[:stages] for name in stage]
    return [model.get_submodule(name) for name in names]
