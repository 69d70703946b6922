"""``sweep status``: a study's progress as plain data, and its text form."""

from __future__ import annotations

from collections import Counter

import optuna

from sweep.analysis.curves import classify_curve
from sweep.config import SweepConfig
from sweep.record import TrialRecord
from sweep.storage import heartbeat_settings, open_storage
from sweep.study import BUDGET_STATES, load
from sweep.study_record import heartbeat_ages, stop_reason


def status_text(storage_url: str, study_name: str) -> str:
    """``sweep status``: the study's progress as text."""
    storage = open_storage(storage_url)
    study, config = load(storage, study_name)
    return render_status(study_status(study, config, storage=storage))


def study_status(study: optuna.Study, config: SweepConfig, storage: optuna.storages.BaseStorage | None = None) -> dict:
    heartbeats = heartbeat_ages(storage, study.study_name) if storage is not None else {}
    grace_period = heartbeat_settings().grace_period
    trials = study.get_trials(deepcopy=False)
    records = [TrialRecord.from_trial(trial) for trial in trials]
    states = Counter(record.state for record in records)
    budget_states = {state.name for state in BUDGET_STATES}
    verdicts = Counter(
        classify_curve(record.history, patience=config.patience, min_delta=config.min_delta,
                       failure=record.failure).verdict
        for record in records
        if record.state in budget_states
    )
    completed = [record for record in records if record.state == "COMPLETE"]
    best = min(completed, key=lambda record: record.value) if completed else None
    running = [
        {
            "number": record.number,
            "epochs_done": record.epochs_done,
            "worker": record.worker,
            "started": record.started,
            "heartbeat_age": heartbeats.get(record.number),
        }
        for record in records
        if record.state == "RUNNING"
    ]
    # A worker is alive while the trial it runs beats within the grace period (Optuna's own staleness rule).
    alive = {
        (trial["worker"].get("host"), trial["worker"].get("pid"))
        for trial in running
        if trial["heartbeat_age"] is not None and trial["heartbeat_age"] <= grace_period
    }
    return {
        "study": study.study_name,
        "n_trials": config.n_trials,
        "finished": sum(states[state.name] for state in BUDGET_STATES),
        "states": dict(states),
        "verdicts": dict(verdicts),
        "best": {"number": best.number, "value": best.value, "params": best.params} if best else None,
        "running": running,
        "workers_alive": len(alive),
        "stopped": stop_reason(study),
        "stop_when": config.stop_when,
        "grace_period": grace_period,
    }


def render_status(status: dict) -> str:
    lines = [f"study {status['study']}: {status['finished']}/{status['n_trials']} trials finished"]
    if status.get("stopped"):
        lines.append(f"  stopped before the budget (--stop-when {status['stopped']['rule']}, after "
                     f"{status['stopped']['n_finished']} trials): {status['stopped']['reason']}")
    elif status.get("stop_when", "never") != "never":
        lines.append(f"  --stop-when {status['stop_when']}: not yet")
    lines.append("  states: " + (", ".join(f"{k.lower()} {v}" for k, v in sorted(status["states"].items())) or "none yet"))
    if status["verdicts"]:
        plateaus = status["verdicts"].get("plateau", 0)
        lines.append(f"  plateau in {plateaus} of {sum(status['verdicts'].values())} finished trials; "
                     + ", ".join(f"{k} {v}" for k, v in sorted(status["verdicts"].items())))
    if status["best"]:
        best = status["best"]
        params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items())
        lines.append(f"  best: trial {best['number']} val_loss {best['value']:.4f} ({params})")
    if "workers_alive" in status:
        lines.append(f"  workers alive: {status['workers_alive']} (running a trial, heartbeat within {status['grace_period']}s)")
    for trial in status["running"]:
        worker = trial["worker"]
        where = f"{worker.get('host', '?')} pid {worker.get('pid', '?')} {worker.get('device', '')}".strip()
        age = trial.get("heartbeat_age")
        if age is None:
            beat = "no heartbeat yet"
        else:
            beat = f"last heartbeat {age:.0f}s ago" + (" (stale: will be failed and retried)" if age > status["grace_period"] else "")
        lines.append(f"  running: trial {trial['number']} epoch {trial['epochs_done']} on {where}, "
                     f"since {trial['started']}, {beat}")
    return "\n".join(lines)
