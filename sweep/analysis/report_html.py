"""The HTML report: one self-contained page (plotly inlined, works offline) with the analysis and its plots."""

from __future__ import annotations

import html
import math
from typing import Any

import optuna
import plotly.graph_objects as go
import plotly.offline
from optuna.distributions import BaseDistribution
from plotly.subplots import make_subplots

from sweep.analysis import report_sections as sections
from sweep.analysis.html_tables import SORT_SCRIPT
from sweep.analysis.importance import build_study, quiet_optuna
from sweep.analysis.inputs import FINISHED_STATES, TrialRecord
from sweep.analysis.report import condition_text, fmt

N_BEST_CURVES = 5
BASELINE_COLOR = "#d62728"


def _series(record: TrialRecord, key: str) -> tuple[list[int], list[float | None]]:
    """Epochs and values of one history column; a non-finite value is a gap in the line."""
    epochs, values = [], []
    for index, entry in enumerate(record.history):
        value = entry.get(key)
        epochs.append(entry.get("epoch", index + 1))
        values.append(value if value is not None and math.isfinite(value) else None)
    return epochs, values


def _val_loss_figure(title: str, curves: list[tuple[str, list, list]],
                     baseline: tuple[str, list, list] | None) -> go.Figure:
    """Validation-loss curves, each ``(name, epochs, values)``, with the baseline's drawn thick over them."""
    figure = go.Figure()
    for name, epochs, values in curves:
        figure.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=name))
    if baseline is not None:
        name, epochs, values = baseline
        figure.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=name,
                                    line={"color": BASELINE_COLOR, "width": 4}))
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title="validation loss")
    return figure


def _curves_figure(result: dict, by_number: dict[int, TrialRecord]) -> go.Figure:
    # Overfitting also leaves the plateau, but is no fix: only the runs that left it improving are drawn.
    best_improving = sorted(
        (t for t in result["trials"]
         if t["plateau_removed"] and t["verdict"] == "improving" and t["best_val_loss"] is not None),
        key=lambda t: t["best_val_loss"],
    )[:N_BEST_CURVES]
    curves = [(f"trial {trial['number']} ({trial['verdict']})", *_series(by_number[trial["number"]], "val_loss"))
              for trial in best_improving]
    baseline = by_number.get(result["baseline"]["number"])
    return _val_loss_figure("Validation loss: the baseline against the best runs that left the plateau improving", curves,
                            None if baseline is None else ("baseline", *_series(baseline, "val_loss")))


def _against_figure(result: dict) -> go.Figure | None:
    comparison = result.get("comparison")
    if not comparison:
        return None
    curves = [(f"{result['study']} trial {curve['number']} ({curve['verdict']})", curve["epochs"], curve["val_loss"])
              for curve in comparison["best_curves"]]
    baseline = comparison.get("baseline_curve")
    return _val_loss_figure(
        f"Validation loss: {comparison['against']}'s baseline against the best plateau-free runs of {result['study']}",
        curves, (f"{comparison['against']} baseline (trial {baseline['number']})", baseline["epochs"],
                 baseline["val_loss"]) if baseline else None)


def _baseline_figure(result: dict, by_number: dict[int, TrialRecord]) -> go.Figure | None:
    baseline = by_number.get(result["baseline"]["number"])
    if baseline is None:
        return None
    figure = go.Figure()
    for key, name in (("train_loss", "training loss"), ("val_loss", "validation loss")):
        epochs, values = _series(baseline, key)
        figure.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=name))
    if result["baseline"]["plateau_epoch"] is not None:
        figure.add_vline(x=result["baseline"]["plateau_epoch"], line_dash="dash",
                         annotation_text=f"{result['baseline']['verdict']} from here")
    figure.update_layout(title=f"Baseline (trial {result['baseline']['number']}): training against validation loss",
                         xaxis_title="epoch", yaxis_title="loss")
    return figure


def _importance_figure(result: dict) -> go.Figure | None:
    importance = result.get("importance")
    if not importance:
        return None
    figure = go.Figure()
    for target, evaluator, label in (
        ("plateau_removed", "ped_anova", "removing the plateau (PED-ANOVA)"),
        ("plateau_removed", "fanova", "removing the plateau (fANOVA)"),
        ("best_val_loss", "ped_anova", "best validation loss (PED-ANOVA)"),
    ):
        values = importance[target][evaluator]
        params = sorted(values, key=lambda name: importance["plateau_removed"]["ped_anova"].get(name, 0))
        figure.add_trace(go.Bar(x=[values[p] for p in params], y=params, orientation="h", name=label))
    figure.update_layout(title="Parameter importance", barmode="group", xaxis_title="importance (normalised)")
    return figure


def _level_label(level: dict) -> str:
    if "value" in level:
        return fmt(level["value"])
    return f"{fmt(level['low'])}–{fmt(level['high'])}"


