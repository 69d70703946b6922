"""The recommendation as files to run next: a narrowed sweep config, and the best trial's fixed params."""

from __future__ import annotations

import json
import math
from typing import Any

import tomli_w
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from sweep.space import format_param

SIGNIFICANT_DIGITS = 3

# Not carried into the next sweep: the artifact store is its study's own (the next study settles its default).
NOT_CARRIED = ("space", "baseline", "version", "artifacts")


def carried_settings(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored sweep config's fixed settings as TOML values for the next sweep (data, size, epochs, pruner, ...);
    an uncapped image count (None) is written as 0, as the flags take it."""
    return {key: 0 if value is None else value for key, value in stored.items() if key not in NOT_CARRIED}


def _round_outward(value: float, *, up: bool) -> float:
    """Three significant digits, rounded away from the inside of the range so no trial falls out."""
    if value == 0 or not math.isfinite(value):
        return value
    scale = 10 ** (math.floor(math.log10(abs(value))) - SIGNIFICANT_DIGITS + 1)
    rounded = (math.ceil if up else math.floor)(value / scale) * scale
    return float(f"{rounded:.{SIGNIFICANT_DIGITS}g}")


def _narrowed(distribution: BaseDistribution, setting: list, best_value: Any) -> BaseDistribution:
    """The recommended values or range as a distribution, widened to hold the best trial's value."""
    if isinstance(distribution, CategoricalDistribution):
        choices = [c for c in distribution.choices if c in setting or c == best_value]
        return CategoricalDistribution(choices or list(setting))
    low, high = setting
    if best_value is not None:
        low, high = min(low, best_value), max(high, best_value)
    if isinstance(distribution, IntDistribution):
        return IntDistribution(int(low), int(high))
    low = max(_round_outward(low, up=False), distribution.low)
    high = min(_round_outward(high, up=True), distribution.high)
    return FloatDistribution(low, high, log=distribution.log and low < high)


def emit_config(result: dict, distributions: dict[str, BaseDistribution],
                fixed: dict[str, Any] | None = None, fixed_note: str = "") -> tuple[str, str]:
    """TOML for ``sweep start --config`` (``[space]`` narrowed to the recommendation, ``[baseline]``
    the best trial, and the ``fixed`` settings, e.g. the first sweep's data and epochs, explained by ``fixed_note``)
    and JSON of the best trial's params for a training script."""
    best = result.get("best_trial") or {}
    best_params = best.get("params") or {}
    recommendation = result.get("recommendation") or {}
    space = {}
    for name, distribution in distributions.items():
        if name in recommendation:
            distribution = _narrowed(distribution, recommendation[name], best_params.get(name))
        space[name] = format_param(distribution)
    document: dict[str, Any] = {**(fixed or {}), "space": space}
    baseline = {name: value for name, value in best_params.items() if name in distributions}
    if baseline:
        document["baseline"] = baseline

    header = [f"# Next sweep for study {result['study']!r}, from its analysis."]
    if recommendation:
        header.append("# Narrowed to what removed the plateau: " + ", ".join(recommendation) + ";")
        header.append("# every other parameter keeps the range it was swept over.")
    else:
        header.append(f"# No factor was found ({result.get('evidence', 'unknown')} evidence): the space is unchanged.")
    if baseline:
        header.append(f"# [baseline] is the best trial, {best['number']} (best val loss {best['best_val_loss']:.4g}).")
    if fixed_note:
        header.append(f"# {fixed_note}")
    config_text = "\n".join(header) + "\n\n" + tomli_w.dumps(document)

    params_text = json.dumps(
        {
            "study": result["study"],
            "trial": best.get("number"),
            "best_val_loss": best.get("best_val_loss"),
            "verdict": best.get("verdict"),
            "params": baseline,
        },
        indent=2,
    ) + "\n"
    return config_text, params_text
