"""The ``sweep`` command line: parse and validate, call one function, print."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from sweep import space
from sweep.config import OPTIMIZERS, PRUNERS, ConfigError, SweepConfig
from sweep.logs import setup_logging
from sweep.storage import DEFAULT_STORAGE, STORAGE_ENV, StorageError, check_url, mask_secrets, mask_url, open_storage

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
  sweep start --study resnet-plateau --storage postgresql+psycopg://sweep@db/sweep --workers 4
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
@click.option("--compile/--no-compile", "compile", default=None,
              help="torch.compile each trial's model; its compile time is recorded apart (history, "
                   f"user attr compile_seconds). Pays off on GPU with long trials. {_fixed_default('compile')}")
@click.option("--device", type=Device(), default="auto", show_default=True, help="Where this process trains.")
@click.option("--workers", type=click.IntRange(0), default=1, show_default=True,
              help="Local worker processes (one GPU each when there are GPUs); 1 trains in this process; "
                   "0 only creates the study and queues the baseline, for `sweep worker` elsewhere.")
@click.option("--no-doctor", is_flag=True, help="Skip the quick `sweep doctor` checks that run before any training.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output; the analysis is still printed.")
def start(study_name, storage, config_file, baseline, device, workers, no_doctor, quiet, **settings):
    """Create (or resume) a sweep, run its trials here, then print the analysis."""
    from sweep import study as study_module
    from sweep.progress import SweepProgress
    from sweep.worker import finished_count, run_trials

    setup_logging(quiet)
    space_overrides = {name: settings.pop(name) for name in space.PARAMS if settings.get(name) is not None}
    for name in space.PARAMS:
        settings.pop(name, None)
    overrides = dict(settings, space=space_overrides, baseline=baseline or {})
    config = _build_config(config_file, overrides)
    for problem in space.check_baseline(config.baseline, config.space):
        log.warning("baseline %s: it runs as given, but the sweep won't sample there", problem)

    if no_doctor:
        _check_setup(config)
        doctor_report = None
    else:  # the doctor's setup loads the same data and weights, so a bad one fails there
        doctor_report = _doctor_before_start(config, device, quiet)
    storage_handle = _open(storage)
    study, created = study_module.create_or_resume(storage_handle, study_name, config)
    if doctor_report is not None:
        _store_doctor(study, config, doctor_report)
    done = finished_count(study)
    verb = "created" if created else f"resumed ({done}/{config.n_trials} trials done)"
    if workers == 0:
        log.info("study %r %s in %s; no workers started here", study_name, verb, mask_url(storage))
        click.echo(f"study {study_name!r} ready: start workers with\n"
                   f"  SWEEP_STORAGE='{mask_url(storage)}' sweep worker --study {study_name} --until-done")
        return
    if workers > 1:
        from sweep.launcher import run_local_workers

        log.info("study %r %s in %s; %d local workers", study_name, verb, mask_url(storage), workers)
        try:
            code = run_local_workers(study_name, storage, workers, device, quiet)
        except KeyboardInterrupt:
            code = 130
        if code == 130:
            # The workers were interrupted. A terminal's Ctrl-C reaches them and this process alike, but
            # Python may not raise it here: a signal taken by another thread does not wake waitpid.
            log.warning("interrupted: finished trials are kept; run the same command to resume")
            sys.exit(130)
        if code:
            raise click.ClickException(f"{workers} workers ran, at least one exited with code {code} (see its log above)")
        click.echo(_analysis(study, config, "text"))
        return
    log.info("study %r %s in %s; training on %s", study_name, verb, mask_url(storage), device)
    with SweepProgress(config.n_trials, done, config.epochs, quiet=quiet) as progress:
        try:
            run_trials(study, config, device, storage=storage_handle, progress=progress,
                       callbacks=(_trial_notes(config),))
        except KeyboardInterrupt:
            progress.log("interrupted: finished trials are kept; run the same command to resume")
            sys.exit(130)
    from sweep import analysis
    from sweep.study import analyze_study

    result, _, _ = analyze_study(study, config)
    _write_study_note(study, config, result)
    click.echo(analysis.render_text(result))


def _check_setup(config: SweepConfig) -> None:
    from sweep.objective import check_setup

    try:
        check_setup(config)
    except (ValueError, FileNotFoundError) as error:
        raise click.UsageError(str(error).splitlines()[0]) from None


def _build_config(config_file, overrides) -> SweepConfig:
    from sweep.config import build_config

    try:
        return build_config(config_file, overrides)
    except (ConfigError, space.SpaceError) as error:
        raise click.UsageError(str(error)) from None


# ---------------------------------------------------------------- analyze / status


def _analysis(study, config: SweepConfig, output_format: str, patience=None, min_delta=None, emit_config=None) -> str:
    """The analysis of ``study`` rendered as text, json or html; optionally the next sweep's config files."""
    from sweep import analysis
    from sweep.study import analyze_study

    result, records, distributions = analyze_study(study, config, patience=patience, min_delta=min_delta)
    if emit_config is not None:
        config_text, params_text = analysis.emit_config(result, distributions)
        params_path = emit_config.with_name(emit_config.stem + ".params.json")
        emit_config.write_text(config_text)
        params_path.write_text(params_text)
        click.echo(f"wrote {emit_config} (sweep start --config {emit_config}) and {params_path}", err=True)
    if output_format == "json":
        return json.dumps(result, indent=2)
    if output_format == "html":
        return analysis.render_html(result, records, distributions)
    return analysis.render_text(result)


