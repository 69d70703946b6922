"""optuna-dashboard on the study's storage: a note and train/val curves per finished trial, and the analysis and
doctor result in the study note."""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass

import optuna
import optuna_dashboard
import plotly.graph_objects as go

from sweep.analysis import classify_curve, render_text
from sweep.record import FINISHED_STATES, TrialRecord

log = logging.getLogger("sweep")

# Last line of every note we write: a note that ends otherwise was written (or edited) by a person and is left alone.
NOTE_MARK = "_Written by plateau-sweep; remove this line to keep your edits._"


@dataclass
class _TrialRef:
    """What optuna_dashboard.save_note reads from a trial; an optuna.Trial cannot be made for a finished one."""

    study: optuna.Study
    _trial_id: int

    @property
    def storage(self):
        return self.study._storage


def curve_figure(record: TrialRecord, verdict) -> go.Figure:
    """Train and validation loss per epoch, with the plateau epoch marked."""
    history = record.history
    epochs = [row["epoch"] for row in history]
    figure = go.Figure()
    if any("train_loss" in row for row in history):
        figure.add_trace(go.Scatter(x=epochs, y=[row.get("train_loss") for row in history], name="train loss",
                                    mode="lines+markers"))
    figure.add_trace(go.Scatter(x=epochs, y=[row.get("val_loss") for row in history], name="validation loss",
                                mode="lines+markers"))
    if verdict.plateau_epoch is not None:
        figure.add_vline(x=verdict.plateau_epoch, line_dash="dash",
                         annotation_text=f"plateau from epoch {verdict.plateau_epoch}")
    figure.update_layout(title=f"Trial {record.number}: {verdict.verdict}", xaxis_title="epoch", yaxis_title="loss")
    return figure


def trial_note(record: TrialRecord, verdict, figure_id: str) -> str:
    """Markdown: verdict, plateau epoch, why, and the curve as a table (the figure is on the study page)."""
    history = record.history
    lines = [
        f"## Trial {record.number}: verdict **{verdict.verdict}**",
        "",
        f"- plateau epoch: {verdict.plateau_epoch if verdict.plateau_epoch is not None else 'none'}",
        f"- state: {record.state}"
        + (f", stopped at epoch {record.pruned_at}" if record.pruned_at else "")
        + (f" ({record.failure})" if record.failure else ""),
    ]
    reason = verdict.evidence.get("reason")
    if reason:
        lines.append(f"- why: {reason}")
    tag = record.confirmation
    if tag:
        lines.append(f"- one-change run from trial {tag['reference']}: " + (
            "the control, unchanged (another seed)" if tag["param"] is None
            else f"{tag['param']} set to {_cell(tag['value'])} alone") + f", seed {tag['replicate']}; never pruned")
    lines += [f"- curves: figure `{figure_id}` on the study page", "",
              "| epoch | train loss | val loss | val acc | lr |", "|---|---|---|---|---|"]
    for row in history:
        cells = [row.get("epoch")] + [row.get(key) for key in ("train_loss", "val_loss", "val_acc", "lr")]
        marker = " ← plateau" if row.get("epoch") == verdict.plateau_epoch else ""
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + marker + " |")
    return "\n".join([*lines, "", NOTE_MARK])


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _is_ours(note: str) -> bool:
    return note == "" or note.rstrip().endswith(NOTE_MARK)


def write_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, *, patience: int, min_delta: float,
                record: TrialRecord | None = None) -> bool:
    """Note and curve figure of one finished trial (``record``: the trial as read, when not a sweep's); False when a
    person's note is there (left alone)."""
    record = record or TrialRecord.from_trial(trial)
    if not record.finished:
        return False
    reference = _TrialRef(study, trial._trial_id)
    if not _is_ours(optuna_dashboard.get_note(reference)):
        return False
    verdict = classify_curve(record.history, patience=patience, min_delta=min_delta, failure=record.failure)
    figure_id = f"trial-{record.number}-curves"
    optuna_dashboard.save_plotly_graph_object(study, curve_figure(record, verdict), graph_object_id=figure_id)
    optuna_dashboard.save_note(reference, trial_note(record, verdict, figure_id))
    return True


class TrialNotes:
    """Optuna callback: writes a trial's note and curves once, when it ends, so the dashboard stays current."""

    def __init__(self, patience: int, min_delta: float):
        self.patience = patience
        self.min_delta = min_delta

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:
            write_trial(study, trial, patience=self.patience, min_delta=self.min_delta)
        except Exception as error:  # a note is a convenience: it never stops a sweep
            log.warning("could not write the dashboard note of trial %d: %s", trial.number, error)


def write_study_note(study: optuna.Study, config, result: dict | None = None) -> None:
    """The study note: the analysis summary (``result`` when the caller has it) and the doctor's last result."""
    from sweep.study import analyze_study

    if result is None:
        result, _, _ = analyze_study(study, config)
    doctor = study.user_attrs.get("doctor")
    if doctor:
        doctor_lines = [f"**{doctor['verdict']}** ({doctor.get('source', '')}, {doctor.get('at', '')})", ""]
        doctor_lines += [f"- `{c['name']}` **{c['verdict']}**: {c['message']}" for c in doctor["checks"]]
    else:
        doctor_lines = ["Not run on this study yet: `sweep doctor --study " + study.study_name + "`."]
    _save_study_note(study, result, ["## sweep doctor", "", *doctor_lines, ""])


