"""The HTML report's sections: the analysis result as tables and sentences, the same data as the text report."""

from __future__ import annotations

import html

from sweep.analysis.curves import VERDICTS
from sweep.analysis.html_tables import Cell, cell, count_cell, table, verdict_cell
from sweep.analysis.report import (
    EVIDENCE_WORDS, basis_text, baseline_line, best_text, chance_line, condition_text, difference_text, fmt,
    fragile_text, more_trials_lines, not_named_reason, other_lines, overfit_text, overfitting_line, params_text,
    region_text, scope_text, setting_text, source_line, stopped_line, summary_line,
)
from sweep.analysis.report_confirmation import (NO_REFERENCE_YET, OUTCOME_WORDS, nothing_ruled_out, open_entries,
                                                   settle_command)
from sweep.analysis.transitions import LEFT_FOR


def paragraph(text: str | None, css: str = "") -> str:
    if not text:
        return ""
    return f'<p class="{css}">{html.escape(text)}</p>' if css else f"<p>{html.escape(text)}</p>"


def section(section_id: str, title: str, *parts: str) -> str:
    body = "\n".join(part for part in parts if part)
    return f'<section id="{section_id}">\n<h2>{html.escape(title)}</h2>\n{body}\n</section>'


def summary_section(result: dict) -> str:
    counts = ", ".join(f"{n} {verdict}" for verdict, n in result["verdict_counts"].items() if n)
    more = more_trials_lines(result)
    return "\n".join(part for part in (
        paragraph(stopped_line(result), "stopped"),
        paragraph(summary_line(result), "summary"),
        paragraph(source_line(result), "source"),
        paragraph(chance_line(result), "warning chance"),
        paragraph(baseline_line(result), "baseline"),
        paragraph(result.get("message"), "message"),
        (f'<p class="more-trials">{html.escape(more[0])}'
         + (f" <code>{html.escape(more[1].strip())}</code>" if len(more) > 1 else "") + "</p>") if more else "",
        paragraph(f"Verdicts: {counts}." if counts else None),
    ) if part)


def trials_section(result: dict) -> str:
    """Every trial, one column per parameter, so any of them sorts the table."""
    params = list(dict.fromkeys(name for trial in result["trials"] for name in trial["params"]))
    headers = ["trial", "state", "verdict", "plateau epoch", "best val loss", "epochs", "judged", *params]
    rows = []
    for trial in result["trials"]:
        judged = cell(True) if trial["judged"] else Cell(f"no: {trial['not_judged']}", 0)
        number = Cell(f"{trial['number']} (baseline)", trial["number"]) \
            if trial["number"] == result["baseline"]["number"] else cell(trial["number"])
        rows.append([number, trial["state"], verdict_cell(trial["verdict"]), trial["plateau_epoch"],
                     trial["best_val_loss"], trial.get("n_epochs"), judged,
                     *(trial["params"].get(name) for name in params)])
    legend = " ".join(f'<span class="verdict verdict-{verdict}">{verdict}</span>' for verdict in VERDICTS)
    return section("trials", "Trials", f'<p class="legend">{legend} — click a column header to sort.</p>',
                   table("trials-table", headers, rows, sortable=True))


def factors_section(result: dict) -> str:
    headers = ["rank", "removes the plateau", "counted", "kept the plateau inside", "kept it outside",
               "Fisher p", "corrected p", "importance (PED-ANOVA)", "importance (fANOVA)", "robust"]
    rows = [[rank, region_text(factor["param"], factor["removes_plateau"]), condition_text(factor),
             count_cell(factor["n_plateau_inside"], factor["n_inside"], factor["plateau_rate_inside"],
                        factor.get("plateau_rate_inside_ci")),
             count_cell(factor["n_plateau_outside"], factor["n_outside"], factor["plateau_rate_outside"],
                        factor.get("plateau_rate_outside_ci")),
             factor["fisher_p"], factor["p_adjusted"], factor["importance"], factor.get("importance_fanova"),
             Cell(fragile_text(factor, result).strip("; ") or "yes", int(not factor.get("fragile")),
                  "fragile" if factor.get("fragile") else "")]
            for rank, factor in enumerate(result["factors"], start=1)]
    others = [[entry["param"],
               region_text(entry["param"], entry["clearest_region"]) if entry.get("clearest_region") else None,
               count_cell(entry["n_plateau_inside"], entry["n_inside"]) if "n_inside" in entry else None,
               count_cell(entry["n_plateau_outside"], entry["n_outside"]) if "n_outside" in entry else None,
               entry.get("p_permutation"), entry.get("p_adjusted"), not_named_reason(entry), entry.get("importance")]
              for entry in result.get("other_params") or []]
    if not rows and not others:
        return ""
    tests = result.get("n_factor_tests")
    return section(
        "factors", "What removed the plateau",
        table("factors-table", headers, rows, caption="Factors: corrected p counts the search over regions and "
              f"every test run ({tests} tests)" if tests else "Factors") if rows else "",
        table("other-params-table", ["parameter", "clearest region", "kept the plateau inside", "kept it outside",
                                     "permutation p", "corrected p", "not a factor because", "importance"],
              others, caption="Other varied parameters (over all judged runs)") if others else "",
        *(paragraph(line) for line in other_lines(result) if not line.startswith("No clear effect")),
        paragraph(overfitting_line(result)),
    )


