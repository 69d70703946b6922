"""What the commands do, one function each, callable without click: start a sweep, check a setup, analyse a study.
No torch at import: ``sweep analyze`` uses this module too.

``sweep worker``, ``status`` and ``dashboard`` have theirs beside what they run (worker.py, status.py, dashboard.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from sweep import analysis, space
from sweep import study as study_module
from sweep.artifacts import exportable, settle_location
from sweep.config import SweepConfig, build_config
from sweep.confirm import due_runs, plateau_free_trials, queue_runs
from sweep.dashboard import write_study_note as write_dashboard_note
from sweep.errors import SweepFailed, UsageError
from sweep.export import export_model
from sweep.next_steps import (MORE_TRIALS, after_sweep_lines, annotate, more_trials_command, next_epochs,
                              short_runs, short_runs_warning)
from sweep.launcher import run_local_workers
from sweep.storage import describe_error, mask_secrets, mask_url, open_storage
from sweep.study import finished_count
from sweep.study_record import DOCTOR, StudyWriter, stop_reason
from sweep.worker import run_here

if TYPE_CHECKING:
    import torch

log = logging.getLogger("sweep")


class SetupProblem(SweepFailed):
    """The quick doctor found a problem in the sweep's own setup; nothing was trained."""


def start_sweep(study_name: str, storage_url: str, config: SweepConfig, *, device: torch.device, workers: int = 1,
                doctor: bool = True, quiet: bool = False) -> str:
    """Run (or resume) the sweep; returns what the command prints: the analysis, or how to start workers.

    ``workers``: 1 trains in this process, N > 1 starts N local worker processes, 0 only creates the
    study and queues the baseline. Raises ``worker.Interrupted`` on a stop signal.
    """
    for problem in space.check_baseline(config.baseline, config.space):
        log.warning("baseline %s: it runs as given, but the sweep won't sample there", problem)
    short = short_runs_warning(config)
    if short:
        log.warning(short)
    report = check_before_start(config, device, quiet) if doctor else check_data_and_weights(config)
    storage = open_storage(storage_url)
    config = settle_location(config, storage, study_name, storage_url)
    study, created = study_module.create_or_resume(storage, study_name, config)
    if report is not None:
        store_doctor(study, config, report)
    verb = "created" if created else f"resumed ({finished_count(study)}/{config.n_trials} trials done)"
    where = mask_url(storage_url)
    if workers == 0:
        log.info("study %r %s in %s; no workers started here", study_name, verb, where)
        return (f"study {study_name!r} ready: start workers with\n"
                f"  SWEEP_STORAGE='{where}' sweep worker --study {study_name} --until-done")
    if workers > 1:
        log.info("study %r %s in %s; %d local workers", study_name, verb, where, workers)
        run_local_workers(study_name, storage_url, workers, device, quiet)
    else:
        log.info("study %r %s in %s; training on %s", study_name, verb, where, device)
        # it stays while other workers' trials run, to retry the trial of one that died
        run_here(study, config, storage, device, until_done=True, quiet=quiet)
    return finish(study, config, storage_url)


def confirm_sweep(study_name: str, storage_url: str, *, reference: int | None = None,
                  changes: list[tuple[str, object]] | None = None, seeds: int = 1, device: torch.device,
                  workers: int = 1, quiet: bool = False) -> str:
    """``sweep confirm``: queue one-change runs from a plateau-free trial, grow the budget by their number, run them
    as ``sweep start`` runs trials, and return the analysis (or, with ``workers=0``, what was queued)."""
    storage = open_storage(storage_url)
    study, config = study_module.load(storage, study_name)
    candidates = plateau_free_trials(study, config)
    if reference is not None and reference not in candidates:
        raise UsageError(f"--trial {reference}: not a plateau-free run of study {study_name!r} trained to the end; "
                         f"choose one of {', '.join(map(str, candidates)) or 'none yet: run more trials first'}")
    if not candidates:
        more = more_trials_command(study_name, config, storage_url, n_trials=config.n_trials + MORE_TRIALS,
                                   lift_stop=True)
        first = ("its trials train too few epochs for any verdict: start a new study first" if short_runs(config)
                 else "run more trials first")
        raise UsageError(f"study {study_name!r} has no plateau-free run trained to the end to start from: {first} "
                         f"({more})")
    start = reference if reference is not None else candidates[0]
    runs = due_runs(study, config, reference_number=start, changes=changes, replicates=seeds, slots=10_000)
    if not runs:
        raise UsageError(f"trial {start} already has every varied parameter at the baseline's value: name a change "
                         "with --value PARAM=VALUE")
    config = study_module.grow_budget(study, config, len(runs))
    queue_runs(study, runs)
    where = mask_url(storage_url)
    if workers == 0:
        return (f"{len(runs)} one-change run(s) queued in study {study_name!r} (budget now {config.n_trials}); "
                f"start workers with\n  SWEEP_STORAGE='{where}' sweep worker --study {study_name} --until-done")
    if workers > 1:
        run_local_workers(study_name, storage_url, workers, device, quiet)
    else:
        run_here(study, config, storage, device, until_done=True, quiet=quiet)
    return finish(study, config, storage_url)


