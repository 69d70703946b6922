"""The sweep config: fixed settings, search space and baseline, from flags and TOML, with one set of defaults.

The config is stored in the study's user attrs when the study is created, so a worker needs only
``--study`` and ``--storage``.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    distribution_to_json,
    json_to_distribution,
)

from sweep import space as space_module
from sweep.bounds import Bounds
from sweep.errors import UsageError
from sweep.optim import OPTIMIZERS
from sweep.pruning import PRUNERS

# When a sweep may end before its budget: never, once the analysis' answer is stable, or once the best loss stalls.
STOP_RULES = ("never", "answered", "stalled")

# At most this share of a sweep's trial budget goes to one-change runs (--confirm); the rest searches.
CONFIRM_SHARE = 0.4

CONFIG_ATTR = "sweep_config"
CONFIG_VERSION = 1


class ConfigError(UsageError):
    """A config value or file we cannot accept; the message names the value and what is accepted."""


@dataclass(frozen=True)
class SweepConfig:
    """Everything that defines a sweep. Worker-local choices (device, storage) are not part of it."""

    model: str = "resnet50"
    weights: str = "auto"
    data: str = "digits"
    image_size: int = 32
    max_train: int | None = 512
    max_val: int | None = 128
    val_fraction: float = 0.25
    epochs: int = 6
    n_trials: int = 16
    seed: int = 0
    optimizer: str = "sgd"
    pruner: str = "quartile"
    patience: int = 2
    min_delta: float = 0.01
    compile: bool = False  # torch.compile the model per trial; pays off on GPU for long trials
    skip_bad_images: bool = False  # train without the image files that cannot be decoded instead of stopping
    checkpoints: bool = True  # each trial's state after its epochs and its best weights in the artifact store
    checkpoint_every: float = 60.0  # seconds of training between two states of a trial; 0: after every epoch
    keep_best: int = 3  # trials whose best weights stay in the artifact store
    artifacts: str = ""  # the artifact store: a folder or s3://BUCKET/PREFIX; "" = beside the storage
    stop_when: str = "never"  # one of STOP_RULES
    stop_after: int = 5  # finished trials the answer must hold for (answered), or without a new best (stalled)
    confirm: bool = True  # one-change runs from the first plateau-free run (sweep.confirm)
    space: dict[str, BaseDistribution] = field(default_factory=space_module.default_space)
    baseline: dict[str, Any] = field(default_factory=lambda: dict(space_module.DEFAULT_BASELINE))

    def __post_init__(self) -> None:
        _check(self)

    def to_dict(self) -> dict[str, Any]:
        fixed = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fixed["space"] = {name: json.loads(distribution_to_json(d)) for name, d in self.space.items()}
        fixed["baseline"] = dict(self.baseline)
        fixed["version"] = CONFIG_VERSION
        return fixed

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> "SweepConfig":
        values = {k: v for k, v in stored.items() if k != "version"}
        values["space"] = {
            name: json_to_distribution(json.dumps(d)) for name, d in values["space"].items()
        }
        return cls(**values)

    def differences(self, other: "SweepConfig", *,
                    ignore: tuple[str, ...] = ("n_trials", "stop_when", "stop_after")) -> list[str]:
        """Names of the settings in which two configs differ (the trial budget and the stop rule may change on
        resume)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [key for key in mine if key not in ignore and mine[key] != theirs.get(key)]


FIXED_KEYS = tuple(f.name for f in dataclasses.fields(SweepConfig) if f.name not in ("space", "baseline"))
FILE_KEYS = FIXED_KEYS + ("space", "baseline")


# The fixed settings: the one table that flags, TOML files and stored studies obey.
SETTINGS: dict[str, Bounds] = {
    "model": Bounds(str, "timm ResNet to fine-tune."),
    "weights": Bounds(str, "Pretrained weights: auto (hub when reachable), none (random init), or a local file."),
    "data": Bounds(str, "digits (built-in, offline), synthetic[:N], cifar10:ROOT, cifar100:ROOT or an ImageFolder "
                         "directory."),
    "image_size": Bounds(int, "Input size in pixels.", 16, 1024),
    "max_train": Bounds(int, "Cap on training images (0 = all).", 2, zero_means_all=True),
    "max_val": Bounds(int, "Cap on validation images (0 = all).", 1, zero_means_all=True),
    "val_fraction": Bounds(float, "Share of the images held out for validation where the data has no split.",
                            0, 1, open_ends="both"),
    "epochs": Bounds(int, "Epochs per trial.", 1),
    "n_trials": Bounds(int, "Trials in the whole study (all workers).", 1),
    "seed": Bounds(int, "Seed for sampling, splits and init."),
    "optimizer": Bounds(str, "Optimizer of every trial.", choices=OPTIMIZERS),
    "pruner": Bounds(str, "Stops hopeless trials early.", choices=tuple(PRUNERS)),
    "patience": Bounds(int, "Plateau rule: epochs without improvement.", 1),
    "min_delta": Bounds(float, "Plateau rule: relative improvement that counts.", 0, 1, open_ends="high"),
    "skip_bad_images": Bounds(bool, "Train without image files that cannot be decoded (how many is logged) instead "
                                     "of stopping before the first trial with their names."),
    "compile": Bounds(bool, "torch.compile each trial's model (compile time recorded apart); pays off on GPU with "
                             "long trials."),
    "checkpoints": Bounds(bool, "Each trial's state after its epochs (a retried trial resumes from it) and its best "
                                 "weights (for `sweep export`) in the artifact store."),
    "checkpoint_every": Bounds(float, "Seconds of training between two states of a trial, written after the epoch that "
                                      "passes them (0: after every epoch). A retry loses at most this and one epoch; "
                                      "each state of a ResNet50 that trains everything is 283 MB.", 0),
    "keep_best": Bounds(int, "Trials whose best weights stay in the artifact store.", 1),
    "artifacts": Bounds(str, "Artifact store: a folder, or s3://BUCKET/PREFIX (AWS_ENDPOINT_URL for MinIO); also "
                              "SWEEP_ARTIFACTS. Default: NAME.artifacts beside a SQLite file NAME.db, else "
                              "plateau-sweep.artifacts in the working directory."),
    "stop_when": Bounds(str, "End the sweep before its budget: answered (the factors and their regions the same for "
                              "--stop-after finished trials in a row, no other parameter close to being named), "
                              "stalled (no new best loss in --stop-after trials: Optuna's terminator) or never.",
                         choices=STOP_RULES),
    "stop_after": Bounds(int, "Finished trials in a row that --stop-when waits for.", 1),
    "confirm": Bounds(bool, f"Once a run is plateau-free, spend up to {CONFIRM_SHARE:.0%} of the budget on one-change runs from it "
                             "(each varied parameter back to the baseline's value alone, trained to the end) that "
                             "confirm or rule out each cause."),
}