def transitions_section(result: dict) -> str:
    rows = result.get("transitions") or []
    if not rows or result.get("evidence") == "insufficient":
        return ""
    headers = ["runs", "judged", "kept the plateau", "left it", *LEFT_FOR, "improving among those that left",
               "overfit from epoch"]
    table_rows = [[scope_text(row), row["n"], row["n_plateau"], row["n_left_plateau"],
                   *(Cell(str(row["to"][verdict]), row["to"][verdict], f"verdict-{verdict}" if row["to"][verdict] else "")
                     for verdict in LEFT_FOR),
                   count_cell(row["to"]["improving"], row["n_left_plateau"], row["improving_share"]),
                   Cell(overfit_text(row).strip() or "-", (row.get("overfit_from") or {}).get("median", ""))]
                  for row in rows]
    return section("transitions", "What replaced the plateau",
                   table("transitions-table", headers, table_rows,
                         caption="Removing a plateau by overfitting is no fix: what the runs that left it became"))


def against_section(result: dict) -> str:
    """This study against an earlier one: warnings on a different setup, verdicts side by side, best against best."""
    comparison = result.get("comparison")
    if not comparison:
        return ""
    this, against = result["study"], comparison["against"]
    counts = [[Cell(verdict, verdict, f"verdict verdict-{verdict}"), c["against"], c["this"], c["this"] - c["against"]]
              for verdict, c in comparison["verdict_counts"].items()]
    removed = comparison["plateau_removed"]
    counts.append([Cell("plateau removed", ""),
                   count_cell(removed["against"]["n_plateau_removed"], removed["against"]["n_judged"]),
                   count_cell(removed["this"]["n_plateau_removed"], removed["this"]["n_judged"]), None])
    best = comparison["best"]
    beats = "-" if best["beats"] is None else ("yes" if best["beats"] else "no")
    best_rows = [[against, best_text(best["against"], against)], [this, best_text(best["this"], this)],
                 ["beats the earlier best", beats], ["by", best["improvement"]],
                 ["by (relative)", best["relative_improvement"]]]
    return section(
        "against", f"Against study {against}",
        *(paragraph(f"Not the same setup: {difference_text(d, result)}.", "warning") for d in comparison["differences"]),
        table("against-verdicts", ["verdict", against, this, "change"], counts,
              caption="Verdicts side by side"),
        table("against-best", ["", "best trial"], best_rows, caption="The new best against the earlier best"),
    )


def robustness_section(result: dict) -> str:
    """The grid of plateau thresholds, the factors named at each, and per parameter how often and where."""
    robustness = result.get("robustness")
    if not robustness or result.get("evidence") == "insufficient":
        return ""
    cells = {(s["patience"], s["min_delta"]): s for s in robustness["settings"]}
    own = (result["settings"]["patience"], result["settings"]["min_delta"])
    grid_rows = []
    for patience in robustness["patience"]:
        row: list = [Cell(f"patience {patience}", patience)]
        for min_delta in robustness["min_delta"]:
            setting = cells[(patience, min_delta)]
            text = ", ".join(setting["factors"]) or EVIDENCE_WORDS[setting["evidence"]]
            row.append(Cell(text + (" (your thresholds)" if (patience, min_delta) == own else ""), None,
                            "own-setting" if (patience, min_delta) == own else ""))
        grid_rows.append(row)
    factors = {factor["param"] for factor in result["factors"]}
    param_rows = [[entry["param"], entry["param"] in factors,
                   count_cell(entry["n_named"], robustness["n_settings"], entry["share"]),
                   Cell("fragile" if entry["fragile"] else "no", int(entry["fragile"]),
                        "fragile" if entry["fragile"] else ""),
                   "; ".join(f"{region_text(entry['param'], group['region'])} at {group['n_settings']}"
                             for group in entry["regions"])]
                  for entry in robustness["params"]]
    return section(
        "robustness", "How robust the answer is",
        table("robustness-grid", ["", *(f"min_delta {fmt(d)}" for d in robustness["min_delta"])], grid_rows,
              caption="Factors named with the curves re-judged at each plateau threshold (no retraining)"),
        table("robustness-params", ["parameter", "factor at your thresholds", "named at", "fragile", "regions"],
              param_rows, caption="Fragile: named at fewer than half of the settings") if param_rows else "",
    )


