"""The ``sweep`` command line: parse and validate, call one function, print."""

from __future__ import annotations

import functools
import json
import logging
import sys
import warnings
from pathlib import Path

import click

from sweep import space
from sweep.config import OPTIMIZERS, PRUNERS, ConfigError, SweepConfig
from sweep.storage import DEFAULT_STORAGE, STORAGE_ENV, StorageError, check_url, mask_url, open_storage

log = logging.getLogger("sweep")


# ---------------------------------------------------------------- parameter types


class SpaceParam(click.ParamType):
    """One search-space knob in flag syntax: ``LOW:HIGH``, ``a,b,c`` or a single value (fixed)."""

    def __init__(self, name: str):
        self.param_name = name
        self.name = space.PARAMS[name].accepted

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return space.parse_param(self.param_name, value)
        except space.SpaceError as error:
            self.fail(str(error), param, ctx)


class BaselineParam(click.ParamType):
    name = "NAME=VALUE,..."

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return space.parse_baseline(value)
        except space.SpaceError as error:
            self.fail(str(error), param, ctx)


class ModelName(click.ParamType):
    name = "TIMM_RESNET"

    def convert(self, value, param, ctx):
        import models

        try:
            models.validate_model_name(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)
        return value


class DataSource(click.ParamType):
    name = "DATA"

    def convert(self, value, param, ctx):
        import data

        try:
            data.parse_data_spec(value)
        except (ValueError, FileNotFoundError) as error:
            self.fail(str(error), param, ctx)
        return value


class StorageURL(click.ParamType):
    name = "URL"

    def convert(self, value, param, ctx):
        try:
            return check_url(value)
        except StorageError as error:
            self.fail(str(error), param, ctx)


class Device(click.ParamType):
    name = "auto|cpu|cuda[:N]"

    def convert(self, value, param, ctx):
        from sweep.train import resolve_device

        try:
            return resolve_device(value)
        except (ValueError, RuntimeError) as error:
            self.fail(str(error).splitlines()[0], param, ctx)


# ---------------------------------------------------------------- shared options


def study_option(fn):
    return click.option(
        "--study", "study_name", required=True, metavar="NAME",
        help="Name of the Optuna study (one sweep).",
    )(fn)


def storage_option(fn):
    return click.option(
        "--storage", type=StorageURL(), default=DEFAULT_STORAGE, envvar=STORAGE_ENV, show_default=True,
        show_envvar=True,
        help="Optuna storage URL: a SQLite file, or postgresql+psycopg://USER@HOST/DB for many workers.",
    )(fn)


def _open(storage_url: str):
    try:
        return open_storage(storage_url)
    except StorageError as error:
        raise click.ClickException(str(error)) from None


def _setup_logging(quiet: bool) -> None:
    import optuna

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


class SweepGroup(click.Group):
    """Known user errors become one line and exit 2, never a traceback."""

    def invoke(self, ctx):
        from sweep.study import StudyConfigMismatch, StudyNotFound

        try:
            return super().invoke(ctx)
        except (ConfigError, space.SpaceError, StudyConfigMismatch, StudyNotFound) as error:
            raise click.UsageError(str(error), ctx) from None
        except StorageError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=SweepGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="plateau-sweep")
def main():
    """plateau-sweep: find which settings make a fine-tuned ResNet's validation loss move again.

    \b
    Example:
      sweep start --study resnet-plateau
      sweep analyze --study resnet-plateau --format json
    """


# ---------------------------------------------------------------- start


def _space_option(name: str, help_text: str):
    spec = space.PARAMS[name]
    return click.option(
        spec.flag, name, type=SpaceParam(name), default=None, metavar="SPACE",
        help=f"{help_text} Accepts {spec.accepted}. [default: {space.DEFAULT_SPACE_TEXT[name]}]",
    )


def space_options(fn):
    for name, text in reversed((
        ("lr", "Learning rate."),
        ("batch_size", "Batch size."),
        ("dropout", "Dropout before the new head."),
        ("weight_decay", "Weight decay."),
        ("scheduler", "LR scheduler."),
        ("frozen_stages", "Number of frozen ResNet stages (1 = stem+layer1 ... 4 = all but the head)."),
    )):
        fn = _space_option(name, text)(fn)
    return fn


def _fixed_default(name: str) -> str:
    return f"[default: {getattr(SweepConfig(), name)}]"


START_EXAMPLE = """
\b
Examples:
  sweep start --study resnet-plateau
  sweep start --study resnet-plateau --lr 1e-5:1e-1 --batch-size 16,32,64 --frozen-stages 0:4
  sweep start --study mine --config sweep.toml --data ./my_images --weights resnet50.safetensors
  sweep start --study mine --baseline lr=1e-4,dropout=0.5,frozen_stages=4 --n-trials 40 --epochs 20
"""


@main.command(epilog=START_EXAMPLE)
@study_option
@storage_option
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
              help="TOML file: fixed settings as top-level keys, [space] and [baseline] tables. Flags override it.")
@space_options
@click.option("--baseline", type=BaselineParam(), default=None,
              help="Your current (plateauing) settings, run as trial 0, e.g. lr=1e-4,dropout=0.5,frozen_stages=4. "
                   f"[default: {','.join(f'{k}={v}' for k, v in space.DEFAULT_BASELINE.items())}]")
