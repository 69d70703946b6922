"""The command line's flags: their types (checked by the module that owns each value) and the option groups
the commands share."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable

import click

from sweep import space
from sweep.config import SETTINGS
from sweep.storage import DEFAULT_STORAGE, STORAGE_ENV, check_study_name, check_url

class Checked(click.ParamType):
    """A value that ``check`` accepts (and may convert); the one line of its error becomes the usage error."""

    def __init__(self, metavar: str, check: Callable):
        self.name = metavar
        self.check = check

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            converted = self.check(value)
        except (ValueError, FileNotFoundError, RuntimeError) as error:
            self.fail(str(error).splitlines()[0], param, ctx)
        return value if converted is None else converted


def _model_name(value: str) -> None:
    import models

    models.validate_model_name(value)


def _data_source(value: str) -> None:
    import data

    data.parse_data_spec(value)


def _device(value: str):
    from sweep.train import resolve_device

    return resolve_device(value)


def _new_file(value: str) -> Path:
    path = Path(value)
    if not path.parent.is_dir():
        raise ValueError(f"folder {str(path.parent)!r} does not exist: create it, or write elsewhere")
    if path.is_dir():
        raise ValueError(f"{value!r} is a folder: expected a file name")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        where = "file" if path.exists() else "folder"
        raise ValueError(f"{where} {str(path if path.exists() else path.parent)!r} is not writable: write elsewhere")
    return path


def _gpus(value: str) -> list[str]:
    from sweep.launcher import parse_gpus

    return parse_gpus(value)


DEVICE = Checked("auto|cpu|cuda[:N]", _device)
NEW_FILE = Checked("FILE", _new_file)
GPUS = Checked("all|0,1,...", _gpus)


def options(*decorators):
    def apply(fn):
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn
    return apply


def _default(name: str) -> str:
    """``[default: X]`` for the help; nothing where the default is empty (the help says what it means)."""
    from sweep.config import SweepConfig

    value = getattr(SweepConfig(), name)
    if value == "":
        return ""
    return f" [default: {'all' if value is None else value}]"


def _cap(setting, text: str) -> int:
    # 0 (all images) or the setting's own range: no click range says "0 or >= 2"
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not (value == 0 or setting.accepts(value)):
        raise ValueError(f"{text!r} is not accepted: expected {setting.accepted()}")
    return value


def setting_type(name: str) -> click.ParamType | None:
    """The click type of one fixed setting's flag, from the config's table, so a flag and a file obey one rule."""
    setting = SETTINGS[name]
    if setting.choices:
        return click.Choice(tuple(setting.choices))
    if setting.zero_means_all:
        return Checked("INTEGER", functools.partial(_cap, setting))
    if setting.kind is int:
        return click.INT if setting.low is None and setting.high is None else click.IntRange(setting.low, setting.high)
    if setting.kind is float:
        return click.FloatRange(setting.low, setting.high, min_open=setting.open_ends in ("low", "both"),
                                max_open=setting.open_ends in ("high", "both"))
    return None


def setting_option(name: str, type: click.ParamType | None = None, metavar: str | None = None):
    """The flag of one fixed sweep setting, typed and described by the config's table of settings."""
    setting, flag = SETTINGS[name], "--" + name.replace("_", "-")
    help_text = setting.help + _default(name)
    if setting.kind is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)
    return click.option(flag, name, type=type or setting_type(name), metavar=metavar, help=help_text)


study_option = click.option("--study", "study_name", required=True, type=Checked("NAME", check_study_name),
                            help="Name of the Optuna study (one sweep).")
storage_option = click.option(
    "--storage", type=Checked("URL", check_url), default=DEFAULT_STORAGE, envvar=STORAGE_ENV, show_default=True,
    show_envvar=True, help="Optuna storage: a SQLite file, or postgresql+psycopg://USER@HOST/DB for many workers "
                           "(put a password in SWEEP_STORAGE, not on the command line).")
device_option = click.option("--device", type=DEVICE, default="auto", show_default=True, help="Where to train.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors on stderr.")

