"""One line of the benchmark table: a ratio, what it divides, and the target it is held to."""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, field

_OPS = {"<=": operator.le, ">=": operator.ge}


@dataclass
class Row:
    key: str  # stable identifier, e.g. "repeat_click"
    title: str  # e.g. "Repeat click"
    measure: str  # what is divided by what, e.g. "p50 cached click / p50 cold click"
    ratio: float
    target: tuple[str, float] | None = None  # ("<=", 0.03)
    parts: dict[str, float] = field(default_factory=dict)  # the two sides' medians (seconds, bytes or req/s)
    unit: str = "s"  # the unit of `parts`

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        op, value = self.target
        return _OPS[op](self.ratio, value)

    @property
    def target_text(self) -> str:
        return "" if self.target is None else f"{self.target[0]} {self.target[1]:g}"

    def as_json(self) -> dict:
        data = asdict(self)
        data["target"] = self.target_text or None
        data["met"] = self.met
        return data
