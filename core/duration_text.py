"""A duration in words ("4m30s"), stdlib only: `deploydeck log` formats with it and must not pay
for importing pydantic (core.durations re-exports it as format_duration)."""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m" if m else f"{h}h"
    if m:
        return f"{m}m{s:02d}s" if s else f"{m}m"
    return f"{s}s"