# The settings a sweep and the doctor share: which model, weights and data, at what size, with what baseline.
setup_options = options(
    click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 help="TOML file: fixed settings as top-level keys, [space] and [baseline] tables. Flags override it."),
    setting_option("model", Checked("TIMM_RESNET", _model_name)),
    setting_option("weights", metavar="auto|none|PATH"),
    setting_option("data", Checked("DATA", _data_source)),
    setting_option("image_size"),
    setting_option("max_train"),
    setting_option("max_val"),
    click.option("--baseline", type=Checked("NAME=VALUE,...", space.parse_baseline),
                 help="Your current (plateauing) settings, e.g. lr=1e-4,dropout=0.5,frozen_stages=4. [default: "
                      + ",".join(f"{k}={v}" for k, v in space.DEFAULT_BASELINE.items()) + "]"),
)

# What `sweep analyze` takes beside the study: the output, the plateau thresholds, and an earlier study to compare.
analyze_options = options(
    click.option("--format", "output_format", type=click.Choice(["text", "json", "html"]), default="text",
                 show_default=True, help="html is one self-contained file with plots; json is a stable interface."),
    click.option("--out", type=NEW_FILE, help="Write to this file instead of stdout."),
    click.option("--emit-config", type=NEW_FILE,
                 help="Also write the recommended settings as a sweep config (TOML) and the best trial's params "
                      "beside it (NAME.params.json)."),
    click.option("--warm-start", is_flag=True,
                 help="With --emit-config: export the best plateau-free trial's model beside it (NAME.model/) and "
                      "start the next sweep from its weights."),
    click.option("--patience", type=setting_type("patience"), help="Judge the curves with this plateau patience instead."),
    click.option("--min-delta", type=setting_type("min_delta"),
                 help="Judge the curves with this plateau min_delta (relative) instead."),
    click.option("--against", metavar="NAME", type=Checked("NAME", check_study_name),
                 help="Compare with this earlier study (same storage): its baseline curve against the best "
                      "plateau-free runs here, verdicts side by side, best against best."),
    click.option("--baseline-trial", type=click.IntRange(0), metavar="N",
                 help="Compare every run with trial N. [default: the sweep's baseline; in a study that `sweep start` "
                      "did not make, the first complete trial]"),
    click.option("--train-loss-attr", metavar="NAME",
                 help="A study that `sweep start` did not make: the user attr holding each trial's training loss (a "
                      "list, one value per report, or {step: value}), which tells overfitting from a plateau."),
)

# What `sweep worker` takes beside the study: its own share of the work, and the study's stop rule.
worker_options = options(
    click.option("--n-trials", "max_trials", type=click.IntRange(1),
                 help="At most this many trials in this worker. [default: until the study's budget is handed out]"),
    click.option("--until-done", is_flag=True,
                 help="Stay until every trial of the budget has finished, to retry the trials of workers that die."),
    click.option("--worker-index", type=click.IntRange(0),
                 help="This worker's number among a launcher's; mixed into its sampler's seed with host and pid."),
    click.option("--stop-when", type=setting_type("stop_when"),
                 help=SETTINGS["stop_when"].help + " Stored on the study for every worker. [default: the study's]"),
    click.option("--stop-after", type=setting_type("stop_after"),
                 help=SETTINGS["stop_after"].help + " Stored on the study. [default: the study's]"),
)


def space_options(fn):
    for name in reversed(space.PARAMS):
        fn = click.option(space.flag(name), name,
                          type=Checked("SPACE", lambda text, name=name: space.parse_param(name, text)),
                          help=f"{space.PARAMS[name].help} Accepts {space.accepted(name)}. "
                               f"[default: {space.DEFAULT_SPACE_TEXT[name]}]")(fn)
    return fn


def overrides_from(settings: dict) -> tuple[dict, list[str]]:
    """Config overrides from the setting flags (space flags gathered into ``space``) and the flags given."""
    given = [f"--{name.replace('_', '-')}" for name, value in settings.items()
             if value is not None and name != "config_file"]
    overrides = {name: value for name, value in settings.items()
                 if value is not None and name not in space.PARAMS and name != "config_file"}
    overrides["space"] = {name: settings[name] for name in space.PARAMS if settings.get(name) is not None}
    overrides.setdefault("baseline", {})
    return overrides, given
