"""The analysis of a sweep: verdict per trial, what removed the plateau, and reports of it.

Pure functions over plain records; ``records_from_study`` (a sweep's study) and ``read_study`` (any Optuna study
whose trials report a value per step) are the steps that read a study. ``analyze_study`` is the public entry.
"""

from sweep.analysis.compare import compare_studies, setup_differences
from sweep.analysis.curves import VERDICTS, CurveVerdict, classify_curve
from sweep.analysis.inputs import TrialRecord, records_and_space_from_trials, records_from_study
from sweep.analysis.next_config import carried_settings, emit_config
from sweep.analysis.optuna_study import NotAnalyzable, StudyCurves, analyze_curves, analyze_study, read_study
from sweep.analysis.report import render_text
from sweep.analysis.report_html import render_html
from sweep.analysis.result import analyze
from sweep.analysis.schema import json_schema

__all__ = [
    "VERDICTS",
    "CurveVerdict",
    "NotAnalyzable",
    "StudyCurves",
    "TrialRecord",
    "analyze",
    "analyze_curves",
    "analyze_study",
    "carried_settings",
    "classify_curve",
    "compare_studies",
    "emit_config",
    "json_schema",
    "read_study",
    "records_and_space_from_trials",
    "records_from_study",
    "render_html",
    "render_text",
    "setup_differences",
]
