"""What a user runs next, as exact command lines: the `sweep start` that resumes a sweep with a larger budget, and
after a sweep the report, the dashboard and the export. No torch."""

from __future__ import annotations

import dataclasses
import os
import shlex

from optuna.distributions import CategoricalDistribution

from sweep.analysis.report_confirmation import settle_command
from sweep.config import FIXED_KEYS, SweepConfig
from sweep.plateau import epochs_to_judge
from sweep.storage import DEFAULT_STORAGE, STORAGE_ENV, mask_url

MORE_TRIALS = 8  # trials a "run more" command adds at least

# Not given as flags on resume: the budget is the point of the command, the stop rule is handled apart, and the
# artifact store is read from the study.
NOT_FLAGS = ("n_trials", "stop_when", "stop_after", "artifacts")


def storage_flag(storage_url: str) -> str:
    """``--storage URL`` unless the command finds the storage by itself (the default, or SWEEP_STORAGE)."""
    if storage_url in (DEFAULT_STORAGE, os.environ.get(STORAGE_ENV)):
        return ""
    return f" --storage {shlex.quote(mask_url(storage_url))}"


def _exact(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _setting_flags(config: SweepConfig) -> list[str]:
    """The flags that give back ``config``'s settings where they differ from the defaults (as resume checks them)."""
    defaults, flags = SweepConfig(), []
    for key in FIXED_KEYS:
        value = getattr(config, key)
        if key in NOT_FLAGS or value == getattr(defaults, key):
            continue
        name = key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(f"--{name}" if value else f"--no-{name}")
        else:  # an uncapped image count is stored as None and given as 0
            flags.append(f"--{name} {shlex.quote(str(0 if value is None else value))}")
    for name, distribution in config.space.items():
        if distribution != defaults.space.get(name):
            if isinstance(distribution, CategoricalDistribution):
                text = ",".join(_exact(choice) for choice in distribution.choices)
            else:
                text = _exact(distribution.low) + ("" if distribution.single() else f":{_exact(distribution.high)}")
            flags.append(f"--{name.replace('_', '-')} {shlex.quote(text)}")
    baseline = {name: value for name, value in config.baseline.items() if defaults.baseline.get(name) != value}
    if baseline:
        flags.append("--baseline " + shlex.quote(",".join(f"{name}={_exact(value)}" for name, value in baseline.items())))
    return flags


def start_command(study_name: str, config: SweepConfig, storage_url: str, *, n_trials: int, lift_stop: bool) -> str:
    """The `sweep start` that resumes this study with ``n_trials`` in its budget; ``lift_stop`` leaves the stop rule out
    (the default rule, never, lifts a stop it decided), else a rule the study has is kept."""
    flags = [f"--study {shlex.quote(study_name)}", *_setting_flags(config), f"--n-trials {n_trials}"]
    if not lift_stop and config.stop_when != SweepConfig().stop_when:
        flags.append(f"--stop-when {config.stop_when} --stop-after {config.stop_after}")
    return "sweep start" + storage_flag(storage_url) + " " + " ".join(flags)


def short_runs(config: SweepConfig) -> dict | None:
    """``{"epochs", "epochs_to_judge"}`` where the study's trials train too few epochs for any verdict (every run
    ends ``too_short``, whatever the budget), else None."""
    needed = epochs_to_judge(config.patience)
    return {"epochs": config.epochs, "epochs_to_judge": needed} if config.epochs < needed else None


def short_runs_warning(config: SweepConfig) -> str | None:
    """The line ``sweep start`` logs for a study whose runs can never be judged."""
    short = short_runs(config)
    if short is None:
        return None
    return (f"--epochs {config.epochs} is too short to judge a plateau: with --patience {config.patience} a run needs "
            f"{short['epochs_to_judge']} epochs for a verdict, so every trial ends too_short and the analysis cannot "
            f"say what removes the plateau; use --epochs {short['epochs_to_judge']} or more")


def annotate(result: dict, study_name: str, config: SweepConfig, storage_url: str, stopped: dict | None) -> dict:
    """The result with why the sweep stopped early (``stopped``) and the command that runs more trials
    (``resume_command``, ``more_trials_command``): enough for the judged runs the analysis asks for, at least
    ``MORE_TRIALS``."""
    settings = result.get("settings") or {}
    missing = max(0, settings.get("min_trials", 0) - result.get("n_judged", 0))
    result["stopped"] = stopped
    result["short_runs"] = short_runs(config)
    result["settle_command"] = settle_command(result, storage_flag(storage_url))
    result["resume_command"] = more_trials_command(study_name, config, storage_url, lift_stop=stopped is not None,
                                                   n_trials=config.n_trials + max(MORE_TRIALS, missing))
    return result


def more_trials_command(study_name: str, config: SweepConfig, storage_url: str, *, n_trials: int,
                        lift_stop: bool) -> str:
    """The `sweep start` that runs more trials: this study with ``n_trials`` in its budget, or, where its epochs are
    too few to judge any run (``short_runs``), a new study with the default epochs (or the fewest that judge a run,
    if more) and that budget."""
    epochs = next_epochs(config)
    if epochs == config.epochs:
        return start_command(study_name, config, storage_url, n_trials=n_trials, lift_stop=lift_stop)
    return start_command(f"{study_name}-{epochs}-epochs", dataclasses.replace(config, epochs=epochs), storage_url,
                         n_trials=n_trials, lift_stop=False)


def next_epochs(config: SweepConfig) -> int:
    """The epochs of a next sweep: the study's, unless too few to judge any run (``short_runs``); then the default
    epochs, or the fewest that judge a run if more."""
    short = short_runs(config)
    return config.epochs if short is None else max(SweepConfig().epochs, short["epochs_to_judge"])


def after_sweep_lines(study_name: str, storage_url: str, *, export: bool) -> list[str]:
    """The commands a user runs once a sweep is done: the HTML report, the dashboard, and, where ``export`` (a trial
    that `sweep export` picks by itself has weights: ``artifacts.exportable``), the best model's export."""
    where, study = storage_flag(storage_url), shlex.quote(study_name)
    lines = ["Next",
             f"  sweep analyze{where} --study {study} --format html --out {shlex.quote(study_name + '-report.html')}",
             f"  sweep dashboard{where} --study {study}"]
    if export:
        lines.append(f"  sweep export{where} --study {study} --out {shlex.quote(study_name + '-model')}")
    return lines
