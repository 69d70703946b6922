"""The plain-language text report of an analysis result."""

from __future__ import annotations

from typing import Any

from sweep.analysis.factors import MIN_EFFECT
from sweep.analysis.regions import ALPHA
from sweep.analysis.report_confirmation import confirmation_lines, not_ruled_out_lines

MAX_TRIAL_ROWS = 40  # beyond this, the table shows the baseline, the best runs and a count per verdict


def fmt(value: Any) -> str:
    """A number the way a person writes it: 3 significant digits, no trailing noise."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.3g}"


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _interval(interval: list[float] | None) -> str:
    return "" if not interval else f", 95% CI {interval[0]:.0%}–{interval[1]:.0%}"


def params_text(params: dict) -> str:
    return ", ".join(f"{name}={fmt(value)}" for name, value in params.items())


def region_text(param: str, region: dict) -> str:
    if "values" in region:
        values = region["values"]
        if len(values) == 1:
            return f"{param} = {fmt(values[0])}"
        return f"{param} in {{{', '.join(fmt(v) for v in values)}}}"
    return f"{param} in [{fmt(region['low'])}, {fmt(region['high'])}]"


def setting_text(setting: list, region: dict) -> str:
    if setting == region.get("values") or len(setting) != 2:
        return ", ".join(fmt(value) for value in setting)
    low, high = setting
    return fmt(low) if low == high else f"{fmt(low)} .. {fmt(high)}"


def baseline_line(result: dict) -> str:
    baseline = result["baseline"]
    if baseline["verdict"] is None:
        return f"Baseline (trial {baseline['number']}): not in this study."
    line = f"Baseline (trial {baseline['number']}): {baseline['verdict']}"
    evidence = baseline.get("evidence") or {}
    if baseline["plateau_epoch"] is not None:
        line += f" from epoch {baseline['plateau_epoch']}"
    if evidence.get("reason"):
        line += f" — {evidence['reason']}"
    return line + "."


def _trial_rows(result: dict) -> list[str]:
    trials = result["trials"]
    shown = trials
    if len(trials) > MAX_TRIAL_ROWS:
        ranked = sorted((t for t in trials if t["best_val_loss"] is not None), key=lambda t: t["best_val_loss"])
        keep = {result["baseline"]["number"]} | {t["number"] for t in ranked[: MAX_TRIAL_ROWS - 1]}
        shown = [t for t in trials if t["number"] in keep]
    rows = [f"  {'trial':>5}  {'state':<8}  {'verdict':<11}  {'plateau@':>8}  {'best val':>8}  params"]
    for trial in shown:
        rows.append(
            f"  {trial['number']:>5}  {trial['state']:<8}  {trial['verdict']:<11}  "
            f"{fmt(trial['plateau_epoch']):>8}  {fmt(trial['best_val_loss']):>8}  {params_text(trial['params'])}"
        )
    if len(shown) < len(trials):
        counts = ", ".join(f"{n} {verdict}" for verdict, n in result["verdict_counts"].items() if n)
        rows.append(f"  ({len(shown)} of {len(trials)} trials shown: the baseline and the best; all: {counts})")
    return rows


def condition_text(entry: dict) -> str:
    """Which runs a factor's counts are over: all of them, or those inside earlier factors' regions."""
    among = entry.get("among") or {}
    if not among:
        return "on its own"
    return "among runs with " + ", ".join(region_text(param, region) for param, region in among.items())


def _factor_lines(result: dict) -> list[str]:
    lines = []
    for rank, factor in enumerate(result["factors"][:5], start=1):
        lines.append(
            f"  {rank}. {region_text(factor['param'], factor['removes_plateau'])} {condition_text(factor)}: "
            f"plateau kept in {factor['n_plateau_inside']} of {factor['n_inside']} runs "
            f"({_percent(factor['plateau_rate_inside'])}{_interval(factor.get('plateau_rate_inside_ci'))}) "
            f"vs {factor['n_plateau_outside']} of {factor['n_outside']} outside "
            f"({_percent(factor['plateau_rate_outside'])}{_interval(factor.get('plateau_rate_outside_ci'))}); "
            f"Fisher p={factor['fisher_p']:.2g} (corrected for the search and the "
            f"{result.get('n_factor_tests', len(result['factors']))} tests: {factor['p_adjusted']:.2g}), "
            f"importance {factor['importance']:.2f}{fragile_text(factor, result)}"
        )
    return lines


def fragile_text(factor: dict, result: dict) -> str:
    robustness = result.get("robustness")
    if not factor.get("fragile") or not robustness:
        return ""
    return (f"; fragile: named at only {factor['named_in_settings']} of the {robustness['n_settings']} "
            "plateau thresholds tried")


# Why a threshold setting named no factor: its runs judged and none separated, too few judged, or all judged alike.
EVIDENCE_WORDS = {"ok": "no factor", "insufficient": "too few judged runs", "no_contrast": "no contrast (all judged runs alike)"}


def settings_text(settings: list[dict]) -> str:
    return "; ".join(f"patience {s['patience']}, min_delta {fmt(s['min_delta'])}" for s in settings)


def robustness_lines(result: dict) -> list[str]:
    """Per parameter named at any threshold setting: at how many, and with which regions."""
    robustness = result.get("robustness")
    if not robustness:
        return []
    n_settings, factors = robustness["n_settings"], {factor["param"] for factor in result["factors"]}
    lines = [f"How robust the answer is (the curves re-judged at patience {', '.join(map(str, robustness['patience']))}"
             f" x min_delta {', '.join(fmt(d) for d in robustness['min_delta'])}: {n_settings} settings, no retraining)"]
    for entry in robustness["params"]:
        role = "" if entry["param"] in factors else " (not a factor at your thresholds)"
        regions = ", ".join(f"{region_text(entry['param'], group['region'])} at {group['n_settings']}"
                            for group in entry["regions"])
        lines.append(f"  {entry['param']}{role}: named at {entry['n_named']} of {n_settings} settings"
                     + (" — fragile, fewer than half" if entry["fragile"] else "") + f": {regions}")
    for factor in result["factors"]:
        if factor["param"] not in {entry["param"] for entry in robustness["params"]}:
            lines.append(f"  {factor['param']}: named at none of the {n_settings} settings — fragile")
    for evidence, words in EVIDENCE_WORDS.items():  # settings that named nothing, each kind counted apart
        silent = [s for s in robustness["settings"] if not s["factors"] and s["evidence"] == evidence]
        if silent:
            lines.append(f"  {words} at {len(silent)} of {n_settings} settings: " + settings_text(silent))
    return lines


def not_named_reason(entry: dict) -> str:
    """Why a parameter is not a factor: one whose clearest region beat chance fell short, not did nothing."""
    if entry.get("ruled_out_by"):
        return f"ruled out by one change ({entry['ruled_out_by']})"
    if entry.get("p_permutation") is None or entry["p_permutation"] >= ALPHA:
        return "no clear effect"
    if entry["p_adjusted"] >= ALPHA:
        return "short of significance once every test is counted"
    return f"beyond chance, but the plateau rates differ by less than {MIN_EFFECT * 100:.0f} points"


def other_lines(result: dict) -> list[str]:
    others = result.get("other_params") or []
    lines, quiet = [], []
    for entry in others:
        reason = not_named_reason(entry)
        if reason == "no clear effect":
            quiet.append(entry["param"])
            continue
        lines.append(
            f"Not named, {reason}: {region_text(entry['param'], entry['clearest_region'])} kept the plateau in "
            f"{entry['n_plateau_inside']} of {entry['n_inside']} runs vs {entry['n_plateau_outside']} of "
            f"{entry['n_outside']} outside (p={entry['p_permutation']:.2g}, corrected {fmt(entry['p_adjusted'])})."
        )
    if quiet and result["factors"]:
        lines.append(f"No clear effect: {', '.join(quiet)}.")
    return lines


def left_counts(result: dict) -> dict[str, int]:
    """The judged runs that left the plateau, by what they became: improving and overfitting always, others if any."""
    counts = {"improving": 0, "overfitting": 0}
    for trial in result["trials"]:
        if trial["judged"] and trial["plateau_removed"]:
            counts[trial["verdict"]] = counts.get(trial["verdict"], 0) + 1
    return counts


def left_text(result: dict) -> str:
    """"5 left the plateau: 3 improving, 2 overfitting": only the improving ones are a fix."""
    counts = left_counts(result)
    return (f"{sum(counts.values())} left the plateau: "
            + ", ".join(f"{n} {verdict}" for verdict, n in counts.items() if n or verdict in ("improving", "overfitting")))


def overfitting_line(result: dict) -> str | None:
    overfitting = left_counts(result)["overfitting"]
    if not overfitting:
        return None
    return (f"The {overfitting} overfitting run(s) that left the plateau are no fix: training loss fell while "
            "validation did not, so their stall is regularisation, not optimisation.")


def scope_text(row: dict) -> str:
    """Which runs a transition row counts."""
    if row["scope"] == "sweep":
        return "every judged run but the baseline"
    regions = row["regions"]
    if row["scope"] == "recommendation":
        return "inside the recommendation (" + ", ".join(region_text(p, r) for p, r in regions.items()) + ")"
    param = row["param"]
    among = {name: region for name, region in regions.items() if name != param}
    return f"{region_text(param, regions[param])} {condition_text({'among': among})}"


def overfit_text(row: dict) -> str:
    epochs = row.get("overfit_from")
    if not epochs:
        return ""
    spread = "" if epochs["first"] == epochs["last"] else f"; epochs {epochs['first']}–{epochs['last']}"
    return f" from epoch {epochs['median']} (median{spread})"


def transition_line(row: dict) -> str:
    """"lr in [...] on its own: 9 of 10 runs left the plateau: 5 improving, 4 overfitting from epoch 5 (median)"."""
    to = row["to"]
    became = ", ".join(f"{n} {verdict}" + (overfit_text(row) if verdict == "overfitting" else "")
                       for verdict, n in to.items() if n)
    return (f"{scope_text(row)}: {row['n_left_plateau']} of {row['n']} runs left the plateau"
            + (f": {became}" if became else ""))


def basis_text(basis: dict | None) -> str:
    """Why a recommended region is narrower than the factor's: where its runs ended improving."""
    test = (basis or {}).get("test")
    if not basis or not basis["narrowed"] or not test:
        return ""
    return (f" (narrowed from the factor's region: {test['n_improving_inside']} of {test['n_inside']} runs ended "
            f"improving there vs {test['n_improving_outside']} of {test['n_outside']} in the rest of it, "
            f"corrected p={test['p_adjusted']:.2g})")