def finish(study, config: SweepConfig, storage_url: str) -> str:
    """The analysis as text, also written to the study's dashboard note, and the commands to run next."""
    result, records, _ = study_module.analyze_study(study, config)
    annotate(result, study.study_name, config, storage_url, stop_reason(study))
    write_study_note(study, config, result)
    export = config.checkpoints and exportable(records, patience=config.patience, min_delta=config.min_delta)
    return analysis.render_text(result) + "\n" + "\n".join(after_sweep_lines(study.study_name, storage_url,
                                                                               export=export))


def check_data_and_weights(config: SweepConfig) -> None:
    """Without the doctor: load the data and weights once, so a bad --data or --weights fails in one line."""
    from sweep.trial import check_setup  # torch: it builds the model

    try:
        check_setup(config)
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(mask_secrets(str(error)).splitlines()[0]) from None


def check_before_start(config: SweepConfig, device: torch.device, quiet: bool) -> dict:
    """The doctor's quick checks on the sweep's own setup; a problem stops the sweep before any training."""
    from sweep import doctor  # torch: the doctor trains

    log.info("doctor: quick checks of the setup before any training (--no-doctor skips them)")
    report = doctor.run_doctor(config=config, device=device, quick=True, progress=lambda line: log.info("doctor: %s", line))
    if report["verdict"] == "problem":
        raise SetupProblem(doctor.render_text(report)
                           + "\nsweep start stopped before training: fix the problem above, or rerun with --no-doctor")
    if not quiet:
        for check in report["checks"]:
            if check["verdict"] != "ok":
                log.warning("doctor: %s %s: %s", check["verdict"], check["name"], check["message"])
        log.info("doctor: quick checks passed (%d warning(s))", report["n_warnings"])
    return report


def store_doctor(study, config: SweepConfig, report: dict) -> None:
    """The doctor's summary on the study (user attr), and the study's dashboard note brought up to date."""
    from sweep.doctor import summary  # torch: the doctor trains

    StudyWriter(study).doctor(summary(report))
    write_study_note(study, config)


def write_study_note(study, config: SweepConfig, result: dict | None = None) -> None:
    try:
        write_dashboard_note(study, config, result)
    except Exception as error:  # the note is a convenience: never fail a command over it
        log.warning("could not write the dashboard's study note: %s", describe_error(error))


def doctor_sweep(*, storage_url: str, study_name: str | None, module_target: str | None, config_file: Path | None,
                 overrides: dict, given: list[str], device: torch.device, quick: bool, lr_steps: int,
                 progress=None) -> dict:
    """``sweep doctor``: check the user's own setup (``module_target``) or a sweep's (stored on ``study_name`` when
    it exists, else from ``config_file`` and ``overrides``); the report is stored on the study when there is one.

    ``given`` names the setting flags the user passed, for the one-line refusals.
    """
    from sweep import doctor  # torch: the doctor trains

    if module_target and given:
        raise UsageError(f"--module checks your own setup: {given[0]} does not apply to it (drop it)")
    study = config = None
    if study_name:
        storage = open_storage(storage_url)
        if study_module.exists(storage, study_name):
            study, config = study_module.load(storage, study_name)
            if given and not module_target:
                raise UsageError(f"study {study_name!r} already holds its config: {given[0]} does not apply (drop it, "
                                 "or check other settings without --study)")
        else:
            log.info("study %r does not exist yet: nothing will be stored (`sweep start` stores its own checks)",
                     study_name)
    if module_target:
        report = doctor.run_doctor(module_target=module_target, device=device, quick=quick, lr_steps=lr_steps,
                                   progress=progress)
    else:
        config = config or build_config(config_file, overrides)
        report = doctor.run_doctor(config=config, device=device, quick=quick, lr_steps=lr_steps, progress=progress)
    if study is not None:
        store_doctor(study, config, report)
        log.info("doctor result stored on study %r (user attr %r)", study_name, DOCTOR)
    return report


def compare_with(storage, against: str, study_name: str, config: SweepConfig, result: dict, records: list,
                 patience: int | None, min_delta: float | None) -> dict:
    """The comparison of ``result`` with study ``against``, judged alike; a different setup is a warning per setting."""
    if against == study_name:
        raise UsageError(f"--against {against!r} is the study analysed: name the earlier study to compare it with")
    if not study_module.exists(storage, against):
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
        raise UsageError(f"--against {against!r}: no such study in this storage (studies here: {', '.join(names)})")
    other, other_config = study_module.load(storage, against)
    other_result, other_records, _ = study_module.analyze_study(other, other_config, patience=patience,
                                                                min_delta=min_delta)
    given = {"patience": patience, "min_delta": min_delta}  # a threshold given on the command line judges both alike
    differences = [d for d in analysis.setup_differences(config.to_dict(), other_config.to_dict())
                   if given.get(d["setting"]) is None]
    for difference in differences:
        log.warning("--against %s: not the same setup: %s %s here, %s there", against, difference["setting"],
                    difference["this"], difference["against"])
    return analysis.compare_studies(result, other_result, records, other_records, differences)


