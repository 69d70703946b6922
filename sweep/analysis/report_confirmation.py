"""The report's proof in words: what the one-change runs confirmed or ruled out, and what the sweep could not rule
out with the command that would settle it (the HTML report shows the same in report_sections)."""

from __future__ import annotations

import shlex

from sweep.analysis.confirmation import plateau_free

OUTCOME_WORDS = {"confirmed": "confirmed cause", "ruled_out": "ruled out", "inconclusive": "inconclusive",
                 "pending": "pending"}


def _value(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def open_entries(result: dict) -> list[dict]:
    return [entry for entry in result.get("not_ruled_out") or [] if entry["status"] == "open"]


def settle_command(result: dict, where: str = "") -> str | None:
    """``sweep confirm`` with one ``--value`` per open region (one-change runs from the best plateau-free trial);
    ``where``: the ``--storage`` flag the command needs. The command that read the study stores it in the result
    (``settle_command``), where it knows the storage."""
    entries = open_entries(result)
    if not entries:
        return None
    if not result.get("source") and not plateau_free(result.get("trials") or []):
        return None  # `sweep confirm` starts from a plateau-free run trained to the end, and refuses without one
    if result.get("settle_command"):
        return result["settle_command"]
    if result.get("source"):  # a study `sweep start` did not make: the same runs as enqueued trials
        runs = [f"study.enqueue_trial({{**study.trials[{_start_for(result, entry['param'])}].params, "
                f"{entry['param']!r}: {entry['try_value']!r}}})" for entry in entries]
        return "; ".join(runs) + "; then study.optimize(...)"
    values = " ".join(f"--value {entry['param']}={_value(entry['try_value'])}" for entry in entries)
    return f"sweep confirm{where} --study {shlex.quote(result['study'])} {values}"


def _start_for(result: dict, param: str) -> int:
    """The trial a one-change run of ``param`` starts from: the best plateau-free trial where the parameter exists (in
    a conditional space, ``lr_adam`` only where the optimizer is adam: set on another trial, the objective would
    never read it), else the lowest loss among those, else the best trial or the baseline."""
    having = [t for t in result.get("trials") or [] if param in t["params"]]
    ranked = plateau_free(having) or sorted((t for t in having if t.get("best_val_loss") is not None),
                                            key=lambda t: (t["best_val_loss"], t["number"]))
    return ranked[0]["number"] if ranked else (result.get("best_trial") or result["baseline"])["number"]


def confirmation_lines(result: dict) -> list[str]:
    confirmation = result.get("confirmation")
    if not confirmation:
        return []
    lines = [f"Proof by one change (from plateau-free trial {confirmation['reference']}, each parameter set back "
             "to the baseline's value alone, trained to the end)"]
    for entry in confirmation["params"]:
        lines.append(f"  {entry['param']} = {_value(entry['value'])}: {OUTCOME_WORDS[entry['outcome']]}: "
                     f"{entry['reason']}")
    return lines


def nothing_ruled_out(result: dict) -> str | None:
    """What stands for the whole list when no run could be judged: then every value is open."""
    if result.get("n_judged") or not open_entries(result):
        return None
    return "any value yet (no run could be judged, so none has removed the plateau)"


# Where open values have no settle command yet: what it waits for.
NO_REFERENCE_YET = "one-change runs start from a plateau-free run trained to the end: run more trials first"


def not_ruled_out_lines(result: dict) -> list[str]:
    entries = open_entries(result)
    if not entries:
        return []
    nothing = nothing_ruled_out(result)
    if nothing:
        return [f"Not ruled out: {nothing}"]
    lines = ["Not ruled out (no judged run there removed the plateau)"]
    lines += [f"  {entry['label']}: {entry['runs']}" for entry in entries]
    lines.append(f"  to settle it: {settle_command(result) or NO_REFERENCE_YET}")
    return lines