def difference_text(difference: dict, result: dict) -> str:
    comparison = result["comparison"]
    return (f"{difference['setting']} {fmt(difference['this'])} in {result['study']}, "
            f"{fmt(difference['against'])} in {comparison['against']}")


def best_text(best: dict | None, study: str) -> str:
    if not best:
        return f"{study} has no finished trial with a loss"
    return (f"{study}'s best, trial {best['number']} (best val loss {fmt(best['best_val_loss'])}, "
            f"{best['verdict']})")


def against_lines(result: dict) -> list[str]:
    """The comparison with an earlier study: verdicts side by side, plateau-free share, best against best."""
    comparison = result.get("comparison")
    if not comparison:
        return []
    this, against = result["study"], comparison["against"]
    baseline = comparison.get("baseline_curve")
    lines = [f"Against study {against}" + (f" (its baseline, trial {baseline['number']}: {baseline['verdict']})"
                                           if baseline else "")]
    lines += [f"  warning: not the same setup: {difference_text(d, result)}" for d in comparison["differences"]]
    width = max(len(this), len(against), 9)
    lines.append(f"  {'verdict':<12} {against:>{width}} {this:>{width}}")
    for verdict, counts in comparison["verdict_counts"].items():
        if counts["this"] or counts["against"]:
            lines.append(f"  {verdict:<12} {counts['against']:>{width}} {counts['this']:>{width}}")
    removed = comparison["plateau_removed"]
    lines.append(f"  plateau removed in {removed['against']['n_plateau_removed']} of {removed['against']['n_judged']} "
                 f"judged runs ({_percent(removed['against']['rate'])}) in {against}, "
                 f"{removed['this']['n_plateau_removed']} of {removed['this']['n_judged']} "
                 f"({_percent(removed['this']['rate'])}) in {this}")
    best = comparison["best"]
    if best["beats"] is None:
        lines.append(f"  best: {best_text(best['this'], this)}; {best_text(best['against'], against)}")
    else:
        gap = f"{fmt(abs(best['improvement']))} ({_percent(abs(best['relative_improvement'] or 0))})"
        verdict = f"beats it by {gap}" if best["beats"] else f"does not beat it: worse by {gap}"
        lines.append(f"  {best_text(best['this'], this)} against {best_text(best['against'], against)}: {verdict}")
    return lines


