"""What one setting or search knob accepts: its type, bounds or choices, and the words that say so.

The one type that the fixed settings (``sweep.config.SETTINGS``) and the search knobs (``sweep.space.PARAMS``) are
written in; flags, TOML files, stored studies and the search space all check values against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection


@dataclass(frozen=True)
class Bounds:
    kind: type  # int, float, str or bool; a bool is not an int here
    help: str
    low: float | None = None
    high: float | None = None
    open_ends: str = ""  # "low", "high" or "both": which bounds are excluded
    choices: Collection[str] = ()  # a table's keys are read when checked, so a name added to the table is accepted
    zero_means_all: bool = False  # an image cap: 0 on the command line or in a file, None when stored
    log: bool = False  # a knob whose ranges are searched on a log scale
    search: str = ""  # a knob's flag forms: "range" (LOW:HIGH), "list" (a,b,c) or "range_or_list"; "" = fixed only

    def accepted(self) -> str:
        if self.choices:
            *others, last = self.choices
            return ", ".join(others) + " or " + last if others else last
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "a string"
        noun = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            left = "(" if self.open_ends in ("low", "both") else "["
            right = ")" if self.open_ends in ("high", "both") else "]"
            bounds = f" from {self.low:g} to {self.high:g}" if self.kind is int else f" in {left}{self.low:g}, {self.high:g}{right}"
        else:
            bounds = f" >= {self.low:g}" if self.low is not None else ""
        return noun + bounds + (", or 0 for all images" if self.zero_means_all else "")

    def accepts(self, value: Any) -> bool:
        if self.zero_means_all and value is None:
            return True
        if self.kind is float:
            right_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            right_type = isinstance(value, self.kind) and (self.kind is bool or not isinstance(value, bool))
        if not right_type:
            return False
        if self.choices:
            return value in self.choices
        if self.low is not None and (value < self.low or (value == self.low and self.open_ends in ("low", "both"))):
            return False
        return self.high is None or value < self.high or (value == self.high and self.open_ends not in ("high", "both"))
