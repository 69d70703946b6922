"""The plateau rule: a validation loss that over ``patience`` epochs does not beat its best by ``min_delta``
(relative), as in ``ReduceLROnPlateau(mode="min", threshold_mode="rel")``; pruning and analysis both judge by it."""

from __future__ import annotations


def epochs_to_judge(patience: int) -> int:
    """The fewest epochs a run needs for a verdict: one to set a best, ``patience`` more to see it stall or not."""
    return patience + 1


def improves(new_best: float, best: float, min_delta: float) -> bool:
    # ReduceLROnPlateau(mode="min", threshold_mode="rel"): better means below best * (1 - threshold).
    return new_best < best - abs(best) * min_delta


def best_so_far(val: list[float]) -> list[float]:
    running: list[float] = []
    for value in val:
        running.append(min(value, running[-1]) if running else value)
    return running


def stalled_windows(val: list[float], patience: int, min_delta: float) -> list[bool]:
    """For each epoch with ``patience`` epochs after it: did those epochs fail to beat the best so far?"""
    best = best_so_far(val)
    return [
        not improves(min(val[start + 1 : start + 1 + patience]), best[start], min_delta)
        for start in range(len(val) - patience)
    ]


def stall_start(stalled: list[bool]) -> int:
    """Index of the first window of the stall that reaches the end, or of the last window if none does."""
    start = len(stalled) - 1
    if stalled[start]:
        while start > 0 and stalled[start - 1]:
            start -= 1
    return start


def plateau_epoch(val_losses: list[float], *, patience: int, min_delta: float) -> int | None:
    """Epoch (1-based position in ``val_losses``) from which the curve is still stalled at its end, or None.

    None while the curve is too short to judge (fewer than ``epochs_to_judge`` values) or still improving.
    """
    val = [float(value) for value in val_losses]
    if len(val) < epochs_to_judge(patience):
        return None
    stalled = stalled_windows(val, patience, min_delta)
    return stall_start(stalled) + 1 if stalled[-1] else None
