"""A small PromQL evaluator over in-memory samples: `sim serve`'s metrics API without Prometheus.

It evaluates the subset of PromQL the adapters and the plan send (selectors with ``=``,
``!=``, ``=~``, ``!~``; ``rate``, ``increase``, ``sum_over_time``; ``sum/min/max/avg/count``
with ``by``/``without``; ``histogram_quantile``; ``label_replace``; ``vector``; ``+ - * /``
and comparisons with one-to-one matching; ``or``) with Prometheus's semantics, including
rate extrapolation to the window's edges and counter resets. Anything else is a
:class:`PromQLError`, which the API answers as Prometheus does (400, ``bad_data``); an
unknown query is never answered with a made-up number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs
Sample = tuple[Labels, float]
LOOKBACK_S = 300.0  # an instant selector sees the last sample up to 5 minutes old


class PromQLError(ValueError):
    """A query outside the supported subset, or malformed."""


@dataclass
class SeriesStore:
    """Samples per series, appended in time order; old ones dropped after `retention_s`."""

    retention_s: float = 3600.0
    series: dict[Labels, list[tuple[float, float]]] = field(default_factory=dict)

    #: series by metric name: a selector names its metric, and a scan of every series per selector
    #: (200 workloads' histograms) made each query cost milliseconds
    by_name: dict[str, dict[Labels, list[tuple[float, float]]]] = field(default_factory=dict)

    def add(self, labels: dict[str, str], at: float, value: float) -> None:
        key = tuple(sorted(labels.items()))
        points = self.series.get(key)
        if points is None:
            points = self.series[key] = []
            self.by_name.setdefault(labels.get("__name__", ""), {})[key] = points
        points.append((at, value))
        while points and points[0][0] < at - self.retention_s:
            points.pop(0)

    def select(
        self, matchers: list[tuple[str, str, str]]
    ) -> Iterable[tuple[Labels, list[tuple[float, float]]]]:
        names = [want for name, op, want in matchers if name == "__name__" and op == "="]
        candidates = self.by_name.get(names[0], {}) if names else self.series
        for labels, points in candidates.items():
            values = dict(labels)
            if all(_matches(values.get(name, ""), op, want) for name, op, want in matchers):
                yield labels, points


def _matches(value: str, op: str, want: str) -> bool:
    if op == "=":
        return value == want
    if op == "!=":
        return value != want
    hit = re.fullmatch(want, value) is not None
    return hit if op == "=~" else not hit


# --- tokens --------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?(?:e[-+]?\d+)?)(?![\w])|(?P<dur>\[\s*\d+(?:ms|s|m|h|d|w|y)\s*\])"
    r"|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')|(?P<name>[A-Za-z_:][\w:]*)"
    r"|(?P<op>=~|!~|!=|==|>=|<=|[-+*/(){},=<>]))"
)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise PromQLError(f"unexpected character at position {pos}: {text[pos : pos + 10]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _duration(token: str) -> float:
    m = re.fullmatch(r"\[\s*(\d+)(ms|s|m|h|d|w|y)\s*\]", token)
    assert m is not None
    return int(m.group(1)) * _UNITS[m.group(2)]


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


# --- evaluation ----------------------------------------------------------------------


@dataclass
class _Range:
    """A range vector: the window it was asked for, and each series' points inside it."""

    window: float
    series: list[tuple[Labels, list[tuple[float, float]]]]


Value = float | list[Sample] | _Range
_AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    "sum": sum,
    "min": min,
    "max": max,
    "avg": lambda v: sum(v) / len(v),
    "count": lambda v: float(len(v)),
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b else (math.nan if a == 0 else math.copysign(math.inf, a)),
}


