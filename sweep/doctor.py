"""Pipeline checks that no hyperparameter fixes: eval determinism, normalisation, frozen stages, LR schedule,
labels, and an LR range test; run on the sweep's own model and data or on the user's (``--module``)."""

from __future__ import annotations

import copy
import datetime
import hashlib
import importlib
import itertools
import logging
import math
import os
import sys
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.utils.data import default_collate

log = logging.getLogger("sweep")

VERDICTS = ("ok", "warning", "problem")
SYMBOLS = {"ok": "✓", "warning": "!", "problem": "✗"}
DOCTOR_ATTR = "doctor"
QUICK_CHECKS = ("eval_deterministic", "normalisation", "frozen_stages", "lr_schedule", "labels")
ALL_CHECKS = QUICK_CHECKS + ("lr_range",)

# A validation batch of this many images is enough to see augmentation or batch-dependent outputs.
PROBE_IMAGES = 16
# Train/val normalised statistics differing by more than this many train standard deviations disagree.
MEAN_SHIFT_LIMIT = 0.5
STD_RATIO_LIMIT = 1.5
FROZEN_STEPS = 3
SIMULATED_BATCHES = 2
MAX_HASHED = 20_000
# Shared train/val images up to this share of the validation set are a warning, above it a problem.
DUPLICATE_PROBLEM_SHARE = 0.005


class DoctorSetupError(ValueError):
    """``--module`` names nothing importable, or its function returns something we cannot check."""


@dataclass
class Setup:
    """What the checks run on: a model, its loaders and optionally its optimizer, scheduler and epoch loop."""

    model: nn.Module
    train_loader: Iterable
    val_loader: Iterable
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any = None
    # The user's epoch: train_epoch(model, train_loader, optimizer, scheduler), stepping the scheduler as they do.
    train_epoch: Callable | None = None
    data_config: dict | None = None  # mean/std the pretrained weights expect
    epochs: int = 8
    source: str = ""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # The sweep's own config: every scheduler of the search space is simulated through sweep.train.fit.
    sweep_schedulers: tuple[str, ...] = ()
    sweep_optimizer: str | None = None
    sweep_lr: float | None = None
    sweep_weight_decay: float = 0.0
    sweep_min_delta: float = 0.01
    sweep_lr_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class CheckResult:
    name: str
    verdict: str  # ok | warning | problem
    message: str
    evidence: dict
    fix: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def worst(verdicts: Iterable[str]) -> str:
    return max(verdicts, key=VERDICTS.index, default="ok")


# ---------------------------------------------------------------- helpers


def _batch(items: list) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = default_collate(items)[:2]
    return images, torch.as_tensor(labels)