def analyze_sweep(*, storage_url: str, study_name: str, output_format: str = "text", patience: int | None = None,
                  min_delta: float | None = None, emit_config: Path | None = None, warm_start: bool = False,
                  against: str | None = None, baseline_trial: int | None = None,
                  train_loss_attr: str | None = None) -> tuple[str, list[str]]:
    """``sweep analyze``: the study's analysis as text, json or html, and a line per file written beside it.

    ``emit_config``: also the next sweep's config (TOML) and the best trial's params beside it (NAME.params.json);
    with ``warm_start`` the best plateau-free trial's model too (NAME.model/), which the config starts from.
    ``against``: compared with that study. ``baseline_trial``: compare with this trial instead of the baseline.
    A study that `sweep start` did not make is read from its trials' reported values (``analyze_optuna_study``)."""
    storage = open_storage(storage_url)
    study, config = study_module.load_for_reading(storage, study_name)
    if config is None:
        given = [flag for flag, value in (("--emit-config", emit_config), ("--warm-start", warm_start),
                                          ("--against", against)) if value]
        if given:
            raise UsageError(f"{given[0]} works on sweeps made by `sweep start`; study {study_name!r} was not, so its "
                             "parameters are not the sweep's (drop it)")
        return analyze_optuna_study(study, output_format=output_format, patience=patience, min_delta=min_delta,
                                    baseline_trial=baseline_trial, train_loss_attr=train_loss_attr), []
    if train_loss_attr is not None:
        raise UsageError(f"--train-loss-attr {train_loss_attr}: study {study_name!r} was made by `sweep start`, which "
                         "records each epoch's training loss itself (drop it)")
    result, records, distributions = study_module.analyze_study(study, config, patience=patience, min_delta=min_delta,
                                                                baseline=baseline_trial)
    annotate(result, study_name, config, storage_url, stop_reason(study))
    if against is not None:
        result["comparison"] = compare_with(storage, against, study_name, config, result, records, patience, min_delta)
    wrote = []
    if emit_config is not None:
        fixed = analysis.carried_settings(config.to_dict())
        note = f"Fixed settings: study {study_name!r}'s; flags given to `sweep start` override them."
        short = short_runs(config)
        if short:
            fixed["epochs"] = next_epochs(config)
            note += (f"\n# epochs: {fixed['epochs']}, not the study's {config.epochs}: a verdict needs at least "
                     f"{short['epochs_to_judge']} (patience {config.patience} + 1).")
        if warm_start:
            folder = emit_config.with_name(emit_config.stem + ".model")
            try:
                wrote.append(export_model(storage_url, study_name, folder))
            except SweepFailed as error:
                raise SweepFailed(f"--warm-start: {error}; `sweep export --study {study_name} --trial N --out DIR` "
                                  "exports the one you choose, for --weights DIR/model.safetensors") from None
            fixed["weights"] = str((folder / "model.safetensors").resolve())
            note += f"\n# weights: the model of study {study_name!r} exported to {folder} (--warm-start)."
        config_text, params_text = analysis.emit_config(result, distributions, fixed, note)
        params_path = emit_config.with_name(emit_config.stem + ".params.json")
        try:
            emit_config.write_text(config_text)
            params_path.write_text(params_text)
        except OSError as error:
            raise SweepFailed(f"--emit-config {emit_config}: cannot write {error.filename} "
                              f"({error.strerror or error})") from None
        wrote.append(f"wrote {emit_config} (sweep start --config {emit_config}) and {params_path}")
    if output_format == "json":
        return json.dumps(result, indent=2), wrote
    if output_format == "html":
        return analysis.render_html(result, records, distributions), wrote
    return analysis.render_text(result), wrote


def analyze_optuna_study(study: optuna.Study, *, output_format: str = "text", patience: int | None = None,
                         min_delta: float | None = None, baseline_trial: int | None = None,
                         train_loss_attr: str | None = None) -> str:
    """``sweep analyze`` on a study that `sweep start` did not make, through the public ``sweep.analysis`` API; the
    plateau rule's defaults are the sweep's."""
    flags = {"baseline": f"--baseline-trial {baseline_trial}",
             "train_loss_attr": f"--train-loss-attr {train_loss_attr}"}
    try:
        curves = analysis.read_study(study, baseline=baseline_trial, train_loss_attr=train_loss_attr)
    except analysis.NotAnalyzable as error:
        raise UsageError(f"{flags[error.argument]}: {error}" if error.argument else str(error)) from None
    result = analysis.analyze_curves(curves, study_name=study.study_name,
                                     patience=SweepConfig.patience if patience is None else patience,
                                     min_delta=SweepConfig.min_delta if min_delta is None else min_delta)
    if output_format == "json":
        return json.dumps(result, indent=2)
    if output_format == "html":
        return analysis.render_html(result, curves.records, curves.distributions)
    return analysis.render_text(result)