def _save_study_note(study: optuna.Study, result: dict, more: list[str]) -> None:
    if any(trial["state"] in FINISHED_STATES for trial in result["trials"]):
        summary = render_text(result)
    else:
        summary = "No finished trials yet."
    body = "\n".join([f"# {study.study_name}", "", "## Analysis", "", "```", summary, "```", "", *more, NOTE_MARK])
    if _is_ours(optuna_dashboard.get_note(study)):
        optuna_dashboard.save_note(study, body)


def _has_curves(attrs: dict, number: int) -> bool:
    return f"dashboard:plot_data:trial-{number}-curves:0" in attrs


def sync(study: optuna.Study, config) -> int:
    """Notes and curves for every finished trial that lacks ours, then the study note; returns trials written."""
    written = 0
    attrs = study._storage.get_study_system_attrs(study._study_id)
    for trial in study.get_trials(deepcopy=False):
        if _has_curves(attrs, trial.number):
            continue
        written += write_trial(study, trial, patience=config.patience, min_delta=config.min_delta)
    write_study_note(study, config)
    return written


def write_notes(study: optuna.Study, *, baseline: int | None = None, patience: int = 2, min_delta: float = 0.01,
                train_loss_attr: str | None = None) -> int:
    """optuna-dashboard notes for any Optuna study whose trials call ``trial.report(value, step)``: each finished
    trial's verdict and curves (once), and the analysis in the study note; returns the trials written.

    The arguments are ``sweep.analysis.analyze_study``'s. Raises ``sweep.analysis.NotAnalyzable`` for a study the
    analysis cannot read.
    """
    from sweep import analysis

    curves = analysis.read_study(study, baseline=baseline, train_loss_attr=train_loss_attr)
    trials = {trial.number: trial for trial in study.get_trials(deepcopy=False)}
    attrs = study._storage.get_study_system_attrs(study._study_id)
    written = sum(write_trial(study, trials[record.number], patience=patience, min_delta=min_delta, record=record)
                  for record in curves.records if not _has_curves(attrs, record.number))
    result = analysis.analyze_curves(curves, study_name=study.study_name, patience=patience, min_delta=min_delta)
    _save_study_note(study, result, [])
    return written


def check_bind(host: str, port: int) -> None:
    """Raise OSError when ``host:port`` cannot be bound (in use, or not an address of this machine)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(storage: optuna.storages.BaseStorage, host: str, port: int, artifact_store=None) -> None:
    """optuna-dashboard's own server (blocks until interrupted); with the study's artifact store, each kept trial's
    best weights (model.safetensors) can be downloaded from its page."""
    optuna_dashboard.run_server(storage, host=host, port=port, artifact_store=artifact_store)


def _artifact_store(config, study: optuna.Study):
    """The study's artifact store, or None (said once) when it is off or cannot be opened: the rest still works."""
    from sweep.artifacts import location_of, open_store
    from sweep.storage import mask_secrets

    location = location_of(config, study) if config.checkpoints else None
    if location is None:
        return None
    try:
        return open_store(location)
    except Exception as error:
        log.warning("artifact store %s cannot be opened (%s): the dashboard shows no weights", mask_secrets(location),
                    mask_secrets(str(error).splitlines()[0] if str(error) else type(error).__name__))
        return None


def _write_foreign_notes(study: optuna.Study) -> int:
    """``write_notes`` with the sweep's plateau rule, on a study that `sweep start` did not make."""
    from sweep.analysis import NotAnalyzable
    from sweep.config import SweepConfig
    from sweep.errors import UsageError

    try:
        return write_notes(study, patience=SweepConfig.patience, min_delta=SweepConfig.min_delta)
    except NotAnalyzable as error:
        raise UsageError(str(error)) from None


def run_dashboard(storage_url: str, study_name: str, host: str, port: int) -> None:
    """``sweep dashboard``: bring the study's notes and curves up to date, then serve until interrupted."""
    from sweep import study as study_module
    from sweep.errors import UsageError
    from sweep.storage import mask_url, open_storage

    try:
        check_bind(host, port)
    except OSError as error:
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({error.strerror or error}); "
                         "choose a free --port, and a --host that is an address of this machine") from None
    storage = open_storage(storage_url)
    study, config = study_module.load_for_reading(storage, study_name)
    written = sync(study, config) if config else _write_foreign_notes(study)
    log.info("notes and curves written for %d trial(s) of study %r", written, study_name)
    artifact_store = _artifact_store(config, study) if config else None
    if not is_loopback(host):
        log.warning("listening on %s: anyone who can reach this machine sees the dashboard (it has no login)", host)
    log.info("optuna-dashboard for %s on http://%s:%d/dashboard (Ctrl-C stops it)", mask_url(storage_url), host, port)
    try:
        serve(storage, host, port, artifact_store)
    except KeyboardInterrupt:
        pass
