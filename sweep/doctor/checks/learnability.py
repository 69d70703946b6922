"""Validation labels belong to their images: a linear probe (on the model's features, or on the raw images where
those do better) that predicts held-out training images well must predict validation images better than chance."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torch import nn

from sweep.doctor.findings import CheckResult, rounded
from sweep.doctor.probes import batches
from sweep.doctor.setup import Setup
from sweep.doctor.training import Snapshot

PROBE_IMAGES = 128  # per split: seconds at 32 px on a CPU, enough to tell a probe's accuracy from chance
RAW_SIZE = 8  # images pooled to 8x8 per channel: colour and layout, few enough features for 128 images
FOLDS = 4
# The probe must beat chance on held-out training images by this much before validation can be judged by it.
LEARNED_MARGIN = 0.25
# One-sided binomial p-values: how sure "learned on train", "no better than chance on val" and "val below train" are.
LEARNED_P, CHANCE_P, BELOW_P = 1e-3, 0.01, 1e-3


def _features(setup: Setup, loader) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """For up to PROBE_IMAGES images: the inputs of the model's last Linear layer (its logits where it has none), and
    the images themselves pooled to RAW_SIZE x RAW_SIZE, which carry the labels where the model's features are still
    random (no pretrained weights)."""
    model = setup.model
    head = next((module for module in reversed(list(model.modules())) if isinstance(module, nn.Linear)), None)
    captured: list[torch.Tensor] = []
    found, raw, labels = [], [], []
    handle = head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0])) if head else None
    try:
        with Snapshot(setup), torch.no_grad():
            model.eval()
            count = 0
            for images, batch_labels in batches(loader, PROBE_IMAGES):
                captured.clear()
                output = model(images.to(setup.device))
                features = captured[-1] if captured else output
                found.append(features.flatten(1).float().cpu())
                raw.append(nn.functional.adaptive_avg_pool2d(images.float(), RAW_SIZE).flatten(1)
                           if images.dim() == 4 else images.float().flatten(1))
                labels.append(batch_labels.flatten().cpu())
                count += len(batch_labels)
                if count >= PROBE_IMAGES:
                    break
    finally:
        if handle is not None:
            handle.remove()
    views = {"the model's features": torch.cat(found)[:PROBE_IMAGES].numpy(),
             "the raw images": torch.cat(raw)[:PROBE_IMAGES].numpy()}
    return views, torch.cat(labels)[:PROBE_IMAGES].numpy()


def _probe_accuracies(train_x, train_y, val_x, val_y) -> tuple[np.ndarray, np.ndarray] | None:
    """(held-out training predictions correct, validation predictions correct), or None with too few per class."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    smallest = min(Counter(train_y.tolist()).values())
    if smallest < 2 or len(set(train_y.tolist())) < 2:
        return None
    # closed form (ridge) rather than an iterative fit: a logistic regression on 2048 features took minutes on 2 cores
    probe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=10.0))
    folds = StratifiedKFold(n_splits=min(FOLDS, smallest), shuffle=True, random_state=0)
    held_out = cross_val_predict(probe, train_x, train_y, cv=folds)
    probe.fit(train_x, train_y)
    return held_out == train_y, probe.predict(val_x) == val_y


def check_learnability(setup: Setup) -> CheckResult:
    """Validation accuracy near chance while the same probe does well on held-out training images: the validation
    labels do not go with their images."""
    from scipy.stats import binomtest

    train_views, train_y = _features(setup, setup.train_loader)
    val_views, val_y = _features(setup, setup.val_loader)
    probes = {view: _probe_accuracies(train_views[view], train_y, val_views[view], val_y)
              for view in train_views if len(val_y) and train_views[view].shape[1] == val_views[view].shape[1]}
    probes = {view: result for view, result in probes.items() if result is not None}
    if not probes:
        return CheckResult("learnability", "ok", "too few images per class to probe (need 2 of each in training)",
                           {"train_images": len(train_y), "val_images": len(val_y)})
    # the view whose probe does best on held-out training images (validation plays no part in the choice)
    view = max(probes, key=lambda name: probes[name][0].mean())
    result = probes[view]
    train_correct, val_correct = result
    train_chance = max(Counter(train_y.tolist()).values()) / len(train_y)
    val_chance = max(Counter(val_y.tolist()).values()) / len(val_y)
    train_acc, val_acc = float(train_correct.mean()), float(val_correct.mean())
    n_train, n_val, k_train, k_val = len(train_y), len(val_y), int(train_correct.sum()), int(val_correct.sum())
    learned = (train_acc >= train_chance + LEARNED_MARGIN
               and binomtest(k_train, n_train, train_chance, alternative="greater").pvalue < LEARNED_P)
    at_chance = binomtest(k_val, n_val, val_chance, alternative="greater").pvalue > CHANCE_P
    below_train = binomtest(k_val, n_val, min(train_acc, 1 - 1e-9), alternative="less").pvalue < BELOW_P
    evidence = {"probe": f"ridge classifier on {view}", "train_images": n_train, "val_images": n_val,
                "train_heldout_acc_by_view": {name: rounded(float(found[0].mean())) for name, found in probes.items()},
                "train_heldout_acc": rounded(train_acc), "val_acc": rounded(val_acc),
                "train_chance": rounded(train_chance), "val_chance": rounded(val_chance)}
    if not learned:
        return CheckResult(
            "learnability", "ok",
            f"cannot tell: a linear probe on {view} reaches {train_acc:.0%} on held-out training images "
            f"(chance {train_chance:.0%}), too little to judge validation by", evidence,
        )
    if at_chance and below_train:
        return CheckResult(
            "learnability", "problem",
            f"validation accuracy {val_acc:.0%} is at chance ({val_chance:.0%}) while a linear probe on {view} "
            f"reaches {train_acc:.0%} on held-out training images: likely causes are labels not aligned "
            "with images in validation (shuffled apart), a different class order between the splits, or "
            "validation images unlike the training ones", evidence,
            "keep each validation image with its own label (shuffle images and labels together) and give both "
            "splits the same class-to-index mapping",
        )
    return CheckResult(
        "learnability", "ok",
        f"a linear probe on {view}: {val_acc:.0%} on validation, {train_acc:.0%} on held-out training "
        f"images (chance {val_chance:.0%})", evidence,
    )
