"""Frozen layers stay frozen: their weights and BatchNorm running statistics do not move while the rest trains
through the setup's own epoch loop, and no module is "frozen" by a plain ``requires_grad`` attribute."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from sweep.doctor.findings import CheckResult
from sweep.doctor.probes import cycle
from sweep.doctor.setup import Setup
from sweep.doctor.training import FewBatches, Snapshot, run_epoch, training_optimizer

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


def _attribute_freezes(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> list[tuple[str, int]]:
    """Modules given a plain ``requires_grad`` attribute (not requires_grad_()), with how many of their parameters
    still train: in the optimizer, or trainable when there is none."""
    held = None if optimizer is None else {id(p) for group in optimizer.param_groups for p in group["params"]}
    found = []
    for name, module in model.named_modules():
        if "requires_grad" not in vars(module):
            continue
        training = [p for p in module.parameters() if (id(p) in held if held is not None else p.requires_grad)]
        if training:
            found.append((name or "model", len(training)))
    return found


def _drift(setup: Setup, frozen: list[tuple[str, nn.Module]], optimizer, steps: int) -> tuple[list[str], list[str]]:
    """Frozen parameters and buffers that changed over ``steps`` batches of the setup's own loop."""
    before = {name: {key: value.detach().clone() for key, value in _own_state(module)} for name, module in frozen}
    changed_params, drifting_bn = [], []
    with Snapshot(setup):
        run_epoch(setup, FewBatches(setup.train_loader, cycle(setup.train_loader, steps), steps), optimizer)
        for name, module in frozen:
            for key, value in _own_state(module):
                if key == "num_batches_tracked" or torch.equal(value.detach(), before[name][key]):
                    continue
                target = changed_params if isinstance(value, nn.Parameter) else drifting_bn
                label = f"{name}.{key}" if name else key
                if label not in target:
                    target.append(label)
    return changed_params, drifting_bn


def check_frozen_stages(setup: Setup, steps: int = FROZEN_STEPS) -> CheckResult:
    """Frozen parameters and the BatchNorm running stats of frozen modules do not change over a few steps."""
    frozen = _frozen_modules(setup.model)
    optimizer = training_optimizer(setup)
    attribute_freezes = _attribute_freezes(setup.model, optimizer)
    changed_params, drifting_bn = _drift(setup, frozen, optimizer, steps) if frozen and optimizer else ([], [])
    evidence = {"frozen_modules": len(frozen), "steps": steps if frozen and optimizer else 0,
                "changed_parameters": changed_params[:10], "drifting_buffers": drifting_bn[:10],
                "n_changed": len(changed_params) + len(drifting_bn),
                "requires_grad_attributes": [name for name, _ in attribute_freezes][:10]}
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
    if attribute_freezes:
        listed = ", ".join(f"{name} ({count} parameters)" for name, count in attribute_freezes[:3])
        return CheckResult(
            "frozen_stages", "warning",
            f"requires_grad is set as a plain attribute on {listed}: that freezes nothing, and the optimizer still "
            "trains those parameters", evidence,
            "freeze with module.requires_grad_(False) (the method, with the underscore) before building the optimizer",
        )
    if not frozen:
        return CheckResult("frozen_stages", "ok", "no frozen layers: every parameter trains", evidence)
    if optimizer is None:
        return CheckResult("frozen_stages", "ok", "every layer is frozen: nothing trains", evidence)
    return CheckResult(
        "frozen_stages", "ok",
        f"{len(frozen)} frozen modules unchanged (weights and BatchNorm statistics) after {steps} training steps",
        evidence,
    )
