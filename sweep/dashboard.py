"""optuna-dashboard on the study's storage: a note and train/val curves per finished trial, and the analysis and
doctor result in the study note."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from dataclasses import dataclass

import optuna
import optuna_dashboard
import plotly.graph_objects as go

from sweep.analysis import classify_curve
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


def write_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, *, patience: int, min_delta: float) -> bool:
    """Note and curve figure of one finished trial; False when a person's note is there (left alone)."""
    record = TrialRecord.from_trial(trial)
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
    from sweep import analysis
    from sweep.study import analyze_study

    if result is None:
        result, _, _ = analyze_study(study, config)
    if any(trial["state"] in FINISHED_STATES for trial in result["trials"]):
        summary = analysis.render_text(result)
    else:
        summary = "No finished trials yet."
    doctor = study.user_attrs.get("doctor")
    if doctor:
        doctor_lines = [f"**{doctor['verdict']}** ({doctor.get('source', '')}, {doctor.get('at', '')})", ""]
        doctor_lines += [f"- `{c['name']}` **{c['verdict']}**: {c['message']}" for c in doctor["checks"]]
    else:
        doctor_lines = ["Not run on this study yet: `sweep doctor --study " + study.study_name + "`."]
    body = "\n".join([f"# {study.study_name}", "", "## Analysis", "", "```", summary, "```", "",
                      "## sweep doctor", "", *doctor_lines, "", NOTE_MARK])
    if _is_ours(optuna_dashboard.get_note(study)):
        optuna_dashboard.save_note(study, body)


def sync(study: optuna.Study, config) -> int:
    """Notes and curves for every finished trial that lacks ours, then the study note; returns trials written."""
    written = 0
    attrs = study._storage.get_study_system_attrs(study._study_id)
    for trial in study.get_trials(deepcopy=False):
        if f"dashboard:plot_data:trial-{trial.number}-curves:0" in attrs:
            continue
        written += write_trial(study, trial, patience=config.patience, min_delta=config.min_delta)
    write_study_note(study, config)
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


def serve(storage: optuna.storages.BaseStorage, host: str, port: int, artifact_store=None, keep_best: int = 0) -> None:
    """optuna-dashboard's own server (blocks until interrupted); with the study's artifact store, each kept trial's
    best weights (model.safetensors) can be downloaded from its page."""
    import bottle

    app = optuna_dashboard.wsgi(storage, artifact_store=artifact_store)
    bottle.run(RemovedWeights(app, artifact_store, keep_best) if artifact_store is not None else app,
               host=host, port=port)


class RemovedWeights:
    """WSGI middleware: a download of weights that --keep-best removed answers 404 with a sentence. The trial still
    lists them (a finished trial's record cannot change), and optuna-dashboard's route fails on the missing file
    with a bare 500."""

    PATH = re.compile(r"/artifacts/\d+/\d+/(?P<artifact_id>[0-9a-fA-F-]+)")

    def __init__(self, app, store, keep_best: int):
        self.app, self.store, self.keep_best = app, store, keep_best

    def _stored(self, artifact_id: str) -> bool:
        from optuna.artifacts.exceptions import ArtifactNotFound

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
    study, config = study_module.load(storage, study_name)
    log.info("notes and curves written for %d trial(s) of study %r", sync(study, config), study_name)
    artifact_store = _artifact_store(config, study)
    if not is_loopback(host):
        log.warning("listening on %s: anyone who can reach this machine sees the dashboard (it has no login)", host)
    log.info("optuna-dashboard for %s on http://%s:%d/dashboard (Ctrl-C stops it)", mask_url(storage_url), host, port)
    try:
        serve(storage, host, port, artifact_store, config.keep_best)
    except KeyboardInterrupt:
        pass
