"""Training batches mix the classes: the first batches the train loader serves hold about as many classes as batches
drawn at random would (a class-sorted set served in order gives each batch one class)."""

from __future__ import annotations

from collections import Counter

from sweep.doctor.findings import CheckResult, rounded
from sweep.doctor.probes import batches, targets
from sweep.doctor.setup import Setup

FIRST_BATCHES = 8
# Batches holding at most this share of the classes random batches would hold are sorted, not mixed.
SORTED_SHARE = 0.5


def _expected_classes(counts: Counter, batch_size: int) -> float:
    """Mean number of distinct classes in a batch drawn at random from a set with these class counts."""
    total = sum(counts.values())
    return sum(1 - (1 - count / total) ** batch_size for count in counts.values())


def check_train_order(setup: Setup, first_batches: int = FIRST_BATCHES) -> CheckResult:
    """The first training batches hold as many classes as random batches of the set would."""
    served = [labels.flatten().tolist() for _, labels in batches(setup.train_loader, first_batches)]
    counts = Counter(targets(setup.train_loader))
    if not served or len(counts) < 2:
        return CheckResult("train_order", "ok", "one class or no batches: no order to check", {"classes": len(counts)})
    batch_size = max(len(labels) for labels in served)
    expected = _expected_classes(counts, batch_size)
    seen = sum(len(set(labels)) for labels in served) / len(served)
    evidence = {"batches": len(served), "batch_size": batch_size, "classes": len(counts),
                "classes_per_batch": rounded(seen), "classes_per_random_batch": rounded(expected),
                "first_labels": served[0][:32]}
    if expected >= 1.5 and seen <= SORTED_SHARE * expected:
        return CheckResult(
            "train_order", "problem",
            f"the first {len(served)} training batches hold {seen:.1f} classes each where random batches of "
            f"{batch_size} hold {expected:.1f}: the training set is served sorted by class, so each step pulls the "
            "model toward one class", evidence,
            "shuffle the training loader (DataLoader(..., shuffle=True) or a random sampler)",
        )
    return CheckResult(
        "train_order", "ok",
        f"the first {len(served)} training batches hold {seen:.1f} classes each (random batches: {expected:.1f})",
        evidence,
    )
