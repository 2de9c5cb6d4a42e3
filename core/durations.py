"""Durations as people write them in plans: "90s", "5m", "1h30m", "250ms", or plain seconds."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

from core.duration_text import format_duration

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
#: no plan waits, observes or times out for longer than a year (and never forever)
MAX_DURATION_S = 366 * 86400.0
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"'{value}' is not a duration; write e.g. 30s, 5m, 1h30m")
            seconds = sum(float(n) * _UNIT[u] for n, u in parts)
    else:
        raise ValueError("expected a duration like 30s, 5m or 1h")
    if math.isnan(seconds) or seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"'{value}' is longer than a year; write a shorter duration")
    return seconds


Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
