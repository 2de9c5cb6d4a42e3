"""Tolerances derived from how many requests a reading rests on, not guessed.

An error rate read from n requests with true rate p is a binomial proportion: its standard error
is sqrt(p(1-p)/n). Four standard errors (about one false alarm in 16,000 reads) plus the
resolution of one request keeps the real-Prometheus tests green under load, where fewer
requests land in a window, and still fails a reading that is really off.
"""

from __future__ import annotations

import math


def error_rate_tolerance(p: float, requests: float | None, *, sigmas: float = 4.0) -> float:
    n = max(1.0, requests or 0.0)
    return sigmas * math.sqrt(p * (1 - p) / n) + 1.0 / n