def _check(config: SweepConfig) -> None:
    for name, setting in SETTINGS.items():
        value = getattr(config, name)
        if not setting.accepts(value):
            raise ConfigError(f"{name}={value!r} is not accepted: expected {setting.accepted()}")
    unknown = set(config.space) ^ set(space_module.PARAMS)
    if unknown:
        raise ConfigError(f"search space must name exactly {', '.join(space_module.PARAMS)} (off: {sorted(unknown)})")
    for name in config.baseline:
        if name not in space_module.PARAMS:
            raise ConfigError(
                f"unknown baseline parameter {name!r}: accepted are {', '.join(space_module.PARAMS)}"
            )


def _nullable(value: Any) -> Any:
    # 0 on the command line or in a file means "no cap" for the subset sizes.
    return None if value in (0, None) else value


def read_config_file(path: Path) -> dict[str, Any]:
    """A TOML config file as override values (fixed keys, ``space`` and ``baseline`` tables), checked."""
    try:
        document = tomllib.loads(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    unknown = [key for key in document if key not in FILE_KEYS]
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {path}: accepted keys are {', '.join(FILE_KEYS)}"
        )
    values: dict[str, Any] = {k: v for k, v in document.items() if k not in ("space", "baseline")}
    for table in ("space", "baseline"):
        if table in document and not isinstance(document[table], dict):
            raise ConfigError(f"{table!r} in {path} must be a table ([{table}])")
    try:
        if "space" in document:
            values["space"] = {
                name: space_module.parse_param(name, text) for name, text in document["space"].items()
            }
        if "baseline" in document:
            values["baseline"] = {
                name: space_module.parse_value(name, value)
                for name, value in document["baseline"].items()
            }
    except space_module.SpaceError as error:
        raise ConfigError(f"{path}: {error}") from None
    return values


def build_config(file: Path | None = None, overrides: dict[str, Any] | None = None) -> SweepConfig:
    """Defaults, then the file, then flags: flags override the file, the file overrides defaults.

    ``overrides`` may hold fixed keys, ``space`` (a partial dict of distributions) and
    ``baseline`` (a partial dict of values); partial tables merge with what is below them.
    """
    layers = [read_config_file(file) if file else {}, overrides or {}]
    defaults = SweepConfig()
    merged: dict[str, Any] = {name: getattr(defaults, name) for name in FIXED_KEYS}
    merged["space"] = dict(defaults.space)
    merged["baseline"] = dict(defaults.baseline)
    for layer in layers:
        for key, value in layer.items():
            if key in ("space", "baseline"):
                merged[key].update(value)
            elif value is not None:
                merged[key] = value
    merged["max_train"] = _nullable(merged["max_train"])
    merged["max_val"] = _nullable(merged["max_val"])
    given = {name for layer in layers for name in layer.get("baseline", {})}
    merged["baseline"] = _fit_baseline(merged["baseline"], merged["space"], given)
    return SweepConfig(**merged)


def _fit_baseline(baseline: dict[str, Any], space: dict[str, BaseDistribution], given: set[str]) -> dict[str, Any]:
    """Default baseline values follow a parameter the user fixed; a given value must be a listed choice.

    Optuna cannot run a categorical value outside the study's choices; numeric values outside a
    range are run as given (``space.check_baseline`` warns about them).
    """
    fitted = dict(baseline)
    for name, value in baseline.items():
        distribution = space[name]
        if name not in given and distribution.single():
            fitted[name] = distribution.low if not isinstance(distribution, CategoricalDistribution) else distribution.choices[0]
        elif isinstance(distribution, CategoricalDistribution) and value not in distribution.choices:
            if name in given:
                raise ConfigError(
                    f"baseline {name}={value} is not one of the sweep's choices "
                    f"{space_module.format_param(distribution)}: add it to --{name.replace('_', '-')} "
                    "or change the baseline"
                )
            fitted[name] = distribution.choices[0]
    return fitted
