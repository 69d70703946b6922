"""Running the checks on a setup into one report, rendering it as text, and the service the CLI calls."""

from __future__ import annotations

from typing import Callable

import torch

from sweep.doctor.checks.evaluation import check_eval_deterministic
from sweep.doctor.checks.frozen import check_frozen_stages
from sweep.doctor.checks.input_size import check_input_size
from sweep.doctor.checks.labels import check_labels
from sweep.doctor.checks.learnability import check_learnability
from sweep.doctor.checks.lr_range import check_lr_range
from sweep.doctor.checks.normalisation import check_normalisation
from sweep.doctor.checks.order import check_train_order
from sweep.doctor.checks.schedule import check_lr_schedule
from sweep.doctor.checks.training_step import check_training_step
from sweep.doctor.findings import SYMBOLS, CheckResult, worst
from sweep.doctor.setup import DoctorSetupError, Setup, setup_from_config, setup_from_module
from sweep.doctor.training import TrainEpochError

CHECKS: dict[str, Callable[..., CheckResult]] = {
    "eval_deterministic": check_eval_deterministic,
    "normalisation": check_normalisation,
    "input_size": check_input_size,
    "frozen_stages": check_frozen_stages,
    "training_step": check_training_step,
    "lr_schedule": check_lr_schedule,
    "labels": check_labels,
    "train_order": check_train_order,
    "learnability": check_learnability,
    "lr_range": check_lr_range,
}
QUICK_CHECKS = ("eval_deterministic", "normalisation", "input_size", "frozen_stages", "training_step", "lr_schedule",
                "labels", "train_order", "learnability")
ALL_CHECKS = QUICK_CHECKS + ("lr_range",)


def run_checks(setup: Setup, *, quick: bool = False, lr_steps: int = 100,
               progress: Callable[[str], None] | None = None) -> dict:
    """Run the checks on ``setup``; returns the report: source, overall verdict, counts, one result per check."""
    results, loop_failed_in = [], None
    for name in QUICK_CHECKS if quick else ALL_CHECKS:
        if progress:
            progress(f"checking {name}")
        options = {"steps": lr_steps, "progress": progress} if name == "lr_range" else {}
        try:
            result = CHECKS[name](setup, **options)
        except TrainEpochError as error:
            result = _loop_failure(name, error, loop_failed_in)
            loop_failed_in = loop_failed_in or name
        except Exception as error:  # a check that cannot run on this setup says so instead of stopping the others
            result = CheckResult(name, "warning", f"could not run: {type(error).__name__}: {error}".splitlines()[0],
                                 {"error": type(error).__name__}, "see the message; the other checks still ran")
        results.append(result)
    verdicts = [result.verdict for result in results]
    return {
        "source": setup.source,
        "verdict": worst(verdicts),
        "n_problems": verdicts.count("problem"),
        "n_warnings": verdicts.count("warning"),
        "quick": quick,
        "checks": [result.as_dict() for result in results],
    }


def _loop_failure(name: str, error: TrainEpochError, failed_before_in: str | None) -> CheckResult:
    """The user's own loop raised: a problem theirs to fix, told once; later checks that needed it only point back."""
    if failed_before_in is not None:
        return CheckResult(name, "warning", f"could not run: train_epoch raised (see {failed_before_in})",
                           {"error": type(error).__name__})
    return CheckResult(name, "problem", str(error), {"error": type(error).__name__},
                       "make train_epoch(model, loader, optimizer, scheduler) train one epoch over any iterable of "
                       "(images, labels) batches")


def render_text(report: dict) -> str:
    lines = [f"sweep doctor: {report['source']}"]
    for check in report["checks"]:
        lines.append(f"{SYMBOLS[check['verdict']]} {check['name']}: {check['message']}")
        if check["verdict"] != "ok" and check.get("fix"):
            lines.append(f"    fix: {check['fix']}")
    counts = f"{report['n_problems']} problem(s), {report['n_warnings']} warning(s)"
    note = " (quick checks; run `sweep doctor` for the LR range test)" if report.get("quick") else ""
    lines.append(f"{report['verdict']}: {counts}{note}")
    return "\n".join(lines)


def run_doctor(*, config=None, module_target: str | None = None, device: torch.device | str, quick: bool = False,
               lr_steps: int = 100, progress: Callable[[str], None] | None = None) -> dict:
    """Build the setup from the sweep's ``config`` or the user's ``module_target`` (exactly one) and check it."""
    if (config is None) == (module_target is None):
        raise DoctorSetupError("give either the sweep's config or --module MODULE:FUNCTION, exactly one of them")
    device = torch.device(device)
    setup = setup_from_config(config, device) if config is not None else setup_from_module(module_target, device)
    return run_checks(setup, quick=quick, lr_steps=lr_steps, progress=progress)