class _Parser:
    """Recursive descent that evaluates as it parses (the subset has no need for a tree)."""

    def __init__(self, text: str, store: SeriesStore, at: float) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.store = store
        self.at = at

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if value is not None and token[1] != value:
            raise PromQLError(f"expected {value!r}, found {token[1] or 'end of query'!r}")
        self.pos += 1
        return token

    def run(self) -> Value:
        value = self.expr()
        if self.peek()[0] != "end":
            raise PromQLError(f"unexpected {self.peek()[1]!r}")
        return value

    def expr(self) -> Value:
        left = self.comparison()
        while self.peek() == ("name", "or"):
            self.take()
            right = self.comparison()
            left = _or(_vector(left), _vector(right))
        return left

    def comparison(self) -> Value:
        left = self.additive()
        if self.peek()[1] in _COMPARE:
            op = self.take()[1]
            right = self.additive()
            keep = _COMPARE[op]
            return _binary(left, right, lambda a, b: a if keep(a, b) else None)
        return left

    def additive(self) -> Value:
        left = self.multiplicative()
        while self.peek()[1] in {"+", "-"}:
            op = _ARITH[self.take()[1]]
            left = _binary(left, self.multiplicative(), op)
        return left

    def multiplicative(self) -> Value:
        left = self.unary()
        while self.peek()[1] in {"*", "/"}:
            op = _ARITH[self.take()[1]]
            left = _binary(left, self.unary(), op)
        return left

    def unary(self) -> Value:
        if self.peek()[1] == "-":
            self.take()
            return _binary(-1.0, self.unary(), _ARITH["*"])
        return self.primary()

    def primary(self) -> Value:
        kind, text = self.peek()
        if kind == "num":
            self.take()
            return float(text)
        if text == "(":
            self.take()
            value = self.expr()
            self.take(")")
            return value
        if kind != "name":
            raise PromQLError(f"unexpected {text or 'end of query'!r}")
        if text in _AGGREGATIONS:
            return self.aggregation()
        if self.peek(1)[1] == "(":
            return self.function()
        return self.selector()

    def labels(self) -> list[str]:
        self.take("(")
        names = []
        while self.peek()[1] != ")":
            names.append(self.take()[1])
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return names

    def aggregation(self) -> list[Sample]:
        op = self.take()[1]
        grouping: tuple[str, list[str]] = ("by", [])  # no clause: everything into one series
        if self.peek()[1] in {"by", "without"}:
            grouping = (self.take()[1], self.labels())
        self.take("(")
        inner = _vector(self.expr())
        self.take(")")
        if self.peek()[1] in {"by", "without"}:
            grouping = (self.take()[1], self.labels())
        groups: dict[Labels, list[float]] = {}
        for labels, value in inner:
            mode, names = grouping
            kept = tuple(
                (k, v)
                for k, v in labels
                if (k in names if mode == "by" else k not in names and k != "__name__")
            )
            groups.setdefault(kept, []).append(value)
        return [(labels, _AGGREGATIONS[op](values)) for labels, values in groups.items()]

    def function(self) -> Value:
        name = self.take()[1]
        self.take("(")
        args: list[Value | str] = []
        while self.peek()[1] != ")":
            args.append(_unquote(self.take()[1]) if self.peek()[0] == "str" else self.expr())
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return _call(name, args, self.at)

    def selector(self) -> Value:
        matchers = [("__name__", "=", self.take()[1])]
        if self.peek()[1] == "{":
            self.take()
            while self.peek()[1] != "}":
                label = self.take()[1]
                op = self.take()[1]
                if op not in {"=", "!=", "=~", "!~"} or self.peek()[0] != "str":
                    raise PromQLError(f"bad label matcher for {label}")
                matchers.append((label, op, _unquote(self.take()[1])))
                if self.peek()[1] == ",":
                    self.take()
            self.take("}")
        if self.peek()[0] == "dur":
            window = _duration(self.take()[1])
            return _Range(
                window,
                [
                    (labels, [(t, v) for t, v in points if self.at - window < t <= self.at])
                    for labels, points in self.store.select(matchers)
                ],
            )
        out: list[Sample] = []
        for labels, points in self.store.select(matchers):
            recent = [v for t, v in points if self.at - LOOKBACK_S < t <= self.at]
            if recent:
                out.append((labels, recent[-1]))
        return out


def _vector(value: Value) -> list[Sample]:
    if isinstance(value, float):
        raise PromQLError("expected an instant vector, found a scalar")
    if isinstance(value, _Range):
        raise PromQLError("expected an instant vector, found a range vector")
    return value


def _drop_name(labels: Labels) -> Labels:
    return tuple((k, v) for k, v in labels if k != "__name__")