def stopped_line(result: dict) -> str | None:
    stopped = result.get("stopped")
    return f"Stopped before the budget (--stop-when {stopped['rule']}): {stopped['reason']}." if stopped else None


def more_trials_lines(result: dict) -> list[str]:
    """Where more runs would settle the answer: the command that resumes with a larger budget (``resume_command``,
    set by the command that read the study). A sweep its stop rule ended is resumed without the rule."""
    evidence = result.get("evidence")
    if not (evidence == "insufficient" or (evidence == "ok" and not result["factors"])):
        return []
    command, stopped, short = result.get("resume_command"), result.get("stopped"), result.get("short_runs")
    if short:
        head = (f"No run of this study can be judged, however many it trains: its trials train {short['epochs']} "
                f"epoch(s) and a verdict needs {short['epochs_to_judge']} (patience "
                f"{result['settings']['patience']} + 1). Start a new study with more epochs" + (":" if command else "."))
    elif stopped:
        head = (f"The sweep stopped itself (--stop-when {stopped['rule']}) before the evidence was enough: to name the "
                "settings anyway, resume it with a larger budget and no stop rule" + (":" if command else "."))
    else:
        head = "Run more trials" + (", with a larger budget:" if command else ".")
    return [head, *([f"  {command}"] if command else [])]


