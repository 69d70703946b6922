"""The usual suspects for a stalled fine-tune, and how the runs that had each one fared in this sweep."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable

from optuna.distributions import BaseDistribution, CategoricalDistribution

from sweep.analysis.regions import wilson_interval


@dataclass(frozen=True)
class Suspect:
    name: str  # the diagnosis in the user's words
    param: str
    rule: str  # how a run counts as having it, e.g. "frozen_stages ≥ 3"
    test: Callable[[Any], bool]


def _compare(op: Callable[[Any, Any], bool], threshold: Any) -> Callable[[Any], bool]:
    return lambda value: op(value, threshold)


# Thresholds for SGD fine-tuning of a pretrained ResNet (the sweep's default optimizer).
USUAL_SUSPECTS = (
    Suspect("too many frozen stages", "frozen_stages", "frozen_stages ≥ 3", _compare(operator.ge, 3)),
    Suspect("too much dropout", "dropout", "dropout ≥ 0.5", _compare(operator.ge, 0.5)),
    Suspect("too much weight decay", "weight_decay", "weight_decay ≥ 1e-2", _compare(operator.ge, 1e-2)),
    Suspect("learning rate too low", "lr", "lr ≤ 1e-4", _compare(operator.le, 1e-4)),
    Suspect("learning rate too high", "lr", "lr ≥ 3e-2", _compare(operator.ge, 3e-2)),
    Suspect("no LR scheduler", "scheduler", "scheduler = none", _compare(operator.eq, "none")),
)


def _fixed_value(distribution: BaseDistribution) -> Any:
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[0]
    return distribution.low


def _tally(verdicts: list[str], removed: list[bool]) -> dict:
    n_kept = sum(1 for was_removed in removed if not was_removed)
    return {
        "n": len(removed),
        "n_kept": n_kept,
        "n_plateau": verdicts.count("plateau"),
        "n_diverged": verdicts.count("diverged"),
        "n_overfitting": verdicts.count("overfitting"),
        "kept_rate": round(n_kept / len(removed), 4) if removed else None,
        "kept_rate_ci": wilson_interval(n_kept, len(removed)),
    }


def _sentence(suspect: Suspect, having: dict, others: dict) -> str:
    if having["n"] == 0:
        return f"no judged run had {suspect.rule}"
    text = f"runs with {suspect.rule} kept the plateau in {having['n_kept']} of {having['n']}"
    if having["n_diverged"]:
        text += f" ({having['n_diverged']} diverged)"
    if others["n"]:
        text += f"; the other runs in {others['n_kept']} of {others['n']}"
    return text


def usual_suspects(
    judged: list[tuple[dict[str, Any], str, bool]],
    distributions: dict[str, BaseDistribution],
) -> list[dict]:
    """For each usual suspect: counts of judged runs (params, verdict, plateau removed) with and without it.

    "Kept the plateau" counts every judged run whose plateau was not removed (plateau or diverged).
    """
    found = []
    for suspect in USUAL_SUSPECTS:
        entry: dict[str, Any] = {"name": suspect.name, "param": suspect.param, "rule": suspect.rule}
        distribution = distributions.get(suspect.param)
        if distribution is None:
            entry.update(status="not swept", sentence=f"{suspect.param} is not part of this sweep")
            found.append(entry)
            continue
        having = [(v, r) for params, v, r in judged if suspect.param in params and suspect.test(params[suspect.param])]
        others = [(v, r) for params, v, r in judged if suspect.param in params and not suspect.test(params[suspect.param])]
        tally_having = _tally([v for v, _ in having], [r for _, r in having])
        tally_others = _tally([v for v, _ in others], [r for _, r in others])
        entry.update(status="varied" if not distribution.single() else "fixed",
                     having=tally_having, others=tally_others,
                     sentence=_sentence(suspect, tally_having, tally_others))
        if distribution.single():
            entry["sentence"] = (
                f"{suspect.param} was fixed at {_fixed_value(distribution)} in this sweep: "
                + entry["sentence"]
            )
        found.append(entry)
    return found
