"""The analysis of a sweep: verdict per trial, what removed the plateau, and reports of it.

Pure functions over plain records; ``records_from_study`` is the one step that reads a study.
"""

from sweep.analysis.compare import compare_studies, setup_differences
from sweep.analysis.curves import VERDICTS, CurveVerdict, classify_curve
from sweep.analysis.next_config import emit_config
from sweep.analysis.records import TrialRecord, records_from_study, records_from_trials
from sweep.analysis.report import render_text
from sweep.analysis.report_html import render_html
from sweep.analysis.result import analyze
from sweep.analysis.schema import json_schema

__all__ = [
    "VERDICTS",
    "CurveVerdict",
    "TrialRecord",
    "analyze",
    "classify_curve",
    "compare_studies",
    "emit_config",
    "json_schema",
    "records_from_study",
    "records_from_trials",
    "render_html",
    "render_text",
    "setup_differences",
]
