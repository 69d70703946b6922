"""What a check returns (verdict, message, evidence, fix), how verdicts combine, and what the study keeps of a
report."""

from __future__ import annotations

import datetime
import math
from dataclasses import asdict, dataclass
from typing import Iterable

VERDICTS = ("ok", "warning", "problem")
SYMBOLS = {"ok": "✓", "warning": "!", "problem": "✗"}


@dataclass(frozen=True)
class CheckResult:
    name: str
    verdict: str  # ok | warning | problem
    message: str
    evidence: dict
    fix: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def worst(verdicts: Iterable[str]) -> str:
    return max(verdicts, key=VERDICTS.index, default="ok")


def rounded(value: float, digits: int = 4) -> float | None:
    """A finite number for the JSON evidence, or None (JSON has no NaN)."""
    return round(float(value), digits) if math.isfinite(float(value)) else None


def summary(report: dict) -> dict:
    """What is stored on the study (user attr ``doctor``): verdict and one line per check, without the evidence."""
    return {
        "verdict": report["verdict"],
        "source": report["source"],
        "quick": report["quick"],
        "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checks": [{key: check[key] for key in ("name", "verdict", "message", "fix")} for check in report["checks"]],
        "suggested_lr_range": next((c["evidence"].get("suggested_lr_range") for c in report["checks"]
                                    if c["name"] == "lr_range"), None),
    }
