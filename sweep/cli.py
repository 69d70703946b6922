"""The ``sweep`` command line: parse and validate, call one service function, print."""

from __future__ import annotations

import json
import sys

import click

from sweep.artifacts import check_location
from sweep.errors import SweepFailed, UsageError
from sweep.logs import setup_logging
from sweep.space import parse_change
from sweep.options import (
    GPUS, Checked, analyze_options, device_option, options, overrides_from, quiet_option, setting_option, setup_options,
    space_options, storage_option, study_option, worker_options,
)

class SweepGroup(click.Group):
    """Known errors become one line (usage: exit 2; the world: exit 1) and a stop signal its exit code, never a
    traceback."""

    def invoke(self, ctx):
        from sweep.storage import heartbeat_settings, mask_secrets, password_on_command_line

        warning = password_on_command_line(sys.argv[1:])
        if warning:
            click.echo(warning, err=True)
        try:
            heartbeat_settings()  # a bad SWEEP_* variable is refused before any work, by every command
            return super().invoke(ctx)
        except UsageError as error:
            raise click.UsageError(mask_secrets(str(error)), ctx) from None
        except SweepFailed as error:
            raise click.ClickException(mask_secrets(str(error))) from None
        except Exception as error:
            from sweep.worker import Interrupted

            if not isinstance(error, Interrupted):
                raise
            click.echo(str(error), err=True)
            sys.exit(error.exit_code)


@click.group(cls=SweepGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="plateau-sweep")
def main():
    """plateau-sweep: find which settings make a fine-tuned ResNet's validation loss move again.

    \b
    Example:
      sweep start --study resnet-plateau
      sweep analyze --study resnet-plateau --format json
    """


# Both commands that train end the same way on a stop signal.
STOP_SIGNALS_NOTE = """\b
SIGINT, SIGTERM and SIGHUP stop it cleanly (the running trial is failed and queued again; exit 130, 143, 129).
"""

START_EXAMPLE = """
\b
Examples:
  sweep start --study resnet-plateau
  sweep start --study resnet-plateau --lr 1e-5:1e-1 --batch-size 16,32,64 --frozen-stages 0:4
  sweep start --study mine --config sweep.toml --data ./my_images --weights resnet50.safetensors
  sweep start --study mine --baseline lr=1e-4,dropout=0.5,frozen_stages=4 --n-trials 40 --epochs 20
  SWEEP_STORAGE=postgresql+psycopg://sweep@db/sweep sweep start --study resnet-plateau --workers 4
""" + STOP_SIGNALS_NOTE


@main.command(epilog=START_EXAMPLE)
@study_option
@storage_option
@setup_options
@space_options
@options(*(setting_option(name) for name in ("val_fraction", "epochs", "n_trials", "seed", "optimizer", "pruner",
                                          "patience", "min_delta", "compile", "skip_bad_images", "checkpoints",
                                          "checkpoint_every", "keep_best", "stop_when", "stop_after", "confirm")))
@setting_option("artifacts", Checked("DIR|s3://BUCKET/PREFIX", check_location))
@device_option
@click.option("--workers", type=click.IntRange(0), default=1, show_default=True,
              help="Local worker processes (one GPU each when there are GPUs); 1 trains in this process; "
                   "0 only creates the study and queues the baseline, for `sweep worker` elsewhere.")
@click.option("--no-doctor", is_flag=True, help="Skip the quick `sweep doctor` checks that run before any training.")
@quiet_option
def start(study_name, storage, device, workers, no_doctor, quiet, config_file, **settings):
    """Create (or resume) a sweep, run its trials, then print the analysis."""
    from sweep.config import build_config
    from sweep.service import start_sweep

    setup_logging(quiet)
    config = build_config(config_file, overrides_from(settings)[0])
    click.echo(start_sweep(study_name, storage, config, device=device, workers=workers, doctor=not no_doctor,
                           quiet=quiet))


CONFIRM_EXAMPLE = """
\b
Examples:
  sweep confirm --study resnet-plateau                        # each parameter back to the baseline's value
  sweep confirm --study resnet-plateau --trial 12 --seeds 2   # from trial 12, two seeds per change
  sweep confirm --study resnet-plateau --value frozen_stages=3 --value lr=3e-5
\b
What the analysis could not rule out, it prints as such a command.
""" + STOP_SIGNALS_NOTE


@main.command(epilog=CONFIRM_EXAMPLE)
@study_option
@storage_option
@click.option("--trial", "trial_number", type=click.IntRange(0), default=None,
              help="The plateau-free trial to start from (default: the best run trained to the end that is still "
                   "improving).")
@click.option("--value", "changes", multiple=True, type=Checked("PARAM=VALUE", parse_change),
              help="One run with this one change from the trial (repeatable; default: each varied parameter set "
                   "back to the baseline's value).")
