"""Evaluation is deterministic: the same validation images give the same inputs and the same outputs in eval mode."""

from __future__ import annotations

import torch
from torch import nn

from sweep.doctor.findings import CheckResult, rounded
from sweep.doctor.probes import first_items, random_transforms
from sweep.doctor.setup import Setup
from sweep.doctor.training import Snapshot, to_device

# A validation batch of this many images is enough to see augmentation or batch-dependent outputs.
PROBE_IMAGES = 16
RANDOM_AT_EVAL = (nn.modules.batchnorm._BatchNorm, nn.Dropout, nn.modules.dropout._DropoutNd)


def check_eval_deterministic(setup: Setup) -> CheckResult:
    """The same validation batch through the eval pipeline twice gives the same loss."""
    images_a, labels = first_items(setup.val_loader, PROBE_IMAGES)
    images_b, _ = first_items(setup.val_loader, PROBE_IMAGES)
    input_diff = float((images_a.float() - images_b.float()).abs().max())
    model, loss_fn = setup.model, nn.CrossEntropyLoss()
    with Snapshot(setup), torch.no_grad():
        model.eval()
        still_training = [
            name or type(model).__name__
            for name, module in model.named_modules()
            if module.training and isinstance(module, RANDOM_AT_EVAL)
        ]
        images, targets = to_device(setup.device, images_a, labels)
        first = model(images).float()
        second = model(images).float()
        half = max(1, len(images) // 2)
        alone = model(images[:half]).float()
        loss_first, loss_second = float(loss_fn(first, targets)), float(loss_fn(second, targets))
    scale = 1.0 + float(first.abs().max())
    repeat_diff = float((first - second).abs().max())
    batch_diff = float((first[:half] - alone).abs().max()) if len(images) > 1 else 0.0
    evidence = {
        "images": len(images), "input_max_abs_diff": rounded(input_diff, 6),
        "loss_first": rounded(loss_first, 6), "loss_second": rounded(loss_second, 6),
        "logit_max_abs_diff": rounded(repeat_diff, 6), "batch_dependence": rounded(batch_diff, 6),
        "modules_training_after_eval": still_training[:10],
        "random_val_transforms": random_transforms(setup.val_loader),
    }
    if input_diff > 1e-6:
        listed = evidence["random_val_transforms"]
        return CheckResult(
            "eval_deterministic", "problem",
            f"the same {len(images)} validation images differ between two reads (max pixel difference {input_diff:.3g})"
            + (f": random augmentation in the validation transform ({', '.join(listed)})" if listed else ": the validation transform is random"),
            evidence,
            "give the validation set the eval transform only (resize, centre crop, normalise), e.g. "
            "timm.data.create_transform(size, is_training=False)",
        )
    if repeat_diff > 1e-4 * scale or batch_diff > 1e-3 * scale:
        cause = (f"modules still in train mode after model.eval(): {', '.join(still_training[:5])}" if still_training
                 else "BatchNorm uses batch statistics at evaluation (track_running_stats=False?)")
        return CheckResult(
            "eval_deterministic", "problem",
            f"in eval mode the same batch gives different outputs (loss {loss_first:.4f} then {loss_second:.4f}, "
            f"max logit difference {max(repeat_diff, batch_diff):.3g}): {cause}",
            evidence,
            "call model.eval() before validating and do not override it for BatchNorm/Dropout; "
            "BatchNorm must use its running statistics at evaluation",
        )
    return CheckResult(
        "eval_deterministic", "ok",
        f"same validation batch twice: identical inputs and loss {loss_first:.4f} both times", evidence,
    )
