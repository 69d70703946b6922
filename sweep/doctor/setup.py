"""What the checks run on, built from the sweep's config (through the one trial builder) or from the user's
``--module`` function, whose folder never shadows this tool's own packages."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

import torch
from torch import nn

from sweep.errors import UsageError
from sweep.storage import mask_secrets

if TYPE_CHECKING:
    from sweep.config import SweepConfig

BUNDLE_KEYS = ("model", "train_loader", "val_loader", "optimizer", "scheduler", "train_epoch", "data_config", "epochs")
# Top-level packages of this tool: a user's folder often has its own models/ or data/, which must not replace ours.
OWN_PACKAGES = ("sweep", "models", "data")


class DoctorSetupError(UsageError):
    """``--module`` names nothing importable, its function returns something we cannot check, or the sweep's data or
    weights cannot be loaded."""


@dataclass
class SweepSetup:
    """The sweep's config and the baseline params the setup was built from, for the checks that look past this one
    trial: every scheduler of the search space, the lr range it searches."""

    config: SweepConfig
    params: dict


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
    sweep: SweepSetup | None = None  # set when the setup is the sweep's own baseline trial


def setup_from_config(config: SweepConfig, device: torch.device) -> Setup:
    """The sweep's own baseline trial, built as every trial is; a bad --data or --weights is a one-line error."""
    from sweep.trial import build_trial, load_datasets, model_data_config

    params = config.baseline
    try:
        datasets = load_datasets(config)
        trial = build_trial(config, params, datasets, device=device, seed=config.seed)
        data_config = model_data_config(config.model)
    except (ValueError, FileNotFoundError) as error:  # data or weights named but not usable
        raise DoctorSetupError(mask_secrets(str(error) or type(error).__name__).splitlines()[0]) from None
    return Setup(
        model=trial.model, train_loader=trial.train_loader, val_loader=trial.val_loader, optimizer=trial.optimizer,
        scheduler=trial.scheduler, data_config=data_config, epochs=config.epochs, device=device,
        source=f"{config.model} on {config.data} at {config.image_size}px, baseline {_params_text(params)}",
        sweep=SweepSetup(config, dict(params)),
    )


def _params_text(params: dict) -> str:
    return ",".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items())


def load_module_function(target: str) -> Callable:
    """``pkg.mod:fn`` from the current directory, with this tool's own packages imported first."""
    module_name, colon, function_name = target.partition(":")
    if not colon or not module_name or not function_name.isidentifier():
        raise DoctorSetupError(f"--module {target!r} is not MODULE:FUNCTION: expected e.g. mytrain:build")
    top = module_name.split(".")[0]
    if top in OWN_PACKAGES:
        raise DoctorSetupError(
            f"--module {target!r}: {top!r} is one of this tool's own packages ({', '.join(OWN_PACKAGES)}); "
            f"expected your own module's name (rename it, e.g. my{top})"
        )
    import data  # noqa: F401  ours are in sys.modules before the user's folder can be searched
    import models  # noqa: F401

    try:
        module = _import_from_cwd(module_name)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        raise DoctorSetupError(
            f"--module {target!r}: cannot import {module_name!r} ({reason}); "
            "expected a module importable from the current directory"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise DoctorSetupError(f"--module {target!r}: {module_name} has no function {function_name!r}")
    return function


def _import_from_cwd(module_name: str):
    """The user's module found in the current directory first; their own imports find that folder only after
    site-packages, so a folder named like an installed package does not shadow it."""
    cwd = os.getcwd()
    top = module_name.split(".")[0]
    if top not in sys.modules:
        spec = importlib.machinery.PathFinder.find_spec(top, [cwd])
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            sys.modules[top] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[top]
                raise
    if cwd not in sys.path:
        sys.path.append(cwd)
    return importlib.import_module(module_name)


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