@click.option("--seeds", type=click.IntRange(1, 5), default=1, show_default=True,
              help="Runs per change, each with its own seed.")
@device_option
@click.option("--workers", type=click.IntRange(0), default=1, show_default=True,
              help="Local worker processes; 1 trains in this process; 0 only queues the runs for `sweep worker`.")
@quiet_option
def confirm(study_name, storage, trial_number, changes, seeds, device, workers, quiet):
    """Prove or rule out causes: one-change runs from a plateau-free trial, trained to the end, never pruned.

    The runs join the study as ordinary trials (its budget grows by their number), so workers, resume and the
    dashboard treat them like any other; the analysis shows what each one proved.
    """
    from sweep.service import confirm_sweep

    setup_logging(quiet)
    click.echo(confirm_sweep(study_name, storage, reference=trial_number, changes=list(changes) or None, seeds=seeds,
                             device=device, workers=workers, quiet=quiet))


ANALYZE_EXAMPLE = """
\b
Examples:
  sweep analyze --study resnet-plateau
  sweep analyze --study resnet-plateau --format json > analysis.json
  sweep analyze --study resnet-plateau --format html --out report.html
  sweep analyze --study resnet-plateau --emit-config best.toml   # then: sweep start --config best.toml
  sweep analyze --study resnet-plateau --emit-config best.toml --warm-start   # ... from the best model's weights
  sweep analyze --study next --against resnet-plateau   # did the sweep from best.toml fix it?
\b
Any Optuna study whose trials call trial.report(val_loss, step) (steps are epochs or every N batches):
  sweep analyze --study my-study --storage sqlite:///optuna.db --train-loss-attr train_loss --baseline-trial 3
A maximized value (accuracy) is negated so that lower is better, and the report says so.
"""


@main.command(epilog=ANALYZE_EXAMPLE)
@study_option
@storage_option
@analyze_options
def analyze(study_name, storage, output_format, out, emit_config, warm_start, patience, min_delta, against,
            baseline_trial, train_loss_attr):
    """Give every trial a verdict and say which settings removed the baseline's plateau."""
    from sweep.service import analyze_sweep

    setup_logging(quiet=True)
    if output_format == "html" and out is None:
        raise click.UsageError("--format html needs --out FILE (e.g. --out report.html)")
    if warm_start and emit_config is None:
        raise click.UsageError("--warm-start goes with --emit-config FILE: it makes that config start from the best "
                               "model's weights")
    text, wrote = analyze_sweep(storage_url=storage, study_name=study_name, output_format=output_format,
                                patience=patience, min_delta=min_delta, emit_config=emit_config,
                                warm_start=warm_start, against=against, baseline_trial=baseline_trial,
                                train_loss_attr=train_loss_attr)
    for line in wrote:
        click.echo(line, err=True)
    if out is None:
        click.echo(text)
    else:
        try:
            out.write_text(text + "\n")
        except OSError as error:  # the folder was checked when parsed; root, a read-only mount or a full disk remain
            raise click.ClickException(f"--out {out}: cannot write it ({error.strerror or error})") from None
        click.echo(f"wrote {out}", err=True)


@main.command(epilog="\b\nExample:\n  sweep status --study resnet-plateau")
@study_option
@storage_option
def status(study_name, storage):
    """Progress of a sweep: trials by state, best trial, plateaus so far, running trials."""
    from sweep.status import status_text

    setup_logging(quiet=True)
    click.echo(status_text(storage, study_name))


WORKER_EXAMPLE = """
\b
Examples:
  SWEEP_STORAGE=postgresql+psycopg://sweep@db/sweep sweep worker --study resnet-plateau --until-done
  sweep worker --study resnet-plateau --device cuda:1 --n-trials 5
""" + STOP_SIGNALS_NOTE


@main.command(epilog=WORKER_EXAMPLE)
@study_option
@storage_option
@device_option
@worker_options
@quiet_option
def worker(study_name, storage, device, max_trials, until_done, worker_index, stop_when, stop_after, quiet):
    """Join an existing study and run its trials; it reads the whole sweep config from the study.

    The study's trial budget is global: all workers together run exactly --n-trials of `sweep start`.
    """
    import logging

    from sweep.worker import run_worker

    setup_logging(quiet)
    logging.getLogger("sweep").info(run_worker(study_name, storage, device=device, max_trials=max_trials,
                                               until_done=until_done, worker_index=worker_index, quiet=quiet,
                                               stop_when=stop_when, stop_after=stop_after))


WORKERS_EXAMPLE = """
\b
Examples:
  SWEEP_STORAGE=postgresql+psycopg://sweep@db/sweep sweep workers --study resnet-plateau
  sweep workers --study resnet-plateau --gpus 0,2     # or --cpu 2 on a host without GPUs
"""