@click.option("--model", type=ModelName(), default=None, help=f"timm ResNet to fine-tune. {_fixed_default('model')}")
@click.option("--weights", default=None, metavar="auto|none|PATH",
              help="Pretrained weights: auto (hub when reachable), none (random init), or a local file. [default: auto]")
@click.option("--data", type=DataSource(), default=None,
              help="digits (built-in, offline), synthetic[:N], cifar10:ROOT, cifar100:ROOT or an ImageFolder directory. "
                   "[default: digits]")
@click.option("--image-size", type=click.IntRange(16, 1024), default=None, help=f"Input size in pixels. {_fixed_default('image_size')}")
@click.option("--max-train", type=click.IntRange(0), default=None, help=f"Cap on training images (0 = all). {_fixed_default('max_train')}")
@click.option("--max-val", type=click.IntRange(0), default=None, help=f"Cap on validation images (0 = all). {_fixed_default('max_val')}")
@click.option("--epochs", type=click.IntRange(1), default=None, help=f"Epochs per trial. {_fixed_default('epochs')}")
@click.option("--n-trials", type=click.IntRange(1), default=None, help=f"Trials in the whole study (all workers). {_fixed_default('n_trials')}")
@click.option("--seed", type=int, default=None, help=f"Seed for sampling, splits and init. {_fixed_default('seed')}")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None, help=f"{_fixed_default('optimizer')}")
@click.option("--pruner", type=click.Choice(PRUNERS), default=None, help=f"Stops hopeless trials early. {_fixed_default('pruner')}")
@click.option("--patience", type=click.IntRange(1), default=None, help=f"Plateau rule: epochs without improvement. {_fixed_default('patience')}")
@click.option("--min-delta", type=click.FloatRange(0, 1, max_open=True), default=None,
              help=f"Plateau rule: relative improvement that counts. {_fixed_default('min_delta')}")
@click.option("--device", type=Device(), default="auto", show_default=True, help="Where this process trains.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output; the analysis is still printed.")
def start(study_name, storage, config_file, baseline, device, quiet, **settings):
    """Create (or resume) a sweep, run its trials here, then print the analysis."""
    from sweep import study as study_module
    from sweep.progress import SweepProgress
    from sweep.worker import finished_count, run_trials

    _setup_logging(quiet)
    space_overrides = {name: settings.pop(name) for name in space.PARAMS if settings.get(name) is not None}
    for name in space.PARAMS:
        settings.pop(name, None)
    overrides = dict(settings, space=space_overrides, baseline=baseline or {})
    config = _build_config(config_file, overrides)
    for problem in space.check_baseline(config.baseline, config.space):
        log.warning("baseline %s: it runs as given, but the sweep won't sample there", problem)

    storage_handle = _open(storage)
    study, created = study_module.create_or_resume(storage_handle, study_name, config)
    done = finished_count(study)
    verb = "created" if created else f"resumed ({done}/{config.n_trials} trials done)"
    log.info("study %r %s in %s; training on %s", study_name, verb, mask_url(storage), device)
    with SweepProgress(config.n_trials, done, config.epochs, quiet=quiet) as progress:
        try:
            run_trials(study, config, device, progress=progress)
        except KeyboardInterrupt:
            progress.log(f"interrupted: finished trials are kept; run the same command to resume")
            sys.exit(130)
    click.echo(_analysis(study, config, "text"))


def _build_config(config_file, overrides) -> SweepConfig:
    from sweep.config import build_config

    try:
        return build_config(config_file, overrides)
    except (ConfigError, space.SpaceError) as error:
        raise click.UsageError(str(error)) from None


# ---------------------------------------------------------------- analyze / status


def _analysis(study, config: SweepConfig, output_format: str, patience=None, min_delta=None) -> str:
    from sweep import analysis
    from sweep.study import baseline_number

    records, distributions = analysis.records_from_study(study)
    result = analysis.analyze(
        records, distributions,
        study_name=study.study_name,
        patience=patience or config.patience,
        min_delta=config.min_delta if min_delta is None else min_delta,
        baseline_number=baseline_number(study),
    )
    if output_format == "json":
        return json.dumps(result, indent=2)
    return analysis.render_text(result)


ANALYZE_EXAMPLE = """
\b
Examples:
  sweep analyze --study resnet-plateau
  sweep analyze --study resnet-plateau --format json > analysis.json
"""


@main.command(epilog=ANALYZE_EXAMPLE)
@study_option
@storage_option
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="Write to this file instead of stdout.")
@click.option("--patience", type=click.IntRange(1), default=None, help="Override the study's plateau patience.")
@click.option("--min-delta", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Override the study's plateau min_delta (relative).")
def analyze(study_name, storage, output_format, out, patience, min_delta):
    """Give every trial a verdict and say which settings removed the baseline's plateau."""
    from sweep import study as study_module

    _setup_logging(quiet=True)
    study, config = study_module.load(_open(storage), study_name)
    text = _analysis(study, config, output_format, patience, min_delta)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text + "\n")
        click.echo(f"wrote {out}", err=True)


@main.command(epilog="\b\nExample:\n  sweep status --study resnet-plateau")
@study_option
@storage_option
def status(study_name, storage):
    """Progress of a sweep: trials by state, best trial, plateaus so far, running trials."""
    from sweep import study as study_module
    from sweep.status import render_status, study_status

    _setup_logging(quiet=True)
    study, config = study_module.load(_open(storage), study_name)
    click.echo(render_status(study_status(study, config)))


if __name__ == "__main__":
    main()
