"""Train and validation inputs are normalised alike, with their channels in the same order, and as the pretrained
weights expect."""

from __future__ import annotations

import itertools

import torch

from sweep.doctor.findings import CheckResult, rounded
from sweep.doctor.probes import batches, normalize_of
from sweep.doctor.setup import Setup

# Train/val normalised statistics differing by more than this many train standard deviations disagree.
MEAN_SHIFT_LIMIT = 0.5
STD_RATIO_LIMIT = 1.5
# Channel order is the cause when a reordering of the validation channels cuts the disagreement this many times
# (and the mean shift as given is at least CHANNEL_ORDER_SHIFT, above sampling noise).
CHANNEL_ORDER_GAIN, CHANNEL_ORDER_SHIFT = 3.0, 0.2


def _channel_stats(sample: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[list[float], list[float], float, float]:
    images = torch.cat([images.float() for images, _ in sample])
    per_channel = images.transpose(0, 1).reshape(images.shape[1], -1)
    return per_channel.mean(1).tolist(), per_channel.std(1).tolist(), float(images.min()), float(images.max())


def check_normalisation(setup: Setup, batch_count: int = 4) -> CheckResult:
    """Per-channel mean/std of normalised train and validation batches agree, and with the pretrained config."""
    train_mean, train_std, train_min, train_max = _channel_stats(batches(setup.train_loader, batch_count))
    val_mean, val_std, val_min, val_max = _channel_stats(batches(setup.val_loader, batch_count))
    shift, ratio = _disagreement(train_mean, train_std, val_mean, val_std)
    train_norm, val_norm = normalize_of(setup.train_loader), normalize_of(setup.val_loader)
    order, order_shift, order_ratio, as_given = _channel_order(_pixel_stats(train_mean, train_std, train_norm),
                                                               _pixel_stats(val_mean, val_std, val_norm))
    expected = setup.data_config
    evidence = {
        "train_mean": [rounded(v) for v in train_mean], "train_std": [rounded(v) for v in train_std],
        "val_mean": [rounded(v) for v in val_mean], "val_std": [rounded(v) for v in val_std],
        "mean_shift_in_train_std": rounded(shift), "std_ratio": rounded(ratio),
        "train_normalize": train_norm, "val_normalize": val_norm,
        "pretrained": {"mean": list(expected["mean"]), "std": list(expected["std"])} if expected else None,
    }
    evidence["val_channel_order_matching_train"] = list(order)
    problems = []
    reordered = (list(order) != sorted(order) and as_given[0] > CHANNEL_ORDER_SHIFT
                 and order_shift + order_ratio - 1 < (as_given[0] + as_given[1] - 1) / CHANNEL_ORDER_GAIN)
    if reordered:
        problems.append(
            f"validation channels come in another order than training: validation's channels {list(order)} match "
            f"training's pixels (mean shift {order_shift:.2f} train std, against {as_given[0]:.2f} as given; BGR "
            "read for RGB?)"
        )
    elif shift > MEAN_SHIFT_LIMIT or ratio > STD_RATIO_LIMIT:
        problems.append(
            f"train and validation inputs have different statistics (mean shift {shift:.2f} train std, "
            f"std ratio {ratio:.2f}; accepted up to {MEAN_SHIFT_LIMIT} and {STD_RATIO_LIMIT})"
        )
    if train_norm and val_norm and not _same_stats(train_norm, val_norm):
        problems.append(f"train is normalised with {train_norm} but validation with {val_norm}")
    if expected:
        for split, norm in (("train", train_norm), ("validation", val_norm)):
            if norm and not _same_stats(norm, expected, tolerance=0.02):
                problems.append(
                    f"{split} is normalised with mean {norm['mean']} std {norm['std']}, but the pretrained weights "
                    f"expect mean {_rounded_list(expected['mean'])} std {_rounded_list(expected['std'])}"
                )
        if not train_norm and min(train_min, val_min) >= 0 and max(train_max, val_max) <= 1:
            problems.append("inputs lie in [0, 1]: they are not normalised with the pretrained mean/std")
    fix = ("normalise train and validation with the same mean/std, the pretrained config's "
           "(models.pretrained_data_config / timm.data.resolve_data_config)")
    if reordered:
        fix = ("load validation images in the channel order training uses (RGB: PIL, or cv2.cvtColor(image, "
               "cv2.COLOR_BGR2RGB) after cv2.imread); " + fix)
    if problems:
        return CheckResult("normalisation", "problem", "; ".join(problems), evidence, fix)
    return CheckResult(
        "normalisation", "ok",
        f"train and validation agree (mean shift {shift:.2f} train std, std ratio {ratio:.2f})"
        + (" and match the pretrained mean/std" if expected and train_norm else ""),
        evidence,
    )


def _disagreement(train_mean, train_std, val_mean, val_std) -> tuple[float, float]:
    """(largest mean shift in train standard deviations, largest std ratio) over the channels."""
    shift = max(abs(t - v) / max(s, 1e-6) for t, v, s in zip(train_mean, val_mean, train_std))
    ratio = max(max(t, v, 1e-6) / max(min(t, v), 1e-6) for t, v in zip(train_std, val_std))
    return shift, ratio


def _pixel_stats(mean, std, normalize: dict | None) -> tuple[list[float], list[float]]:
    """Per-channel mean/std before the split's own Normalize (where one is found), so that each channel is compared
    as a pixel, whatever constants normalised it."""
    if not normalize or len(normalize["mean"]) != len(mean):
        return list(mean), list(std)
    return ([m * s + nm for m, s, nm in zip(mean, normalize["std"], normalize["mean"])],
            [v * s for v, s in zip(std, normalize["std"])])


def _channel_order(train: tuple[list, list], val: tuple[list, list]):
    """(the order of validation channels that best matches training's, its mean shift and std ratio, and
    (shift, ratio) as given), on pixel statistics."""
    as_given = _disagreement(*train, *val)
    order, shift, ratio = min(
        ((order, *_disagreement(*train, [val[0][c] for c in order], [val[1][c] for c in order]))
         for order in itertools.permutations(range(len(val[0])))), key=lambda found: found[1] + found[2] - 1)
    return order, shift, ratio, as_given


def _rounded_list(values) -> list[float]:
    return [round(float(v), 4) for v in values]


def _same_stats(a: dict, b: dict, tolerance: float = 1e-3) -> bool:
    return all(
        len(a[key]) == len(b[key]) and all(abs(float(x) - float(y)) <= tolerance for x, y in zip(a[key], b[key]))
        for key in ("mean", "std")
    )