def _first_items(loader, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` validation samples, read from the data set so that a shuffling loader does not matter."""
    dataset = getattr(loader, "dataset", None)
    if dataset is not None and hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        return _batch([dataset[index][:2] for index in range(min(count, len(dataset)))])
    images, labels = next(iter(loader))[:2]
    return images[:count], torch.as_tensor(labels)[:count]


def _batches(loader, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(images, torch.as_tensor(labels)) for images, labels, *_ in itertools.islice(loader, count)]


class _Snapshot:
    """Model, optimizer and scheduler state (and every module's train flag), put back after a check changed them."""

    def __init__(self, setup: Setup):
        self.setup = setup
        self.model_state = copy.deepcopy(setup.model.state_dict())
        self.modes = {module: module.training for module in setup.model.modules()}
        self.optimizer_state = copy.deepcopy(setup.optimizer.state_dict()) if setup.optimizer else None
        scheduler = setup.scheduler
        self.scheduler_state = copy.deepcopy(scheduler.state_dict()) if hasattr(scheduler, "state_dict") else None

    def restore(self) -> None:
        self.setup.model.load_state_dict(self.model_state)
        for module, mode in self.modes.items():
            module.training = mode  # set directly: a module may override train() (frozen BN does)
        if self.optimizer_state is not None:
            self.setup.optimizer.load_state_dict(self.optimizer_state)
        if self.scheduler_state is not None:
            self.setup.scheduler.load_state_dict(self.scheduler_state)

    def __enter__(self) -> "_Snapshot":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


def _to(device, images, labels):
    return images.to(device), labels.to(device)


def _transforms_of(loader) -> list:
    """Transform objects of the loader's data set (through Subset-like wrappers), outermost first."""
    found, dataset, seen = [], getattr(loader, "dataset", None), 0
    while dataset is not None and seen < 5:
        transform = getattr(dataset, "transform", None)
        if transform is not None:
            found.extend(_flatten(transform))
        dataset, seen = getattr(dataset, "dataset", None) or getattr(dataset, "base", None), seen + 1
    return found


def _flatten(transform) -> list:
    inner = getattr(transform, "transforms", None)
    if isinstance(inner, (list, tuple)):
        return [leaf for item in inner for leaf in _flatten(item)]
    return [transform]


def _normalize_of(loader) -> dict | None:
    for transform in _transforms_of(loader):
        if type(transform).__name__ == "Normalize" and hasattr(transform, "mean"):
            return {"mean": [round(float(v), 4) for v in transform.mean], "std": [round(float(v), 4) for v in transform.std]}
    return None


def _random_transforms(loader) -> list[str]:
    names = [type(transform).__name__ for transform in _transforms_of(loader)]
    return [name for name in names if name.startswith("Random") or name in ("ColorJitter", "RandAugment", "AutoAugment", "TrivialAugmentWide", "AugMix")]


def _num_outputs(setup: Setup, images: torch.Tensor) -> int:
    with _Snapshot(setup), torch.no_grad():
        setup.model.eval()
        return int(setup.model(images[:2].to(setup.device)).shape[1])


def _round(value: float, digits: int = 4) -> float | None:
    return round(float(value), digits) if math.isfinite(float(value)) else None


# ---------------------------------------------------------------- checks


def check_eval_deterministic(setup: Setup) -> CheckResult:
    """The same validation batch through the eval pipeline twice gives the same loss."""
    images_a, labels = _first_items(setup.val_loader, PROBE_IMAGES)
    images_b, _ = _first_items(setup.val_loader, PROBE_IMAGES)
    input_diff = float((images_a.float() - images_b.float()).abs().max())
    model, loss_fn = setup.model, nn.CrossEntropyLoss()
    with _Snapshot(setup), torch.no_grad():
        model.eval()
        still_training = [
            name or type(model).__name__
            for name, module in model.named_modules()
            if module.training and isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.Dropout, nn.modules.dropout._DropoutNd))
        ]
        images, targets = _to(setup.device, images_a, labels)
        first = model(images).float()
        second = model(images).float()
        half = max(1, len(images) // 2)
        alone = model(images[:half]).float()
        loss_first, loss_second = float(loss_fn(first, targets)), float(loss_fn(second, targets))
    scale = 1.0 + float(first.abs().max())
    repeat_diff = float((first - second).abs().max())
    batch_diff = float((first[:half] - alone).abs().max()) if len(images) > 1 else 0.0
    evidence = {
        "images": len(images), "input_max_abs_diff": _round(input_diff, 6),
        "loss_first": _round(loss_first, 6), "loss_second": _round(loss_second, 6),
        "logit_max_abs_diff": _round(repeat_diff, 6), "batch_dependence": _round(batch_diff, 6),
        "modules_training_after_eval": still_training[:10],
        "random_val_transforms": _random_transforms(setup.val_loader),
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


def _channel_stats(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[list[float], list[float], float, float]:
    images = torch.cat([images.float() for images, _ in batches])
    per_channel = images.transpose(0, 1).reshape(images.shape[1], -1)
    return per_channel.mean(1).tolist(), per_channel.std(1).tolist(), float(images.min()), float(images.max())


def check_normalisation(setup: Setup, batches: int = 4) -> CheckResult:
    """Per-channel mean/std of normalised train and validation batches agree, and with the pretrained config."""
    train_mean, train_std, train_min, train_max = _channel_stats(_batches(setup.train_loader, batches))
    val_mean, val_std, val_min, val_max = _channel_stats(_batches(setup.val_loader, batches))
    shift = max(abs(t - v) / max(s, 1e-6) for t, v, s in zip(train_mean, val_mean, train_std))
    ratio = max(max(t, 1e-6) / max(v, 1e-6) for t, v in zip(train_std, val_std))
    ratio = max(ratio, max(max(v, 1e-6) / max(t, 1e-6) for t, v in zip(train_std, val_std)))
    train_norm, val_norm = _normalize_of(setup.train_loader), _normalize_of(setup.val_loader)
    expected = setup.data_config
    evidence = {
        "train_mean": [_round(v) for v in train_mean], "train_std": [_round(v) for v in train_std],
        "val_mean": [_round(v) for v in val_mean], "val_std": [_round(v) for v in val_std],
        "mean_shift_in_train_std": _round(shift), "std_ratio": _round(ratio),
        "train_normalize": train_norm, "val_normalize": val_norm,
        "pretrained": {"mean": list(expected["mean"]), "std": list(expected["std"])} if expected else None,
    }
    problems = []
    if shift > MEAN_SHIFT_LIMIT or ratio > STD_RATIO_LIMIT:
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
    if problems:
        return CheckResult("normalisation", "problem", "; ".join(problems), evidence, fix)
    return CheckResult(
        "normalisation", "ok",
        f"train and validation agree (mean shift {shift:.2f} train std, std ratio {ratio:.2f})"
        + (" and match the pretrained mean/std" if expected and train_norm else ""),
        evidence,
    )


def _rounded_list(values) -> list[float]:
    return [round(float(v), 4) for v in values]


def _same_stats(a: dict, b: dict, tolerance: float = 1e-3) -> bool:
    return all(
        len(a[key]) == len(b[key]) and all(abs(float(x) - float(y)) <= tolerance for x, y in zip(a[key], b[key]))
        for key in ("mean", "std")
    )


def _frozen_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules whose own parameters all have requires_grad=False."""
    frozen = []
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        if own and not any(p.requires_grad for p in own):
            frozen.append((name, module))
    return frozen


def _train_steps(setup: Setup, steps: int, optimizer: torch.optim.Optimizer) -> None:
    model, loss_fn = setup.model, nn.CrossEntropyLoss()
    model.train()
    for images, labels in _cycle(setup.train_loader, steps):
        images, labels = _to(setup.device, images, labels)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), labels).backward()
        optimizer.step()


def _cycle(loader, steps: int):
    count = 0
    while count < steps:
        empty = True
        for images, labels, *_ in loader:
            empty = False
            yield images, torch.as_tensor(labels)
            count += 1
            if count >= steps:
                return
        if empty:
            return


def _fallback_optimizer(model: nn.Module) -> torch.optim.Optimizer | None:
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(trainable, lr=0.01, momentum=0.9) if trainable else None


def check_frozen_stages(setup: Setup, steps: int = FROZEN_STEPS) -> CheckResult:
    """Frozen parameters and the BatchNorm running stats of frozen modules do not change over a few steps."""
    frozen = _frozen_modules(setup.model)
    if not frozen:
        return CheckResult("frozen_stages", "ok", "no frozen layers: every parameter trains", {"frozen_modules": 0})
    before = {name: {key: value.detach().clone() for key, value in itertools.chain(
        module.named_parameters(recurse=False), module.named_buffers(recurse=False))} for name, module in frozen}
    with _Snapshot(setup) as snapshot:
        optimizer = setup.optimizer or _fallback_optimizer(setup.model)
        if optimizer is None:
            return CheckResult("frozen_stages", "ok", "every layer is frozen: nothing trains", {"frozen_modules": len(frozen)})
        _train_steps(setup, steps, optimizer)
        changed_params, drifting_bn = [], []
        for name, module in frozen:
            for key, value in itertools.chain(module.named_parameters(recurse=False), module.named_buffers(recurse=False)):
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


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _expected_schedule(optimizer, scheduler, epochs: int, losses: list[float] | None = None) -> list[float]:
    """The lr at the start of each epoch (and after the last) when the scheduler is stepped once per epoch."""
    lrs = [_lr(optimizer)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()": no training here on purpose
        for epoch in range(epochs):
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(losses[epoch] if losses else 1.0)
            else:
                scheduler.step()
            lrs.append(_lr(optimizer))
    return lrs


def _same_schedule(actual: list[float], expected: list[float]) -> bool:
    return len(actual) == len(expected) and all(math.isclose(a, e, rel_tol=1e-6, abs_tol=1e-12) for a, e in zip(actual, expected))


def _fmt_lrs(lrs: list[float]) -> str:
    return " → ".join(f"{lr:.3g}" for lr in lrs)


def check_lr_schedule(setup: Setup) -> CheckResult:
    """The learning rate moves as the scheduler says over a simulated run."""
    if setup.sweep_schedulers:
        return _check_sweep_schedules(setup)
    optimizer, scheduler, epochs = setup.optimizer, setup.scheduler, setup.epochs
    if optimizer is None or scheduler is None:
        lr = f" at {_lr(optimizer):.3g}" if optimizer else ""
        return CheckResult("lr_schedule", "ok", f"no LR scheduler given: the lr stays constant{lr}",
                           {"scheduler": None})
    with _Snapshot(setup) as snapshot:
        expected = _expected_schedule(optimizer, scheduler, epochs)
        snapshot.restore()
        evidence: dict[str, Any] = {"scheduler": type(scheduler).__name__, "epochs": epochs,
                                    "expected_lr": [float(f"{lr:.6g}") for lr in expected]}
        if setup.train_epoch is None:
            moves = not all(math.isclose(lr, expected[0]) for lr in expected)
            if not moves:
                return CheckResult(
                    "lr_schedule", "warning",
                    f"{type(scheduler).__name__} keeps the lr at {expected[0]:.3g} over {epochs} epochs", evidence,
                    "choose a schedule that changes the lr within the run (e.g. CosineAnnealingLR(T_max=epochs))",
                )
            return CheckResult(
                "lr_schedule", "ok",
                f"{type(scheduler).__name__} stepped per epoch gives {_fmt_lrs(expected[:3])} … {expected[-1]:.3g} "
                "(return train_epoch from --module to check that your loop steps it)", evidence,
            )
        batches = _batches(setup.train_loader, SIMULATED_BATCHES)
        start_step = getattr(scheduler, "last_epoch", None)
        actual = [_lr(optimizer)]
        for _ in range(epochs):
            setup.train_epoch(setup.model, batches, optimizer, scheduler)
            actual.append(_lr(optimizer))
        steps = None if start_step is None else scheduler.last_epoch - start_step
    evidence.update({"actual_lr": [float(f"{lr:.6g}") for lr in actual], "scheduler_steps": steps})
    if steps == 0 or (steps is None and all(math.isclose(lr, actual[0]) for lr in actual)
                      and not all(math.isclose(lr, expected[0]) for lr in expected)):
        return CheckResult(
            "lr_schedule", "problem",
            f"the scheduler is never stepped: over {epochs} simulated epochs the lr stayed at {actual[0]:.3g}, "
            f"where {type(scheduler).__name__} would take it to {expected[-1]:.3g}", evidence,
            "call scheduler.step() once per epoch (after optimizer.step(); ReduceLROnPlateau: scheduler.step(val_loss))",
        )
    if steps is not None and steps > epochs:
        return CheckResult(
            "lr_schedule", "warning",
            f"the scheduler was stepped {steps} times in {epochs} epochs of {len(batches)} batches: per batch, "
            f"so it ran {_fmt_lrs(actual[:3])} … {actual[-1]:.3g}", evidence,
            "step it once per epoch, or size the schedule in batches (T_max=epochs*len(train_loader))",
        )
    if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and not _same_schedule(actual, expected):
        return CheckResult(
            "lr_schedule", "warning",
            f"the lr ran {_fmt_lrs(actual)} where the scheduler says {_fmt_lrs(expected)}", evidence,
            "step the scheduler exactly once per epoch and do not set the lr by hand",
        )
    return CheckResult(
        "lr_schedule", "ok",
        f"{type(scheduler).__name__} stepped once per epoch: lr {_fmt_lrs(actual[:3])} … {actual[-1]:.3g} as expected",
        evidence,
    )


def _check_sweep_schedules(setup: Setup) -> CheckResult:
    """Every scheduler of the sweep's space, run through sweep.train.fit on a stand-in model, follows its schedule."""
    from sweep.train import create_optimizer, create_scheduler, fit

    generator = torch.Generator().manual_seed(0)
    inputs, labels = torch.randn(8, 4, generator=generator), torch.randint(0, 2, (8,), generator=generator)
    loader = [(inputs[:4], labels[:4]), (inputs[4:], labels[4:])]
    evidence: dict[str, Any] = {"epochs": setup.epochs, "schedules": {}}
    wrong, constant = [], []
    for name in setup.sweep_schedulers:
        stand_in, shadow = nn.Linear(4, 2), nn.Linear(4, 2)
        make = lambda model: create_optimizer(model, setup.sweep_optimizer or "sgd", setup.sweep_lr or 0.01,
                                              setup.sweep_weight_decay)
        optimizer, shadow_optimizer = make(stand_in), make(shadow)
        scheduler = create_scheduler(optimizer, name, setup.epochs, setup.sweep_min_delta)
        records = fit(stand_in, loader, loader, epochs=setup.epochs, optimizer=optimizer, scheduler=scheduler,
                      device=torch.device("cpu"))
        actual = [record.lr for record in records] + [_lr(optimizer)]
        shadow_scheduler = create_scheduler(shadow_optimizer, name, setup.epochs, setup.sweep_min_delta)
        expected = (_expected_schedule(shadow_optimizer, shadow_scheduler, setup.epochs, [r.val_loss for r in records])
                    if shadow_scheduler else [_lr(shadow_optimizer)] * (setup.epochs + 1))
        evidence["schedules"][name] = {"actual_lr": [float(f"{lr:.6g}") for lr in actual],
                                       "expected_lr": [float(f"{lr:.6g}") for lr in expected]}
        if not _same_schedule(actual, expected):
            wrong.append(name)
        elif name != "none" and all(math.isclose(lr, actual[0]) for lr in actual) and name != "plateau":
            constant.append(name)
    if wrong:
        return CheckResult(
            "lr_schedule", "problem",
            f"the training loop does not step {', '.join(wrong)} as scheduled over {setup.epochs} epochs", evidence,
            "step the scheduler once per epoch in sweep.train.fit",
        )
    if constant:
        return CheckResult(
            "lr_schedule", "warning",
            f"{', '.join(constant)} leaves the lr unchanged over {setup.epochs} epochs", evidence,
            "run more epochs (--epochs) so that the schedule has room to act",
        )
    return CheckResult(
        "lr_schedule", "ok",
        f"{', '.join(setup.sweep_schedulers)}: the lr follows the schedule over a simulated {setup.epochs}-epoch run",
        evidence,
    )


def _targets(loader, limit_batches: int = 200) -> list[int]:
    dataset = getattr(loader, "dataset", None)
    targets = getattr(dataset, "targets", None)
    if targets is not None and dataset is not None and len(targets) == len(dataset):
        return [int(t) for t in targets]
    labels: list[int] = []
    for _, batch_labels in _batches(loader, limit_batches):
        labels.extend(int(t) for t in batch_labels.flatten())
    return labels


def _raw_hashes(loader) -> tuple[list[str], str]:
    """A hash per image before any transform where the data set lets us reach the raw image, else after it."""
    dataset = getattr(loader, "dataset", None)
    base, indices = getattr(dataset, "base", None), getattr(dataset, "indices", None)
    if base is not None and indices is not None:
        data = getattr(base, "data", None)
        if data is not None and hasattr(data, "__getitem__") and len(data) == len(base):
            return [_hash(data[i]) for i in list(indices)[:MAX_HASHED]], "raw"
        samples = getattr(base, "samples", None)
        if samples is not None:
            return [_file_hash(samples[i][0]) for i in list(indices)[:MAX_HASHED]], "raw"
        return [_hash(base[i][0]) for i in list(indices)[:MAX_HASHED]], "raw"
    if dataset is not None and getattr(dataset, "transform", None) is not None:
        saved = dataset.transform
        try:
            dataset.transform = None
            return [_hash(dataset[i][0]) for i in range(min(len(dataset), MAX_HASHED))], "raw"
        except Exception:
            pass
        finally:
            dataset.transform = saved
    hashes = []
    for images, _ in _batches(loader, MAX_HASHED):
        hashes.extend(_hash(image) for image in images)
    return hashes[:MAX_HASHED], "transformed"


def _hash(image) -> str:
    if hasattr(image, "tobytes") and hasattr(image, "size") and not isinstance(image, torch.Tensor):
        payload = image.tobytes() + repr(getattr(image, "size", "")).encode()
    elif isinstance(image, torch.Tensor):
        payload = image.detach().cpu().contiguous().numpy().tobytes()
    else:
        payload = bytes(memoryview(image))
    return hashlib.sha1(payload).hexdigest()


def _file_hash(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha1(handle.read()).hexdigest()


def check_labels(setup: Setup) -> CheckResult:
    """Labels in range, train/val class balance, no image in both train and validation."""
    from scipy.stats import chi2_contingency

    train_labels, val_labels = _targets(setup.train_loader), _targets(setup.val_loader)
    probe_images, _ = _first_items(setup.val_loader, 2)
    outputs = _num_outputs(setup, probe_images)
    out_of_range = sorted({label for label in train_labels + val_labels if not 0 <= label < outputs})
    train_counts, val_counts = Counter(train_labels), Counter(val_labels)
    unseen = sorted(set(val_counts) - set(train_counts))
    classes = sorted(set(train_counts) | set(val_counts))
    p_value = None
    if len(classes) > 1 and train_labels and val_labels:
        table = [[train_counts[c] for c in classes], [val_counts[c] for c in classes]]
        p_value = float(chi2_contingency(table)[1])
    train_hashes, how = _raw_hashes(setup.train_loader)
    val_hashes, _ = _raw_hashes(setup.val_loader)
    shared = sum(1 for h in val_hashes if h in set(train_hashes)) if val_hashes else 0
    evidence = {
        "model_outputs": outputs, "train_images": len(train_labels), "val_images": len(val_labels),
        "train_classes": len(train_counts), "val_classes": len(val_counts),
        "labels_out_of_range": out_of_range[:10], "val_classes_not_in_train": unseen[:10],
        "balance_p_value": _round(p_value, 6) if p_value is not None else None,
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


def check_lr_range(setup: Setup, steps: int = 100, start_lr: float = 1e-7, end_lr: float = 10.0,
                   progress: Callable[[str], None] | None = None) -> CheckResult:
    """Loss against an exponentially growing lr (fastai's lr_find): the lr range where the loss falls fastest."""
    steps = max(steps, 5)
    beta, smoothed, best = 0.9, 0.0, math.inf
    lrs, losses = [], []
    model, loss_fn = setup.model, nn.CrossEntropyLoss()
    with _Snapshot(setup):
        optimizer = setup.optimizer or _fallback_optimizer(model)
        if setup.sweep_optimizer:
            from sweep.train import create_optimizer

            optimizer = create_optimizer(model, setup.sweep_optimizer, start_lr, setup.sweep_weight_decay)
        if optimizer is None:
            return CheckResult("lr_range", "ok", "nothing trains: no lr to suggest", {})
        model.train()
        for step, (images, labels) in enumerate(_cycle(setup.train_loader, steps)):
            lr = start_lr * (end_lr / start_lr) ** (step / (steps - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            images, labels = _to(setup.device, images, labels)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(images), labels)
            value = float(loss.detach())
            if not math.isfinite(value):
                break
            loss.backward()
            optimizer.step()
            smoothed = beta * smoothed + (1 - beta) * value
            current = smoothed / (1 - beta ** (step + 1))
            lrs.append(lr)
            losses.append(current)
            best = min(best, current)
            if progress and (step + 1) % max(1, steps // 4) == 0:
                progress(f"lr range test: step {step + 1}/{steps}, lr {lr:.2g}, loss {current:.3f}")
            if step > steps // 10 and current > 4 * best:
                break
    evidence: dict[str, Any] = {"steps_run": len(lrs), "start_lr": start_lr, "end_lr": end_lr,
                                "curve": [[float(f"{lr:.4g}"), _round(loss)] for lr, loss in zip(lrs, losses)][:: max(1, len(lrs) // 40)]}
    skip = max(1, len(losses) // 10)
    if len(losses) < skip + 3 or min(losses[skip:]) > 0.95 * losses[skip]:
        return CheckResult(
            "lr_range", "warning",
            f"the training loss did not fall at any lr from {start_lr:g} to {end_lr:g} in {len(lrs)} steps", evidence,
            "check that labels match images and that some layers train; or run more steps (--lr-steps)",
        )
    index_min = skip + min(range(len(losses) - skip), key=lambda i: losses[skip + i])
    slopes = [(losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i])) for i in range(skip, index_min)]
    index_steep = skip + min(range(len(slopes)), key=slopes.__getitem__) if slopes else index_min
    lr_steep, lr_min = lrs[index_steep], lrs[index_min]
    low, high = _one_digit(min(lr_steep, lr_min / 10) / 3), _one_digit(lr_min / 3)
    low = min(low, high / 3)
    evidence.update({"lr_steepest": float(f"{lr_steep:.3g}"), "lr_at_min_loss": float(f"{lr_min:.3g}"),
                     "suggested_lr_range": [low, high]})
    message = f"loss falls fastest at lr {lr_steep:.2g} and is lowest at {lr_min:.2g}: search lr in {low:g}:{high:g}"
    if setup.sweep_lr_range:
        sweep_low, sweep_high = setup.sweep_lr_range
        evidence["sweep_lr_range"] = [sweep_low, sweep_high]
        if sweep_high < low or sweep_low > high:
            return CheckResult(
                "lr_range", "warning", message + f", but the sweep searches {sweep_low:g}:{sweep_high:g}", evidence,
                f"sweep start --lr {low:g}:{high:g}",
            )
    return CheckResult("lr_range", "ok", message, evidence)


def _one_digit(value: float) -> float:
    return float(f"{value:.1g}")


CHECKS: dict[str, Callable[[Setup], CheckResult]] = {
    "eval_deterministic": check_eval_deterministic,
    "normalisation": check_normalisation,
    "frozen_stages": check_frozen_stages,
    "lr_schedule": check_lr_schedule,
    "labels": check_labels,
}


def run_checks(setup: Setup, *, quick: bool = False, lr_steps: int = 100,
               progress: Callable[[str], None] | None = None) -> dict:
    """Run the checks on ``setup``; returns the report: source, overall verdict, counts, one result per check."""
    results = []
    for name in ALL_CHECKS if not quick else QUICK_CHECKS:
        if progress:
            progress(f"checking {name}")
        try:
            if name == "lr_range":
                result = check_lr_range(setup, steps=lr_steps, progress=progress)
            else:
                result = CHECKS[name](setup)
        except Exception as error:  # a check that cannot run on this setup says so instead of stopping the others
            result = CheckResult(name, "warning", f"could not run: {type(error).__name__}: {error}".splitlines()[0],
                                 {"error": type(error).__name__}, "see the message; the other checks still ran")
        results.append(result)
    verdicts = [result.verdict for result in results]
    return {
        "source": setup.source,
        "verdict": worst(verdicts),
        "n_problems": verdicts.count("problem"),
        "n_warnings": verdicts.count("warning"),
        "quick": quick,
        "checks": [result.as_dict() for result in results],
    }


def render_text(report: dict) -> str:
    lines = [f"sweep doctor: {report['source']}"]
    for check in report["checks"]:
        lines.append(f"{SYMBOLS[check['verdict']]} {check['name']}: {check['message']}")
        if check["verdict"] != "ok" and check.get("fix"):
            lines.append(f"    fix: {check['fix']}")
    counts = f"{report['n_problems']} problem(s), {report['n_warnings']} warning(s)"
    lines.append(f"{report['verdict']}: {counts}" + (" (quick checks; run `sweep doctor` for the LR range test)" if report.get("quick") else ""))
    return "\n".join(lines)


def summary(report: dict) -> dict:
    """What is stored on the study (user attr ``doctor``): verdict and one line per check, without the evidence."""
    return {
        "verdict": report["verdict"],
        "source": report["source"],
        "quick": report["quick"],
        "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checks": [{key: check[key] for key in ("name", "verdict", "message", "fix")} for check in report["checks"]],
        "suggested_lr_range": next((c["evidence"].get("suggested_lr_range") for c in report["checks"]
                                    if c["name"] == "lr_range"), None),
    }


# ---------------------------------------------------------------- building the setup


def setup_from_config(config, device: torch.device) -> Setup:
    """The sweep's own model, loaders, optimizer and scheduler, with the baseline's hyperparameters."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    import data
    import models
    from sweep.objective import load_datasets, model_data_config
    from sweep.train import create_optimizer, create_scheduler

    params = config.baseline
    data_config = model_data_config(config.model)
    datasets = load_datasets(config)
    torch.manual_seed(config.seed)
    model = models.create_transfer_model(
        config.model, num_classes=datasets.num_classes, dropout=params["dropout"],
        frozen_stages=params["frozen_stages"], weights=config.weights,
    ).to(device)
    train_loader, val_loader = data.build_loaders(datasets, params["batch_size"], device=device.type, seed=config.seed)
    optimizer = create_optimizer(model, config.optimizer, params["lr"], params["weight_decay"])
    scheduler = create_scheduler(optimizer, params["scheduler"], config.epochs, config.min_delta)
    scheduler_space = config.space["scheduler"]
    schedulers = tuple(scheduler_space.choices) if isinstance(scheduler_space, CategoricalDistribution) else (params["scheduler"],)
    lr_space = config.space["lr"]
    return Setup(
        model=model, train_loader=train_loader, val_loader=val_loader, optimizer=optimizer, scheduler=scheduler,
        data_config=data_config, epochs=config.epochs, device=device,
        source=f"{config.model} on {config.data} at {config.image_size}px, baseline {_params_text(params)}",
        sweep_schedulers=schedulers, sweep_optimizer=config.optimizer, sweep_lr=params["lr"],
        sweep_weight_decay=params["weight_decay"], sweep_min_delta=config.min_delta,
        sweep_lr_range=(lr_space.low, lr_space.high) if isinstance(lr_space, FloatDistribution) else None,
    )


def _params_text(params: dict) -> str:
    return ",".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items())


BUNDLE_KEYS = ("model", "train_loader", "val_loader", "optimizer", "scheduler", "train_epoch", "data_config", "epochs")


def load_module_function(target: str) -> Callable:
    """``pkg.mod:fn`` imported from the current directory (as ``python -m`` would)."""
    module_name, colon, function_name = target.partition(":")
    if not colon or not module_name or not function_name.isidentifier():
        raise DoctorSetupError(f"--module {target!r} is not MODULE:FUNCTION: expected e.g. mytrain:build")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise DoctorSetupError(
            f"--module {target!r}: cannot import {module_name!r} ({type(error).__name__}: {error}); "
            "expected a module importable from the current directory"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise DoctorSetupError(f"--module {target!r}: {module_name} has no function {function_name!r}")
    return function


def setup_from_module(target: str, device: torch.device) -> Setup:
    """Call the user's ``fn()``; it returns (model, train_loader, val_loader[, optimizer[, scheduler]]) or a dict."""
    function = load_module_function(target)
    try:
        bundle = function()
    except Exception as error:
        raise DoctorSetupError(
            f"--module {target!r}: {function.__name__}() raised {type(error).__name__}: {error}".splitlines()[0]
        ) from None
    if isinstance(bundle, (tuple, list)) and 3 <= len(bundle) <= 5:
        bundle = dict(zip(BUNDLE_KEYS, bundle))
    if not isinstance(bundle, dict) or not all(bundle.get(key) is not None for key in BUNDLE_KEYS[:3]):
        raise DoctorSetupError(
            f"--module {target!r}: {function.__name__}() returned {type(bundle).__name__}; expected "
            "(model, train_loader, val_loader[, optimizer[, scheduler]]) or a dict with those keys "
            "(and optionally train_epoch, data_config, epochs)"
        )
    unknown = sorted(set(bundle) - set(BUNDLE_KEYS))
    if unknown:
        raise DoctorSetupError(f"--module {target!r}: unknown keys {unknown}; accepted are {', '.join(BUNDLE_KEYS)}")
    if not isinstance(bundle["model"], nn.Module):
        raise DoctorSetupError(f"--module {target!r}: model is a {type(bundle['model']).__name__}, expected a torch nn.Module")
    data_config = bundle.get("data_config")
    if data_config is None and getattr(bundle["model"], "pretrained_cfg", None):
        import models

        data_config = models.pretrained_data_config(bundle["model"])
    return Setup(
        model=bundle["model"].to(device), train_loader=bundle["train_loader"], val_loader=bundle["val_loader"],
        optimizer=bundle.get("optimizer"), scheduler=bundle.get("scheduler"), train_epoch=bundle.get("train_epoch"),
        data_config=data_config, epochs=int(bundle.get("epochs") or 8), device=device, source=f"--module {target}",
    )
