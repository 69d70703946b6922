"""optuna-dashboard on the study's storage: a note and train/val curves per finished trial, and the analysis and
doctor result in the study note; served read-only unless writes are asked for."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
from dataclasses import dataclass

import optuna
from optuna.artifacts.exceptions import ArtifactNotFound
import optuna_dashboard
import plotly.graph_objects as go

from sweep import analysis
from sweep import study as study_module
from sweep.analysis import classify_curve, render_text
from sweep.artifacts import open_study_store
from sweep.config import SweepConfig
from sweep.errors import UsageError
from sweep.optuna_internals import study_storage, trial_id
from sweep.record import FINISHED_STATES, TrialRecord
from sweep.storage import describe_error, mask_url, open_storage
from sweep.study_record import dashboard_figures, doctor_summary

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
        return study_storage(self.study)


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
    reference = _TrialRef(study, trial_id(trial))
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
            log.warning("could not write the dashboard note of trial %d: %s", trial.number, describe_error(error))


def write_study_note(study: optuna.Study, config, result: dict | None = None) -> None:
    """The study note: the analysis summary (``result`` when the caller has it) and the doctor's last result."""
    if result is None:
        result, _, _ = study_module.analyze_study(study, config)
    doctor = doctor_summary(study)
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


def sync(study: optuna.Study, config, storage: optuna.storages.BaseStorage) -> int:
    """Notes and curves for every finished trial that lacks ours, then the study note; returns trials written."""
    written = 0
    figures = dashboard_figures(storage, study.study_name)
    for trial in study.get_trials(deepcopy=False):
        if f"trial-{trial.number}-curves" in figures:
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
    curves = analysis.read_study(study, baseline=baseline, train_loss_attr=train_loss_attr)
    trials = {trial.number: trial for trial in study.get_trials(deepcopy=False)}
    figures = dashboard_figures(study_storage(study), study.study_name)
    written = sum(write_trial(study, trials[record.number], patience=patience, min_delta=min_delta, record=record)
                  for record in curves.records if f"trial-{record.number}-curves" not in figures)
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


# Every route optuna-dashboard serves with these methods only reads; all its writes are POST, PUT or DELETE.
READ_METHODS = frozenset({"GET", "HEAD"})
READ_ONLY_REASON = ("this dashboard is read-only (no deleting studies, trials' notes, attrs or artifacts): "
                    "start it with `sweep dashboard --allow-writes` to change the study from here")


class RemovedWeights:
    """WSGI middleware: a download of weights that --keep-best removed answers 404 with a sentence. The trial still
    lists them (a finished trial's record cannot change), and optuna-dashboard's route fails on the missing file
    with a bare 500."""

    PATH = re.compile(r"/artifacts/\d+/\d+/(?P<artifact_id>[0-9a-fA-F-]+)")

    def __init__(self, app, store, keep_best: int):
        self.app, self.store, self.keep_best = app, store, keep_best

    def _stored(self, artifact_id: str) -> bool:
        try:
            self.store.open_reader(artifact_id).close()
            return True
        except (ArtifactNotFound, FileNotFoundError):
            return False

    def __call__(self, environ, start_response):
        match = self.PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None or environ.get("REQUEST_METHOD") != "GET" or self._stored(match["artifact_id"]):
            return self.app(environ, start_response)
        body = (f"These weights were removed: a sweep keeps only its best {self.keep_best} trials' weights "
                "(--keep-best). Download one of those, or export the best with `sweep export`.\n").encode()
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                         ("Content-Length", str(len(body)))])
        return [body]


def read_only(app):
    """WSGI middleware: requests other than GET and HEAD get 403 with a one-line reason, in the ``{"reason": ...}``
    JSON that the dashboard's own pages show; optuna-dashboard has no login, so anyone who reaches it could
    otherwise delete the study and its kept weights."""
    body = json.dumps({"reason": READ_ONLY_REASON}).encode()

    def guarded(environ, start_response):
        if environ.get("REQUEST_METHOD", "GET").upper() in READ_METHODS:
            return app(environ, start_response)
        start_response("403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return guarded


def serve(storage: optuna.storages.BaseStorage, host: str, port: int, artifact_store=None, *, keep_best: int = 0,
          allow_writes: bool = False) -> None:
    """optuna-dashboard's app on its own server (bottle's wsgiref, as its run_server; blocks until interrupted); with
    the study's artifact store, each kept trial's best weights (model.safetensors) can be downloaded from its page."""
    import bottle

    app = optuna_dashboard.wsgi(storage, artifact_store=artifact_store)
    if artifact_store is not None:
        app = RemovedWeights(app, artifact_store, keep_best)
    bottle.run(app if allow_writes else read_only(app), host=host, port=port)


def _write_foreign_notes(study: optuna.Study) -> int:
    """``write_notes`` with the sweep's plateau rule, on a study that `sweep start` did not make."""
    try:
        return write_notes(study, patience=SweepConfig.patience, min_delta=SweepConfig.min_delta)
    except analysis.NotAnalyzable as error:
        raise UsageError(str(error)) from None


def run_dashboard(storage_url: str, study_name: str, host: str, port: int, *, allow_writes: bool = False) -> None:
    """``sweep dashboard``: bring the study's notes and curves up to date, then serve until interrupted."""
    try:
        check_bind(host, port)
    except OSError as error:
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({error.strerror or error}); "
                         "choose a free --port, and a --host that is an address of this machine") from None
    storage = open_storage(storage_url)
    study, config = study_module.load_for_reading(storage, study_name)
    written = sync(study, config, storage) if config else _write_foreign_notes(study)
    log.info("notes and curves written for %d trial(s) of study %r", written, study_name)
    opened = open_study_store(config, storage) if config else None  # without one the dashboard shows no weights
    if not is_loopback(host):
        reach = "can delete the study and its weights" if allow_writes else "sees the dashboard"
        log.warning("listening on %s: anyone who can reach this machine %s (it has no login)", host, reach)
    log.info("optuna-dashboard for %s on http://%s:%d/dashboard, %s (Ctrl-C stops it)", mask_url(storage_url), host,
             port, "writes allowed" if allow_writes else "read-only")
    try:
        serve(storage, host, port, opened.store if opened is not None else None,
              keep_best=config.keep_best if config else 0, allow_writes=allow_writes)
    except KeyboardInterrupt:
        pass
