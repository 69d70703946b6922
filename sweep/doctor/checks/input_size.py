"""Validation images reach the model at the size training images do: a model trained at one size and validated at
another sees its objects at another scale."""

from __future__ import annotations

from sweep.doctor.findings import CheckResult
from sweep.doctor.probes import batches
from sweep.doctor.setup import Setup

# Evaluating up to this much larger than training is a known gain (FixRes, timm's test_input_size): a warning only.
LARGER_AT_EVAL = 1.3


def check_input_size(setup: Setup) -> CheckResult:
    """Train and validation batches have the same channels and height x width."""
    (train_images, _), = batches(setup.train_loader, 1)
    (val_images, _), = batches(setup.val_loader, 1)
    train_shape, val_shape = tuple(train_images.shape[1:]), tuple(val_images.shape[1:])
    evidence = {"train_input": list(train_shape), "val_input": list(val_shape)}
    if train_shape == val_shape:
        shown = "x".join(str(size) for size in train_shape)
        return CheckResult("input_size", "ok", f"train and validation inputs are both {shown}", evidence)
    train_pixels = train_shape[-1] * train_shape[-2] if len(train_shape) >= 2 else 1
    val_pixels = val_shape[-1] * val_shape[-2] if len(val_shape) >= 2 else 1
    scale = (val_pixels / max(train_pixels, 1)) ** 0.5
    slightly_larger = train_shape[0] == val_shape[0] and 1 < scale <= LARGER_AT_EVAL
    shown = f"training inputs are {'x'.join(map(str, train_shape))} but validation inputs {'x'.join(map(str, val_shape))}"
    return CheckResult(
        "input_size", "warning" if slightly_larger else "problem",
        shown + (f" ({scale:.2g}x larger: fine when meant, as a test-time resolution)" if slightly_larger else
                 f" ({scale:.2g}x the training size): the model validates on objects at another scale"),
        evidence,
        "resize (and centre-crop) validation images to the training size, e.g. "
        "timm.data.create_transform(size, is_training=False) with the same size as the training transform",
    )
