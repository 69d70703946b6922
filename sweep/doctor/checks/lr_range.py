"""The LR range test (fastai's lr_find) through the setup's own epoch loop: the training loss against an
exponentially growing lr, the lr range where it falls fastest, and the run's own lr held against it (with the margin
a second test measures, and a short run at that lr to see whether the loss falls there)."""

from __future__ import annotations

import math
from typing import Any, Callable

from optuna.distributions import FloatDistribution

from sweep.doctor.findings import CheckResult, rounded
from sweep.doctor.probes import batches, cycle
from sweep.doctor.setup import Setup
from sweep.doctor.training import FewBatches, LossRecorder, Snapshot, TrainEpochError, run_epoch, training_optimizer

# An lr this many times outside the suggested range, times how far the suggestion moves between two tests, is flagged.
OUTSIDE_FACTOR = 10
# At the run's own lr, held, the loss over the last pass of FALL_BATCHES batches must be this share below the first.
FALLING_SHARE = 0.02
FALL_BATCHES, FALL_STEPS = 4, 16


def _smoothed(losses: list[float], beta: float = 0.9) -> list[float]:
    """fastai's bias-corrected exponential moving average of the loss."""
    average, out = 0.0, []
    for step, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta ** (step + 1)))
    return out


def _range_curve(setup: Setup, optimizer, steps: int, start_lr: float, end_lr: float,
                 progress: Callable[[str], None] | None) -> tuple[list[float], list[float], bool]:
    """(lrs, smoothed losses, diverged): one epoch of the setup's loop whose lr grows before every batch, cut
    short once the loss is 4x its best or not finite."""
    lrs: list[float] = []
    with Snapshot(setup), LossRecorder(setup.model) as recorder:
        def diverging() -> bool:
            curve = _smoothed(recorder.losses)
            if not curve:
                return False
            return not math.isfinite(curve[-1]) or (len(curve) > steps // 10 + 1 and curve[-1] > 4 * min(curve))

        def before_batch(step: int) -> bool:
            if diverging():
                return False
            if progress and step and step % max(1, steps // 4) == 0 and recorder.losses:
                loss = _smoothed(recorder.losses)[-1]
                progress(f"lr range test: step {step}/{steps}, lr {lrs[-1]:.2g}, loss {loss:.3f}")
            lrs.append(start_lr * (end_lr / start_lr) ** (step / (steps - 1)))
            for group in optimizer.param_groups:
                group["lr"] = lrs[-1]
            return True

        def batches():
            for images, labels in cycle(setup.train_loader, steps):
                recorder.expect(labels)
                yield images, labels

        try:
            run_epoch(setup, FewBatches(setup.train_loader, batches(), steps, before_batch), optimizer, hold_lr=True)
        except TrainEpochError:
            if not diverging():  # a loop that refuses a blown-up loss ends the test as the blow-up would
                raise
    raw = recorder.losses[: len(lrs)]
    finite = [loss for loss in raw if math.isfinite(loss)]
    diverged = len(finite) < len(raw) or len(raw) < steps
    return lrs[: len(finite)], _smoothed(finite), diverged


def _suggestion(setup: Setup, optimizer, steps: int, start_lr: float, end_lr: float,
                progress: Callable[[str], None] | None) -> dict:
    """One range test: its curve, and where the loss falls fastest and is lowest (``range`` None when it never fell)."""
    lrs, losses, diverged = _range_curve(setup, optimizer, steps, start_lr, end_lr, progress)
    found: dict[str, Any] = {"lrs": lrs, "losses": losses, "diverged": diverged, "range": None}
    skip = max(1, len(losses) // 10)
    if len(losses) < skip + 3 or min(losses[skip:]) > 0.95 * losses[skip]:
        return found
    index_min = skip + min(range(len(losses) - skip), key=lambda i: losses[skip + i])
    slopes = [(losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i])) for i in range(skip, index_min)]
    index_steep = skip + min(range(len(slopes)), key=slopes.__getitem__) if slopes else index_min
    lr_steep, lr_min = lrs[index_steep], lrs[index_min]
    low, high = _one_digit(min(lr_steep, lr_min / 10) / 3), _one_digit(lr_min / 3)
    found.update(steep=lr_steep, minimum=lr_min, range=(min(low, high / 3), high))
    return found


def check_lr_range(setup: Setup, steps: int = 100, start_lr: float = 1e-7, end_lr: float = 10.0,
                   progress: Callable[[str], None] | None = None) -> CheckResult:
    """Loss against an exponentially growing lr: the lr range where the loss falls fastest; the run's own lr far
    outside it is tested again (a second range test measures how far the suggestion moves) and a problem only when
    a short run at that lr does not make the loss fall."""
    steps = max(steps, 5)
    optimizer = training_optimizer(setup)
    if optimizer is None:
        return CheckResult("lr_range", "ok", "nothing trains: no lr to suggest", {})
    own_lr = _own_lr(setup, optimizer)
    test = _suggestion(setup, optimizer, steps, start_lr, end_lr, progress)
    lrs = test["lrs"]
    curve = [[float(f"{lr:.4g}"), rounded(loss)] for lr, loss in zip(lrs, test["losses"])]
    evidence: dict[str, Any] = {"steps_run": len(lrs), "start_lr": start_lr, "end_lr": end_lr, "own_lr": own_lr,
                                "curve": curve[:: max(1, len(lrs) // 40)]}
    if test["range"] is None:
        return CheckResult(
            "lr_range", "warning",
            f"the training loss did not fall at any lr from {start_lr:g} to {end_lr:g} in {len(lrs)} steps", evidence,
            "check that labels match images and that some layers train; or run more steps (--lr-steps)",
        )
    low, high = test["range"]
    evidence.update({"lr_steepest": float(f"{test['steep']:.3g}"), "lr_at_min_loss": float(f"{test['minimum']:.3g}"),
                     "suggested_lr_range": [low, high]})
    message = (f"loss falls fastest at lr {test['steep']:.2g} and is lowest at {test['minimum']:.2g}: "
               f"search lr in {low:g}:{high:g}")
    findings = []
    if own_lr and not low / OUTSIDE_FACTOR <= own_lr <= high * OUTSIDE_FACTOR:
        findings.append(_own_lr_finding(setup, optimizer, own_lr, test, steps, start_lr, end_lr, evidence))
    lr_space = setup.sweep.config.space["lr"] if setup.sweep is not None else None
    if isinstance(lr_space, FloatDistribution):
        evidence["sweep_lr_range"] = [lr_space.low, lr_space.high]
        if lr_space.high < low or lr_space.low > high:
            findings.append(("warning", f"the sweep searches {lr_space.low:g}:{lr_space.high:g}",
                             f"sweep start --lr {low:g}:{high:g}"))
    findings = [finding for finding in findings if finding]
    if not findings:
        return CheckResult("lr_range", "ok", message + _inside(own_lr, setup, evidence), evidence)
    verdict = "problem" if any(verdict == "problem" for verdict, _, _ in findings) else "warning"
    return CheckResult("lr_range", verdict, message + ", but " + "; ".join(text for _, text, _ in findings), evidence,
                       "; ".join(fix for _, _, fix in findings))


def _own_lr(setup: Setup, optimizer) -> float | None:
    """The lr the run trains at: the sweep's baseline, or the optimizer's before any scheduler step (its peak for a
    cyclic schedule, which keeps it as max_lr)."""
    if setup.sweep is not None:
        return float(setup.sweep.params["lr"])
    if optimizer is not setup.optimizer:
        return None
    group = optimizer.param_groups[0]
    return float(group.get("max_lr") or group.get("initial_lr") or group["lr"])


def _who(setup: Setup) -> str:
    return "the baseline lr" if setup.sweep is not None else "the optimizer's lr"


def _inside(own_lr: float | None, setup: Setup, evidence: dict) -> str:
    factor = OUTSIDE_FACTOR * evidence.get("suggestion_spread", 1.0)
    return f"; {_who(setup)} {own_lr:g} is within {factor:.3g}x of it" if own_lr else ""


def _own_lr_finding(setup: Setup, optimizer, own_lr: float, test: dict, steps: int, start_lr: float, end_lr: float,
                    evidence: dict) -> tuple[str, str, str] | None:
    """(verdict, text, fix) for the run's own lr outside the suggestion: a second range test measures how far the
    suggestion moves between tests (its spread widens the margin), and a short run at that lr decides the verdict: a
    problem when the loss does not fall there (a warning for a sweep's baseline, since the sweep searches the lr)."""
    # half the steps: a shorter test moves more, which only widens the margin, and the repeat costs half as much
    again = _suggestion(setup, optimizer, max(steps // 2, 5), start_lr, end_lr, None)
    low, high = test["range"]
    if again["range"] is not None:
        spread = max(_ratio(low, again["range"][0]), _ratio(high, again["range"][1]))
        low, high = min(low, again["range"][0]), max(high, again["range"][1])
    else:
        spread = 1.0
    margin = OUTSIDE_FACTOR * spread
    evidence.update({"suggestion_spread": round(spread, 3), "second_lr_range": again["range"],
                     "own_lr_margin": round(margin, 3)})
    if low / margin <= own_lr <= high * margin:
        return None
    falls, first_loss, last_loss = _falls_at(setup, optimizer, own_lr)
    evidence.update({"own_lr_first_loss": rounded(first_loss), "own_lr_last_loss": rounded(last_loss),
                     "own_lr_loss_falls": falls})
    where = f"{low / own_lr:.0f}x below" if own_lr < low else f"{own_lr / high:.0f}x above"
    text = (f"{_who(setup)} {own_lr:g} is {where} it (two range tests, the suggestion moving {spread:.2g}x between "
            f"them), and at that lr the training loss " + (f"fell from {first_loss:.3g} to {last_loss:.3g}"
                                                           if falls else f"did not fall ({first_loss:.3g} then "
                                                           f"{last_loss:.3g}) over {FALL_STEPS} steps"))
    fix = f"set the lr inside {low:g}:{high:g}"
    if setup.sweep is not None:
        fix += f" (--baseline lr={math.sqrt(low * high):.1g})"
    return ("problem" if not falls and setup.sweep is None else "warning"), text, fix


def _falls_at(setup: Setup, optimizer, lr: float) -> tuple[bool, float, float]:
    """(whether the training loss falls, the loss over the first pass, over the last) over FALL_STEPS steps of the
    setup's own loop at ``lr``, held, cycling FALL_BATCHES batches so the passes are comparable."""
    sample = batches(setup.train_loader, FALL_BATCHES)
    if not sample:
        return True, math.nan, math.nan
    with Snapshot(setup), LossRecorder(setup.model) as recorder:
        base = optimizer.param_groups[0]["lr"] or 1.0
        for group in optimizer.param_groups:  # keeps the ratios between groups
            group["lr"] = lr * (group["lr"] / base if base else 1.0)

        def feed():
            for step in range(FALL_STEPS):
                images, labels = sample[step % len(sample)]
                recorder.expect(labels)
                yield images, labels

        try:
            run_epoch(setup, FewBatches(setup.train_loader, feed(), FALL_STEPS), optimizer, hold_lr=True)
        except TrainEpochError:
            pass  # a loop that refuses a blown-up loss: the losses so far decide
    losses, passes = recorder.losses, len(sample)
    if len(losses) < 2 * passes or not all(math.isfinite(loss) for loss in losses):
        return False, (losses[0] if losses else math.nan), (losses[-1] if losses else math.nan)
    first, last = sum(losses[:passes]) / passes, sum(losses[-passes:]) / passes
    return last < (1 - FALLING_SHARE) * first, first, last


def _ratio(a: float, b: float) -> float:
    return max(a, b) / min(a, b) if min(a, b) > 0 else 1.0


def _one_digit(value: float) -> float:
    return float(f"{value:.1g}")