@main.command(epilog=WORKERS_EXAMPLE)
@study_option
@storage_option
@click.option("--gpus", type=GPUS, help="The GPUs that get a worker each. [default: all the visible ones]")
@click.option("--cpu", "n_cpu", type=click.IntRange(1), help="Run N CPU workers instead (a host without GPUs).")
@quiet_option
def workers(study_name, storage, gpus, n_cpu, quiet):
    """One `sweep worker` per GPU of this host, each seeing only its GPU; one that dies is started again (3 times in
    a row at most), and SIGINT, SIGTERM or SIGHUP stops them all cleanly."""
    from sweep.launcher import run_host_workers

    setup_logging(quiet)
    run_host_workers(study_name, storage, gpus=gpus, n_cpu=n_cpu, quiet=quiet)


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
@click.option("--study", "study_name", metavar="NAME",
              help="Check this sweep's config (the stored one when the study exists) and store the result on it.")
@storage_option
@click.option("--module", "module_target", metavar="PKG.MOD:FN",
              help="Check your own training setup: FN() returns your model and loaders (see below).")
@setup_options
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: the whole report, evidence included, alone on stdout.")
@click.option("--quick", is_flag=True, help="Skip the LR range test (what `sweep start` runs).")
@click.option("--lr-steps", type=click.IntRange(5, 100_000), default=100, show_default=True,
              help="Steps of the LR range test.")
@device_option
@quiet_option
def doctor(study_name, storage, module_target, output_format, quick, lr_steps, device, quiet, config_file, **settings):
    """Find the pipeline bugs that no hyperparameter fixes; exit 1 when one is found.

    Checks that evaluation is deterministic, train and validation are normalised alike (and as the
    pretrained weights expect, channel order included) and sized alike, frozen stages stay frozen, your
    training step trains (the optimizer holds the output layer, train mode, no probabilities fed to a
    log-softmax loss, gradients zeroed or accumulated on purpose), the LR scheduler is sized for how
    it is stepped, labels are sane with no image in both splits, the training set is not served sorted
    by class, validation labels are learnable from the images (where neither the model's features nor
    the raw images predict held-out training images, it says "cannot tell" and checks nothing), and
    runs an LR range test that suggests the lr to search.
    """
    from sweep.doctor import render_text
    from sweep.service import doctor_sweep

    setup_logging(quiet)
    overrides, given = overrides_from(settings)
    report = doctor_sweep(storage_url=storage, study_name=study_name, module_target=module_target,
                          config_file=config_file, overrides=overrides, given=given + ["--config"] * bool(config_file),
                          device=device, quick=quick, lr_steps=lr_steps,
                          progress=None if quiet else (lambda message: click.echo(message, err=True)))
    click.echo(json.dumps(report, indent=2) if output_format == "json" else render_text(report))
    sys.exit(1 if report["verdict"] == "problem" else 0)


DASHBOARD_EXAMPLE = """
\b
Examples:
  sweep dashboard --study resnet-plateau
  sweep dashboard --study resnet-plateau --port 8081
  sweep dashboard --study resnet-plateau --host 0.0.0.0   # reachable from other machines: no login!
  sweep dashboard --study resnet-plateau --allow-writes   # notes, deletes and uploads from the browser
"""


@main.command(epilog=DASHBOARD_EXAMPLE)
@study_option
@storage_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; only this machine can connect unless you change it.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port to listen on.")
@click.option("--allow-writes", is_flag=True,
              help="Let the browser change the study (delete it or its trials' weights, edit notes and attrs, "
                   "upload artifacts, tell trials); without it every such request gets 403.")
def dashboard(study_name, storage, host, port, allow_writes):
    """Open optuna-dashboard on the sweep's storage, with each trial's verdict, plateau epoch and curves.

    Every finished trial gets a note (verdict, plateau epoch, per-epoch losses) and a train/validation
    curve figure; the study note holds the analysis and the doctor's last result. Read-only unless
    --allow-writes: it has no login.
    """
    from sweep.dashboard import run_dashboard

    setup_logging(quiet=False)
    run_dashboard(storage, study_name, host, port, allow_writes=allow_writes)


@main.command(epilog="\b\nExample:\n  sweep export --study resnet-plateau --out model/   # timm: 'local-dir:model'")
@study_option
@storage_option
@click.option("--trial", "trial_number", type=click.IntRange(0),
              help="The trial to export. [default: the best complete trial that did not plateau or diverge]")
@click.option("--out", type=click.Path(file_okay=False, writable=True), required=True,
              help="Folder for model.safetensors, config.json (timm reads both) and trial.json (params, verdict).")
def export(study_name, storage, trial_number, out):
    """Write a trial's best weights as a timm model; `sweep start --weights OUT/model.safetensors` starts from it."""
    from sweep.export import export_model

    setup_logging(quiet=True)
    click.echo(export_model(storage, study_name, out, trial_number))


if __name__ == "__main__":
    main()
