"""Frozen layers stay frozen: their weights and BatchNorm running statistics do not move while the rest trains."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from sweep.doctor.result import CheckResult
from sweep.doctor.setup import Setup
from sweep.doctor.training import Snapshot, fallback_optimizer, train_steps

FROZEN_STEPS = 3


def _frozen_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules whose own parameters all have requires_grad=False."""
    frozen = []
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        if own and not any(p.requires_grad for p in own):
            frozen.append((name, module))
    return frozen


def _own_state(module: nn.Module):
    return itertools.chain(module.named_parameters(recurse=False), module.named_buffers(recurse=False))


def check_frozen_stages(setup: Setup, steps: int = FROZEN_STEPS) -> CheckResult:
    """Frozen parameters and the BatchNorm running stats of frozen modules do not change over a few steps."""
    frozen = _frozen_modules(setup.model)
    if not frozen:
        return CheckResult("frozen_stages", "ok", "no frozen layers: every parameter trains", {"frozen_modules": 0})
    before = {name: {key: value.detach().clone() for key, value in _own_state(module)} for name, module in frozen}
    with Snapshot(setup) as snapshot:
        optimizer = setup.optimizer or fallback_optimizer(setup.model)
        if optimizer is None:
            return CheckResult("frozen_stages", "ok", "every layer is frozen: nothing trains", {"frozen_modules": len(frozen)})
        train_steps(setup, steps, optimizer)
        changed_params, drifting_bn = [], []
        for name, module in frozen:
            for key, value in _own_state(module):
                if key == "num_batches_tracked" or torch.equal(value.detach(), before[name][key]):
                    continue
                target = changed_params if isinstance(value, nn.Parameter) else drifting_bn
                label = f"{name}.{key}" if name else key
                if label not in target:
                    target.append(label)
        snapshot.restore()
    evidence = {"frozen_modules": len(frozen), "steps": steps,
                "changed_parameters": changed_params[:10], "drifting_buffers": drifting_bn[:10],
                "n_changed": len(changed_params) + len(drifting_bn)}
    if changed_params or drifting_bn:
        parts = []
        if changed_params:
            parts.append(f"frozen parameters changed ({', '.join(changed_params[:3])})")
        if drifting_bn:
            parts.append(f"BatchNorm running stats of frozen layers drift ({', '.join(drifting_bn[:3])})")
        return CheckResult(
            "frozen_stages", "problem", f"after {steps} training steps: " + "; ".join(parts), evidence,
            "keep the BatchNorm of frozen stages in eval mode after every model.train() (or swap it for "
            "FrozenBatchNorm2d), and leave frozen parameters out of the optimizer",
        )
    return CheckResult(
        "frozen_stages", "ok",
        f"{len(frozen)} frozen modules unchanged (weights and BatchNorm statistics) after {steps} training steps",
        evidence,
    )