def chance_line(result: dict) -> str | None:
    chance = result.get("chance")
    if not chance or not chance["at_chance"]:
        return None
    return (f"The best validation loss, {fmt(chance['best_val_loss'])}, is still at chance level (ln "
            f"{chance['n_classes']} = {fmt(chance['loss'])}, a uniform guess over {chance['n_classes']} classes): the "
            "models have not learned yet, so the verdicts below mean little. Train longer (--epochs), or check the "
            "setup with `sweep doctor`.")


def summary_line(result: dict) -> str:
    return f"Study {result['study']}: {result['n_trials']} trials, {result['n_judged']} judged; {left_text(result)}."


def source_line(result: dict) -> str | None:
    """How a study that `sweep start` did not make was read, or None for a sweep's own study."""
    source = result.get("source")
    if not source:
        return None
    parts = [f"Curves: the values each trial reported (trial.report); 'epoch' is the step as reported and "
             f"patience {result['settings']['patience']} counts reports"]
    if source["negated"]:
        parts.append("the study maximizes, so each value is negated (lower is better, as ReduceLROnPlateau "
                     "mode='max' judges) and 'val loss' is minus the value")
    parts.append(f"training loss from user attr {source['train_loss_attr']!r}" if source["train_loss_attr"] else
                 "no training loss (name the user attr that holds it), so overfitting reads as a plateau")
    parts.append(f"baseline: trial {result['baseline']['number']} ({source['baseline']})")
    return "; ".join(parts) + "."


def _comparison_lines(result: dict) -> list[str]:
    shared = [c for c in result.get("baseline_comparison") or [] if c["shared"]]
    lines = []
    for change in shared:
        lines.append(
            f"  {change['param']} {change['direction']} than the baseline's {fmt(change['baseline_value'])}: "
            f"{change['n_removed_with_change']} of {change['n_removed']} plateau-free runs "
            f"(vs {change['n_kept_with_change']} of {change['n_kept']} runs that kept it)"
            + ("; not a factor: within chance once every test is counted"
               if result.get("evidence") == "ok" and change.get("is_factor") is False else "")
        )
    return lines


def render_text(result: dict) -> str:
    """A short report: baseline verdict, trial table, factors, recommendation, usual suspects."""
    stopped = stopped_line(result)
    lines = [
        *([stopped, ""] if stopped else []),
        summary_line(result),
        *filter(None, [source_line(result), chance_line(result)]),
        baseline_line(result),
        "",
        *([*against_lines(result), ""] if result.get("comparison") else []),
        "Trials",
        *_trial_rows(result),
        "",
    ]
    if result.get("message"):
        lines += [result["message"], *more_trials_lines(result), ""]
    if result["factors"]:
        lines += ["What removed the plateau", *_factor_lines(result), ""]
    proof = confirmation_lines(result)
    lines += [*proof, ""] if proof else []
    other = other_lines(result) if result.get("evidence") == "ok" else []
    lines += [*other, ""] if other else []
    overfitting = overfitting_line(result)
    lines += [overfitting, ""] if overfitting else []
    comparison = _comparison_lines(result)
    if comparison:
        lines += ["Compared with the baseline, the plateau-free runs share", *comparison, ""]
    robust = robustness_lines(result) if result.get("evidence") != "insufficient" else []
    lines += [*robust, ""] if robust else []
    transitions = result.get("transitions") or []
    if transitions and result.get("evidence") != "insufficient":
        lines += ["What replaced the plateau", *(f"  {transition_line(row)}" for row in transitions), ""]
    if result["recommendation"]:
        lines.append("Recommendation")
        basis = result.get("recommendation_basis") or {}
        for param, setting in result["recommendation"].items():
            region = (basis.get(param) or {}).get("region", {})
            lines.append(f"  {param}: {setting_text(setting, region)}{basis_text(basis.get(param))}")
    best = result.get("best_trial")
    if best and result.get("evidence") != "insufficient":
        if not result["recommendation"]:
            lines.append("Recommendation")
        lines += [f"  best trial: {best['number']} (best val loss {fmt(best['best_val_loss'])}, "
                  f"{best['verdict']}): {params_text(best['params'])}", ""]
    suspects = [s for s in result.get("usual_suspects") or [] if s.get("status") != "not swept"]
    if suspects:
        lines.append("Usual suspects")
        lines += [f"  {suspect['name']}: {suspect['sentence']}" for suspect in suspects]
    unsettled = not_ruled_out_lines(result)
    lines += [*([""] if lines[-1] else []), *unsettled] if unsettled else []
    return "\n".join(lines).rstrip() + "\n"