def _binary(left: Value, right: Value, op: Callable[[float, float], float | None]) -> Value:
    if isinstance(left, float) and isinstance(right, float):
        result = op(left, right)
        return math.nan if result is None else float(result)
    if isinstance(left, float):
        return [(_drop_name(k), r) for k, v in _vector(right) if (r := op(left, v)) is not None]
    if isinstance(right, float):
        return [(_drop_name(k), r) for k, v in _vector(left) if (r := op(v, right)) is not None]
    others = {_drop_name(k): v for k, v in _vector(right)}
    out = []
    for labels, value in _vector(left):
        key = _drop_name(labels)
        if key in others and (result := op(value, others[key])) is not None:
            out.append((key, result))
    return out


def _or(left: list[Sample], right: list[Sample]) -> list[Sample]:
    seen = {_drop_name(k) for k, _ in left}
    return left + [(k, v) for k, v in right if _drop_name(k) not in seen]


def _increase(points: list[tuple[float, float]], window: float, at: float) -> float | None:
    """Prometheus's extrapolated increase over [at - window, at] (None: fewer than two samples)."""
    if len(points) < 2:
        return None
    total, previous = 0.0, points[0][1]
    for _, value in points[1:]:
        total += value - previous if value >= previous else value  # a reset restarts from zero
        previous = value
    first_t, last_t = points[0][0], points[-1][0]
    sampled = last_t - first_t
    average = sampled / (len(points) - 1)
    # extrapolate to the window's edges, at most half an interval past a sample (as Prometheus)
    to_start = min(first_t - (at - window), average * 1.1)
    if points[0][1] > 0 and total > 0:
        to_start = min(to_start, sampled * points[0][1] / total)  # a counter does not go below zero
    to_end = min(at - last_t, average * 1.1)
    return total * (sampled + to_start + to_end) / sampled if sampled > 0 else None


def _window_of(arg: Value | str) -> _Range:
    if not isinstance(arg, _Range):
        raise PromQLError("expected a range vector")
    return arg


def _call(name: str, args: list[Value | str], at: float) -> Value:
    if name in {"rate", "increase", "sum_over_time"} and len(args) == 1:
        out: list[Sample] = []
        ranges = _window_of(args[0])
        window = ranges.window
        for labels, points in ranges.series:
            if not points:
                continue
            if name == "sum_over_time":
                out.append((_drop_name(labels), sum(v for _, v in points)))
                continue
            grown = _increase(points, window, at)
            if grown is not None:
                out.append((_drop_name(labels), grown / window if name == "rate" else grown))
        return out
    if name == "vector" and len(args) == 1 and isinstance(args[0], float):
        return [((), args[0])]
    if name == "histogram_quantile" and len(args) == 2 and isinstance(args[0], float):
        return _histogram_quantile(args[0], _vector(args[1]))  # type: ignore[arg-type]
    if name == "label_replace" and len(args) == 5 and all(isinstance(a, str) for a in args[1:]):
        dst, replacement, src, regex = (str(a) for a in args[1:])
        out = []
        for labels, value in _vector(args[0]):  # type: ignore[arg-type]
            values = dict(labels)
            m = re.fullmatch(regex, values.get(src, ""))
            if m is not None:
                values[dst] = m.expand(re.sub(r"\$(\d+)", r"\\\1", replacement))
                values = {k: v for k, v in values.items() if v != ""}
            out.append((tuple(sorted(values.items())), value))
        return out
    raise PromQLError(f"unsupported function {name}() with {len(args)} argument(s)")


def _histogram_quantile(q: float, buckets: list[Sample]) -> list[Sample]:
    groups: dict[Labels, list[tuple[float, float]]] = {}
    for labels, value in buckets:
        values = dict(labels)
        le = values.pop("le", None)
        if le is None:
            continue
        groups.setdefault(tuple(sorted(values.items())), []).append((float(le), value))
    out = []
    for labels, points in groups.items():
        points.sort()
        if not points or points[-1][0] != math.inf or points[-1][1] <= 0:
            continue
        rank = q * points[-1][1]
        lower_bound, lower_count = 0.0, 0.0
        for bound, count in points:
            if count >= rank:
                if bound == math.inf:
                    value = lower_bound  # the highest finite bucket, as Prometheus answers
                elif count == lower_count:
                    value = bound
                else:
                    value = lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
                out.append((labels, value))
                break
            lower_bound, lower_count = bound, count
    return out


def evaluate(query: str, store: SeriesStore, at: float) -> Value:
    """The query's value at epoch time `at` (PromQLError for anything outside the subset)."""
    return _Parser(query, store, at).run()