def recommendation_section(result: dict) -> str:
    basis = result.get("recommendation_basis") or {}
    rows = [[param, setting_text(setting, (basis.get(param) or {}).get("region", {})),
             basis_text(basis.get(param)).strip(" ()") or "the factor's region"]
            for param, setting in result["recommendation"].items()]
    best = result.get("best_trial")
    best_text = None
    if best and result.get("evidence") != "insufficient":
        best_text = (f"Best trial: {best['number']} (best val loss {fmt(best['best_val_loss'])}, {best['verdict']}): "
                     f"{params_text(best['params'])}")
    if not rows and not best_text:
        return ""
    return section("recommendation", "Recommendation",
                   table("recommendation-table", ["parameter", "setting", "from"], rows) if rows else "",
                   paragraph(best_text, "best-trial"))


def comparison_section(result: dict) -> str:
    changes = result.get("baseline_comparison") or []
    if not changes:
        return ""
    headers = ["parameter", "baseline value", "change", "plateau-free runs with the change",
               "runs that kept the plateau with it", "shared", "factor"]
    rows = [[change["param"], change["baseline_value"], change["direction"],
             count_cell(change["n_removed_with_change"], change["n_removed"], change.get("share_removed")),
             count_cell(change["n_kept_with_change"], change["n_kept"], change.get("share_kept")),
             change["shared"], change.get("is_factor")]
            for change in changes]
    return section("baseline-comparison", "Compared with the baseline",
                   table("baseline-comparison-table", headers, rows,
                         caption="shared: made by most plateau-free runs and clearly more often than by the others"))


def suspects_section(result: dict) -> str:
    suspects = result.get("usual_suspects") or []
    if not suspects:
        return ""
    headers = ["suspect", "rule", "status", "runs with it that kept the plateau", "other runs that kept it",
               "diverged with it", "overfit with it", "factor", "in words"]
    rows = []
    for suspect in suspects:
        having, others = suspect.get("having"), suspect.get("others")
        rows.append([
            suspect["name"], suspect["rule"], suspect["status"],
            count_cell(having["n_kept"], having["n"], having.get("kept_rate"), having.get("kept_rate_ci"))
            if having else None,
            count_cell(others["n_kept"], others["n"], others.get("kept_rate"), others.get("kept_rate_ci"))
            if others else None,
            having.get("n_diverged") if having else None, having.get("n_overfitting") if having else None,
            suspect.get("is_factor"), suspect["sentence"],
        ])
    return section("usual-suspects", "Usual suspects", table("usual-suspects-table", headers, rows))


def confirmation_section(result: dict) -> str:
    confirmation = result.get("confirmation")
    if not confirmation:
        return ""
    rows = [[entry["param"], cell(entry["baseline_value"]), cell(entry["reference_value"]),
             cell(OUTCOME_WORDS[entry["outcome"]], f"outcome-{entry['outcome']}"),
             ", ".join(str(run["number"]) for run in entry["runs"]) or "-", entry["reason"]]
            for entry in confirmation["params"]]
    intro = (f"From plateau-free trial {confirmation['reference']}, each varied parameter set back to the baseline's "
             "value alone and trained to the end, never pruned: a value that alone brings the plateau back is a "
             "confirmed cause; one that does not is ruled out as a sole cause.")
    return section("confirmation", "Proof by one change", f"<p>{html.escape(intro)}</p>",
                    table("confirmation-table", ["parameter", "baseline value", "value in the reference", "outcome",
                                                 "trials", "why"], rows, sortable=True))


def not_ruled_out_section(result: dict) -> str:
    entries = result.get("not_ruled_out") or []
    if not entries:
        return ""
    nothing = nothing_ruled_out(result)
    if nothing:
        return section("not-ruled-out", "Not ruled out", f"<p>{html.escape(nothing.capitalize())}.</p>")
    rows = [[entry["label"], cell("cause" if entry["status"] == "cause" else "open", f"status-{entry['status']}"),
             entry["n_runs"], entry["n_judged"], entry["runs"]] for entry in entries]
    command = settle_command(result)
    settle = (f'<p>To settle the open ones: <code>{html.escape(command)}</code></p>' if command else
              f'<p>To settle the open ones: {html.escape(NO_REFERENCE_YET)}.</p>' if open_entries(result) else "")
    return section("not-ruled-out", "Not ruled out",
                    "<p>Values or ranges where no judged run removed the plateau: a cause the analysis names or "
                    "confirms, or open (too few runs there to rule it out).</p>",
                    table("not-ruled-out-table", ["where", "status", "runs", "judged", "how they ended"], rows,
                          sortable=True), settle)