ANALYZE_EXAMPLE = """
\b
Examples:
  sweep analyze --study resnet-plateau
  sweep analyze --study resnet-plateau --format json > analysis.json
  sweep analyze --study resnet-plateau --format html --out report.html
  sweep analyze --study resnet-plateau --emit-config best.toml   # then: sweep start --config best.toml
"""


@main.command(epilog=ANALYZE_EXAMPLE)
@study_option
@storage_option
@click.option("--format", "output_format", type=click.Choice(["text", "json", "html"]), default="text",
              show_default=True, help="html is one self-contained file with plots; json is a stable interface.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="Write to this file instead of stdout.")
@click.option("--emit-config", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="Also write the recommended settings as a sweep config (TOML) and the best trial's "
                   "params beside it (NAME.params.json).")
@click.option("--patience", type=click.IntRange(1), default=None, help="Override the study's plateau patience.")
@click.option("--min-delta", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Override the study's plateau min_delta (relative).")
def analyze(study_name, storage, output_format, out, emit_config, patience, min_delta):
    """Give every trial a verdict and say which settings removed the baseline's plateau."""
    from sweep import study as study_module

    setup_logging(quiet=True)
    study, config = study_module.load(_open(storage), study_name)
    if output_format == "html" and out is None:
        raise click.UsageError("--format html needs --out FILE (e.g. --out report.html)")
    text = _analysis(study, config, output_format, patience, min_delta, emit_config)
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

    setup_logging(quiet=True)
    storage_handle = _open(storage)
    study, config = study_module.load(storage_handle, study_name)
    click.echo(render_status(study_status(study, config, storage=storage_handle)))


WORKER_EXAMPLE = """
\b
Examples:
  sweep worker --study resnet-plateau --storage postgresql+psycopg://sweep@db/sweep --until-done
  SWEEP_STORAGE=postgresql+psycopg://sweep@db/sweep sweep worker --study resnet-plateau --device cuda:1 --n-trials 5
"""


@main.command(epilog=WORKER_EXAMPLE)
@study_option
@storage_option
@click.option("--device", type=Device(), default="auto", show_default=True, help="Where this worker trains.")
@click.option("--n-trials", "max_trials", type=click.IntRange(1), default=None,
              help="At most this many trials in this worker. [default: until the study's budget is handed out]")
@click.option("--until-done", is_flag=True,
              help="Stay until every trial of the budget has finished, to retry the trials of workers that die.")
@click.option("--worker-index", type=click.IntRange(0), default=None,
              help="Seeds this worker's sampler (study seed + index). [default: derived from host and pid]")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors on stderr.")
def worker(study_name, storage, device, max_trials, until_done, worker_index, quiet):
    """Join an existing study and run its trials; it reads the whole sweep config from the study.

    The study's trial budget is global: all workers together run exactly --n-trials of `sweep start`.
    """
    import os
    import signal
    import socket
    import zlib

    from rich.console import Console

    from sweep import study as study_module
    from sweep.progress import SweepProgress
    from sweep.worker import finished_count, run_trials

    setup_logging(quiet)

    def interrupt_once(signum, frame):
        # Optuna marks the running trial FAIL on KeyboardInterrupt; a second signal must not cut that short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt_once)
    signal.signal(signal.SIGTERM, interrupt_once)
    host, pid = socket.gethostname(), os.getpid()
    if worker_index is None:
        worker_index = zlib.crc32(f"{host}:{pid}".encode()) % 1_000_000
    storage_handle = _open(storage)
    study, config = study_module.load(storage_handle, study_name, worker_index)
    done = finished_count(study)
    log.info("worker %s pid %d (index %d) joined study %r in %s: %d/%d trials finished; training on %s",
             host, pid, worker_index, study_name, mask_url(storage), done, config.n_trials, device)
    # One line per trial, never live bars: workers share a terminal or a container log.
    console = Console(stderr=True, force_terminal=False)
    with SweepProgress(config.n_trials, done, config.epochs, quiet=quiet, console=console) as progress:
        try:
            ran = run_trials(study, config, device, storage=storage_handle, progress=progress,
                             max_trials=max_trials, until_done=until_done, callbacks=(_trial_notes(config),))
        except KeyboardInterrupt:
            log.warning("worker pid %d interrupted: its running trial is failed and queued again", pid)
            sys.exit(130)
    log.info("worker pid %d done: %d trials here, %d/%d in the study", pid, ran, finished_count(study), config.n_trials)


# ---------------------------------------------------------------- doctor / dashboard


def _progress_echo(quiet: bool):
    return None if quiet else (lambda message: click.echo(message, err=True))


def _doctor_setup(build, *args):
    from sweep.doctor import DoctorSetupError

    try:
        return build(*args)
    except DoctorSetupError as error:
        raise click.UsageError(str(error)) from None
    except (ValueError, FileNotFoundError) as error:  # data or weights named but not usable
        raise click.UsageError(mask_secrets(str(error)).splitlines()[0]) from None


def _store_doctor(study, config, report) -> None:
    """The doctor's summary on the study (user attr), and the study's dashboard note brought up to date."""
    from sweep.doctor import DOCTOR_ATTR, summary

    study.set_user_attr(DOCTOR_ATTR, summary(report))
    _write_study_note(study, config)


def _write_study_note(study, config, result: dict | None = None) -> None:
    from sweep.dashboard import write_study_note

    try:
        write_study_note(study, config, result)
    except Exception as error:  # the note is a convenience: never fail a command over it
        log.warning("could not write the dashboard's study note: %s", mask_secrets(str(error)).splitlines()[0])


def _trial_notes(config):
    from sweep.dashboard import TrialNotes

    return TrialNotes(config.patience, config.min_delta)


def _doctor_before_start(config, device, quiet: bool) -> dict:
    """The quick checks on the sweep's own setup; a problem stops `sweep start` before any training."""
    from sweep import doctor as doctor_module

    setup = _doctor_setup(doctor_module.setup_from_config, config, device)
    report = doctor_module.run_checks(setup, quick=True, progress=None)
    if report["verdict"] == "problem":
        click.echo(doctor_module.render_text(report), err=True)
        click.echo("sweep start stopped before training: fix the problem above, or rerun with --no-doctor",
                   err=True)
        sys.exit(1)
    if not quiet:
        for check in report["checks"]:
            if check["verdict"] != "ok":
                log.warning("doctor: %s %s: %s", check["verdict"], check["name"], check["message"])
        log.info("doctor: quick checks passed (%d warning(s))", report["n_warnings"])
    return report


DOCTOR_EXAMPLE = """
\b
Examples:
  sweep doctor --study resnet-plateau
  sweep doctor --data ./my_images --model resnet50 --weights resnet50.safetensors
  sweep doctor --module mytrain:build --format json
\b
--module mytrain:build imports mytrain (from the current directory) and calls build(), which returns
(model, train_loader, val_loader[, optimizer[, scheduler]]) or a dict with those keys and optionally
train_epoch (your epoch: train_epoch(model, loader, optimizer, scheduler)), data_config ({"mean", "std"}
the pretrained weights expect) and epochs.
"""


@main.command(epilog=DOCTOR_EXAMPLE)
@click.option("--study", "study_name", default=None, metavar="NAME",
              help="Check this sweep's config (the stored one when the study exists) and store the result on it.")
@storage_option
@click.option("--module", "module_target", default=None, metavar="PKG.MOD:FN",
              help="Check your own training setup: FN() returns your model and loaders (see below).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
              help="Sweep config TOML, as for `sweep start`.")
@click.option("--model", type=ModelName(), default=None, help=f"timm ResNet. {_fixed_default('model')}")
@click.option("--weights", default=None, metavar="auto|none|PATH", help="Pretrained weights. [default: auto]")
@click.option("--data", type=DataSource(), default=None, help="As for `sweep start`. [default: digits]")
@click.option("--image-size", type=click.IntRange(16, 1024), default=None, help=f"{_fixed_default('image_size')}")
@click.option("--max-train", type=click.IntRange(0), default=None, help=f"{_fixed_default('max_train')}")
@click.option("--max-val", type=click.IntRange(0), default=None, help=f"{_fixed_default('max_val')}")
@click.option("--baseline", type=BaselineParam(), default=None,
              help="The settings to check with (batch size, dropout, frozen stages, lr, scheduler), e.g. frozen_stages=2.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: the whole report, evidence included, alone on stdout.")
@click.option("--quick", is_flag=True, help="Skip the LR range test (what `sweep start` runs).")
@click.option("--lr-steps", type=click.IntRange(5, 100_000), default=100, show_default=True,
              help="Steps of the LR range test.")
@click.option("--device", type=Device(), default="auto", show_default=True, help="Where the checks run.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def doctor(study_name, storage, module_target, config_file, baseline, output_format, quick, lr_steps, device, quiet,
           **settings):
    """Find the pipeline bugs that no hyperparameter fixes; exit 1 when one is found.

    Checks that evaluation is deterministic, train and validation are normalised alike (and as the
    pretrained weights expect), frozen stages stay frozen, the LR scheduler is stepped, labels are
    sane with no image in both splits, and runs an LR range test that suggests the lr to search.
    """
    import optuna

    from sweep import doctor as doctor_module
    from sweep import study as study_module

    setup_logging(quiet)
    given = [f"--{name.replace('_', '-')}" for name, value in settings.items() if value is not None]
    given += ["--config"] * bool(config_file) + ["--baseline"] * bool(baseline)
    if module_target and given:
        raise click.UsageError(f"--module checks your own setup: {given[0]} does not apply to it (drop it)")
    study = config = None
    if study_name:
        storage_handle = _open(storage)
        names = {s.study_name for s in optuna.get_all_study_summaries(storage_handle, include_best_trial=False)}
        if study_name in names:
            study, config = study_module.load(storage_handle, study_name)
            if given and not module_target:
                raise click.UsageError(
                    f"study {study_name!r} already holds its config: {given[0]} does not apply (drop it, or check "
                    "other settings without --study)"
                )
    if module_target:
        setup = _doctor_setup(doctor_module.setup_from_module, module_target, device)
    else:
        if config is None:
            overrides = {name: value for name, value in settings.items() if value is not None}
            config = _build_config(config_file, dict(overrides, baseline=baseline or {}))
        setup = _doctor_setup(doctor_module.setup_from_config, config, device)
    report = doctor_module.run_checks(setup, quick=quick, lr_steps=lr_steps, progress=_progress_echo(quiet))
    if study is not None:
        _store_doctor(study, config, report)
        log.info("doctor result stored on study %r (user attr %r)", study_name, doctor_module.DOCTOR_ATTR)
    elif study_name:
        log.info("study %r does not exist yet: nothing stored (`sweep start` stores its own checks)", study_name)
    if output_format == "json":
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(doctor_module.render_text(report))
    sys.exit(1 if report["verdict"] == "problem" else 0)


DASHBOARD_EXAMPLE = """
\b
Examples:
  sweep dashboard --study resnet-plateau
  sweep dashboard --study resnet-plateau --port 8081
  sweep dashboard --study resnet-plateau --host 0.0.0.0   # reachable from other machines: no login!
"""


@main.command(epilog=DASHBOARD_EXAMPLE)
@study_option
@storage_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; only this machine can connect unless you change it.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port to listen on.")
def dashboard(study_name, storage, host, port):
    """Open optuna-dashboard on the sweep's storage, with each trial's verdict, plateau epoch and curves.

    Every finished trial gets a note (verdict, plateau epoch, per-epoch losses) and a train/validation
    curve figure; the study note holds the analysis and the doctor's last result.
    """
    from sweep import dashboard as dashboard_module
    from sweep import study as study_module

    setup_logging(quiet=False)
    try:
        dashboard_module.check_bind(host, port)
    except OSError as error:
        raise click.UsageError(
            f"--host {host} --port {port}: cannot listen there ({error.strerror or error}); "
            "choose a free --port, and a --host that is an address of this machine"
        ) from None
    storage_handle = _open(storage)
    study, config = study_module.load(storage_handle, study_name)
    written = dashboard_module.sync(study, config)
    log.info("notes and curves written for %d trial(s) of study %r", written, study_name)
    if not dashboard_module.is_loopback(host):
        log.warning("listening on %s: anyone who can reach this machine sees the dashboard (it has no login)", host)
    log.info("optuna-dashboard for %s on http://%s:%d/dashboard (Ctrl-C stops it)", mask_url(storage), host, port)
    try:
        dashboard_module.serve(storage_handle, host, port)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