def _rates_figure(result: dict) -> go.Figure | None:
    entries = [e for e in result["factors"] + result.get("other_params", []) if e.get("levels")]
    if not entries:
        return None
    titles = []
    for entry in entries:
        titles.append(f"{entry['param']} (factor, {condition_text(entry)})" if entry.get("is_factor")
                      else f"{entry['param']} (all judged runs)")
    figure = make_subplots(rows=len(entries), cols=1, subplot_titles=titles, vertical_spacing=0.5 / len(entries))
    for row, entry in enumerate(entries, start=1):
        levels = entry["levels"]
        rates = [level["plateau_rate"] for level in levels]
        intervals = [level["plateau_rate_ci"] or [rate, rate] for level, rate in zip(levels, rates)]
        figure.add_trace(
            go.Bar(
                x=[_level_label(level) for level in levels], y=rates, name=entry["param"], showlegend=False,
                text=[f"{level['n_plateau']}/{level['n']}" for level in levels], textposition="inside",
                error_y={"type": "data", "array": [hi - r for (lo, hi), r in zip(intervals, rates)],
                         "arrayminus": [r - lo for (lo, hi), r in zip(intervals, rates)]},
            ),
            row=row, col=1,
        )
        figure.update_yaxes(range=[0, 1.05], title_text="plateau rate", row=row, col=1)
    figure.update_layout(title="Plateau rate per value or range, with 95% Wilson intervals",
                         height=max(400, 340 * len(entries)))
    return figure


def _optuna_figures(result: dict, records: list[TrialRecord], distributions: dict[str, BaseDistribution]) -> list[go.Figure]:
    """Optuna's own history and parallel-coordinate plots, on best validation loss."""
    best = {t["number"]: t["best_val_loss"] for t in result["trials"]}
    finished = [r for r in sorted(records, key=lambda r: r.number)
                if r.state in FINISHED_STATES and best.get(r.number) is not None]
    varied = {name: d for name, d in distributions.items() if not d.single()}
    if len(finished) < 2 or not varied:
        return []
    study = build_study([r.params for r in finished], [best[r.number] for r in finished], varied, log_as_linear=False)
    with quiet_optuna():
        history = optuna.visualization.plot_optimization_history(study, target_name="best validation loss")
        parallel = optuna.visualization.plot_parallel_coordinate(study, target_name="best validation loss")
    history.update_layout(title="Optimisation history (best validation loss per finished trial, in trial order)")
    return [history, parallel]


def _figure_html(figure: go.Figure, div_id: str) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                          config={"displaylogo": False, "responsive": True})


# Verdict colours: green moved on, red kept the plateau, amber and violet removed it another way, grey unjudged.
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 80rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.85rem; }
caption { text-align: left; font-style: italic; padding: 0.3rem 0; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
table.sortable th { cursor: pointer; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
#trials { overflow-x: auto; }
.verdict { padding: 0.1rem 0.4rem; }
.verdict-improving { background: #c8e6c9; }
.verdict-plateau { background: #ffcdd2; }
.verdict-overfitting { background: #ffe0b2; }
.verdict-oscillating { background: #e1bee7; }
.verdict-diverged { background: #b71c1c; color: #fff; }
.verdict-too_short { background: #e0e0e0; }
.fragile, p.warning { background: #fff3cd; }
td.own-setting { font-weight: bold; }
.outcome-confirmed, .status-cause { background: #ffcdd2; }
.outcome-ruled_out { background: #c8e6c9; }
.outcome-inconclusive, .outcome-pending, .status-open { background: #fff3cd; }
section.plot { margin: 2rem 0; }
"""


def _report_sections(result: dict) -> str:
    return "\n".join(part for part in (
        sections.summary_section(result),
        sections.against_section(result),
        sections.factors_section(result),
        sections.confirmation_section(result),
        sections.robustness_section(result),
        sections.transitions_section(result),
        sections.recommendation_section(result),
        sections.comparison_section(result),
        sections.suspects_section(result),
        sections.trials_section(result),
        sections.not_ruled_out_section(result),
    ) if part)


def render_html(result: dict, records: list[TrialRecord], distributions: dict[str, BaseDistribution]) -> str:
    """One HTML file, no network needed: the analysis as tables (the text report's data), then the plots."""
    by_number = {record.number: record for record in records}
    figures: list[tuple[str, Any]] = [
        ("against", _against_figure(result)),
        ("curves", _curves_figure(result, by_number)),
        ("baseline", _baseline_figure(result, by_number)),
        ("importance", _importance_figure(result)),
        ("rates", _rates_figure(result)),
    ]
    figures += [(f"optuna-{index}", figure) for index, figure in enumerate(_optuna_figures(result, records, distributions))]
    plots = "\n".join(
        f'<section class="plot">{_figure_html(figure, f"plot-{name}")}</section>'
        for name, figure in figures if figure is not None
    )
    title = f"Plateau sweep analysis: {result['study']}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>
</head>
<body>
<h1>{html.escape(title)}</h1>
{_report_sections(result)}
{plots}
<script>{SORT_SCRIPT}</script>
</body>
</html>
"""
