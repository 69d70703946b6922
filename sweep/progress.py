"""Progress of a sweep on stderr: bars on a terminal; otherwise (logs, CI, `docker compose logs`) one line per trial
start, per epoch and per finished trial; nothing with --quiet."""

from __future__ import annotations

import optuna
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sweep.optuna_internals import study_storage
from sweep.record import TrialRecord
from sweep.storage import heartbeat_settings
from sweep.study_record import heartbeat_ages


def describe_params(params: dict) -> str:
    parts = []
    for name, value in params.items():
        parts.append(f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}")
    return " ".join(parts)


def describe_trial(trial: optuna.trial.FrozenTrial) -> str:
    record = TrialRecord.from_trial(trial)
    if record.duplicate_of is not None:
        return f"trial {record.number} skipped: same params as trial {record.duplicate_of}, not trained again"
    if record.state == "COMPLETE":
        outcome = f"best val_loss {record.value:.4f} after {record.epochs_done} epochs"
    elif record.state == "PRUNED":
        at = record.pruned_at if record.pruned_at is not None else record.epochs_done
        outcome = f"stopped at epoch {at}: {record.failure}" if record.failure else f"pruned at epoch {at}"
        if record.history:
            outcome += f" (val_loss {record.history[-1]['val_loss']:.4f})"
    else:
        outcome = record.state.lower()
    return f"trial {record.number} {outcome}"


def waiting_line(study: optuna.Study, finished: int, running: set[int]) -> str:
    """What a worker waits for once the budget is handed out: whose trials, and when a silent one is run again (a
    resumed sweep waits here for the trial its killed run left RUNNING)."""
    try:
        ages = heartbeat_ages(study_storage(study), study.study_name)
    except Exception:  # the database away: the line goes without the ages
        ages = {}
    trials = ", ".join(f"trial {number}" + (f" (last heartbeat {ages[number]:.0f}s ago)" if number in ages else "")
                       for number in sorted(running))
    return (f"budget handed out ({finished} finished, {len(running)} running): waiting for {trials}; a trial "
            f"without a heartbeat for {heartbeat_settings().grace_period}s is failed and run again")


class SweepProgress:
    """Both an Optuna callback (trial finished) and the objective's progress sink (trial/epoch)."""

    def __init__(self, n_trials: int, done: int, epochs: int, *, quiet: bool = False, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.live = not quiet and self.console.is_terminal
        self.epochs = epochs
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
            console=self.console,
            disable=not self.live,
        )
        self._trials = self._progress.add_task("trials", total=n_trials, completed=done, note="")
        self._epochs = self._progress.add_task("epochs", total=epochs, note="")

    def __enter__(self) -> "SweepProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, highlight=False, soft_wrap=True)

    def _line(self, message: str) -> None:
        """A plain line where no bar is drawn."""
        if not self.live:
            self.log(message)

    def trial_started(self, number: int, params: dict) -> None:
        self._progress.update(self._epochs, description=f"trial {number}", completed=0, note=describe_params(params))
        self._line(f"trial {number} started: {describe_params(params)}")

    def epoch_done(self, number: int, record, epochs: int) -> None:  # record: sweep.train.EpochRecord
        note = f"val_loss {record.val_loss:.4f} acc {record.val_acc:.2f} ({record.seconds:.1f}s/epoch)"
        self._progress.update(self._epochs, completed=record.epoch, note=note)
        self._line(f"trial {number} epoch {record.epoch}/{epochs}: train_loss {record.train_loss:.4f} {note}")

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._progress.advance(self._trials)
        self.log(describe_trial(trial))
