"""`sweep doctor`: pipeline checks that no hyperparameter fixes (eval determinism, normalisation and channel order,
input size, frozen stages, the training step, LR schedule, labels, training order, learnability, an LR range test),
on the sweep's own baseline trial or on the user's (``--module``)."""

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
from sweep.doctor.findings import VERDICTS, CheckResult, summary, worst
from sweep.doctor.run import ALL_CHECKS, CHECKS, QUICK_CHECKS, render_text, run_checks, run_doctor
from sweep.doctor.setup import (
    DoctorSetupError,
    Setup,
    SweepSetup,
    load_module_function,
    setup_from_config,
    setup_from_module,
)

__all__ = [
    "ALL_CHECKS", "CHECKS", "QUICK_CHECKS", "VERDICTS", "CheckResult", "DoctorSetupError", "Setup",
    "SweepSetup", "check_eval_deterministic", "check_frozen_stages", "check_input_size", "check_labels",
    "check_learnability", "check_lr_range", "check_lr_schedule", "check_normalisation", "check_train_order",
    "check_training_step", "load_module_function", "render_text", "run_checks",
    "run_doctor", "setup_from_config", "setup_from_module", "summary", "worst",
]
