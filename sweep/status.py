"""``sweep status``: a study's progress as plain data, and its text form."""

from __future__ import annotations

from collections import Counter

import optuna

from sweep.config import SweepConfig
from sweep.worker import BUDGET_STATES


def study_status(study: optuna.Study, config: SweepConfig, storage: optuna.storages.BaseStorage | None = None) -> dict:
    from sweep.analysis import classify_curve
    from sweep.storage import GRACE_PERIOD, heartbeat_ages

    heartbeats = heartbeat_ages(storage, study) if storage is not None else {}

    trials = study.get_trials(deepcopy=False)
    states = Counter(trial.state.name for trial in trials)
    verdicts = Counter(
        classify_curve(
            trial.user_attrs.get("history", []), patience=config.patience, min_delta=config.min_delta,
            failure=trial.user_attrs.get("failure"),
        ).verdict
        for trial in trials
        if trial.state in BUDGET_STATES
    )
    completed = [trial for trial in trials if trial.state == optuna.trial.TrialState.COMPLETE]
    best = min(completed, key=lambda trial: trial.value) if completed else None
    running = [
        {
            "number": trial.number,
            "epochs_done": len(trial.user_attrs.get("history", [])),
            "worker": trial.user_attrs.get("worker", {}),
            "started": trial.datetime_start.isoformat(timespec="seconds") if trial.datetime_start else None,
            "heartbeat_age": heartbeats.get(trial.number),
        }
        for trial in trials
        if trial.state == optuna.trial.TrialState.RUNNING
    ]
    # A worker is alive while the trial it runs beats within the grace period (Optuna's own staleness rule).
    alive = {
        (trial["worker"].get("host"), trial["worker"].get("pid"))
        for trial in running
        if trial["heartbeat_age"] is not None and trial["heartbeat_age"] <= GRACE_PERIOD
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
        "grace_period": GRACE_PERIOD,
    }


def render_status(status: dict) -> str:
    lines = [f"study {status['study']}: {status['finished']}/{status['n_trials']} trials finished"]
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
