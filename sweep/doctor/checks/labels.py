"""Labels are sane: in the model's output range, balanced alike in both splits, and no image in both splits."""

from __future__ import annotations

from collections import Counter

from sweep.doctor.findings import CheckResult, rounded
from sweep.doctor.probes import first_items, raw_hashes, targets
from sweep.doctor.setup import Setup
from sweep.doctor.training import num_outputs

# Shared train/val images up to this share of the validation set are a warning, above it a problem.
DUPLICATE_PROBLEM_SHARE = 0.005


def check_labels(setup: Setup) -> CheckResult:
    """Labels in range, train/val class balance, no image in both train and validation."""
    from scipy.stats import chi2_contingency

    train_labels, val_labels = targets(setup.train_loader), targets(setup.val_loader)
    probe_images, _ = first_items(setup.val_loader, 2)
    outputs = num_outputs(setup, probe_images)
    out_of_range = sorted({label for label in train_labels + val_labels if not 0 <= label < outputs})
    train_counts, val_counts = Counter(train_labels), Counter(val_labels)
    unseen = sorted(set(val_counts) - set(train_counts))
    classes = sorted(set(train_counts) | set(val_counts))
    p_value = None
    if len(classes) > 1 and train_labels and val_labels:
        table = [[train_counts[c] for c in classes], [val_counts[c] for c in classes]]
        p_value = float(chi2_contingency(table)[1])
    train_hashes, how = raw_hashes(setup.train_loader)
    val_hashes, _ = raw_hashes(setup.val_loader)
    train_set = set(train_hashes)
    shared = sum(1 for h in val_hashes if h in train_set)
    evidence = {
        "model_outputs": outputs, "train_images": len(train_labels), "val_images": len(val_labels),
        "train_classes": len(train_counts), "val_classes": len(val_counts),
        "labels_out_of_range": out_of_range[:10], "val_classes_not_in_train": unseen[:10],
        "balance_p_value": rounded(p_value, 6) if p_value is not None else None,
        "shared_images": shared, "hashed": how,
    }
    problems, warnings_found = [], []
    if out_of_range:
        problems.append(f"labels {out_of_range[:5]} are outside 0..{outputs - 1} (the model has {outputs} outputs)")
    if unseen:
        problems.append(f"validation classes {unseen[:5]} never occur in training")
    if shared:
        share = shared / max(len(val_hashes), 1)
        text = f"{shared} validation image(s) ({share:.1%}) also in the training set"
        (problems if share > DUPLICATE_PROBLEM_SHARE else warnings_found).append(text)
    if p_value is not None and p_value < 1e-3:
        warnings_found.append(f"class balance differs between train and validation (chi-square p={p_value:.2g})")
    if problems or warnings_found:
        return CheckResult(
            "labels", "problem" if problems else "warning", "; ".join(problems + warnings_found), evidence,
            "split train and validation by image (no shared files), stratified by class, and give the head one "
            "output per class",
        )
    return CheckResult(
        "labels", "ok",
        f"{len(train_counts)} classes, labels in 0..{outputs - 1}, balance alike, no image in both splits "
        f"({len(train_hashes)} train / {len(val_hashes)} val hashed)",
        evidence,
    )
