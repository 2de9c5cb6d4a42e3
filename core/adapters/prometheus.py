"""The Metrics port on a real Prometheus, through prometheus-api-client.

Every metric of an analysis interval (request count, error ratio, p50/p95/p99)
for both canary and baseline goes to Prometheus as ONE instant query: each
template is grouped ``by (version)`` and tagged with a ``dd_metric`` label via
``label_replace``, and the tagged vectors are joined with ``or``. One round trip
per interval keeps the reading consistent (all numbers share one evaluation
timestamp) and cheap.

Anything that keeps a number from being read is reported as "no data" with a
reason that says which failure it was; it is never turned into a healthy zero.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from core.adapters.deadline import DeadlineExceeded, in_daemon_thread, within
from core.clock import Clock
from core.domain import CanaryMetrics, QueryResult, WorkloadSample
from core.plan import PrometheusSpec, QueriesSpec

if TYPE_CHECKING:
    from prometheus_api_client import PrometheusConnect

_SELECTOR = 'service="$service",namespace="$namespace",version=~"$version"'

DEFAULT_REQUESTS = f"sum by (version) (increase(http_requests_total{{{_SELECTOR}}}[$window]))"
# A version with no 5xx series at all has an error ratio of 0, not "absent": the
# `or 0 * total` arm supplies the zero so the division still yields a number.
DEFAULT_ERROR_RATE = (
    f'(sum by (version) (increase(http_requests_total{{{_SELECTOR},code=~"5.."}}[$window]))'
    f" or 0 * sum by (version) (increase(http_requests_total{{{_SELECTOR}}}[$window])))"
    f" / sum by (version) (increase(http_requests_total{{{_SELECTOR}}}[$window]))"
)
DEFAULT_LATENCY = (
    "histogram_quantile($quantile, sum by (version, le) "
    f"(rate(http_request_duration_seconds_bucket{{{_SELECTOR}}}[$window])))"
)

QUANTILES: dict[str, float] = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
METRIC_LABEL = "dd_metric"
_GROUPED_BY_VERSION = re.compile(r"\bby\s*\([^)]*\bversion\b")
_STATUS = re.compile(r"HTTP Status Code (\d+) \((b?(['\"]).*\3)\)\s*$", re.S)


class NoData(Exception):
    """A read that produced no usable numbers; str() is the reason shown to people."""


def redact_url(url: str) -> str:
    """Scheme and host (with port) only: no credentials, path or query."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def promql_string(value: str) -> str:
    """Escape text for a double-quoted PromQL string literal."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _regex_literal(value: str) -> str:
    # RE2 accepts a backslash before any punctuation, which is what re.escape emits.
    return re.escape(value)


def promql_duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def _number(raw: object) -> float | None:
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value


#: fewest scrape intervals a PromQL range may span
MIN_SCRAPES = 4


class PrometheusMetrics:
    """Canary vs baseline from Prometheus; implements :class:`core.ports.Metrics`."""

    def __init__(
        self,
        spec: PrometheusSpec,
        *,
        service: str,
        namespace: str,
        canary_version: str,
        baseline_version: str,
        queries: QueriesSpec,
        min_requests: int,
        clock: Clock,
        scrape_interval_s: float | None = None,
    ) -> None:
        self.spec = spec
        #: how often Prometheus scrapes the target; when known, no range is shorter than
        #: MIN_SCRAPES of it (rate() needs two samples; four make it stable)
        self.scrape_interval_s = scrape_interval_s
        self.service = service
        self.namespace = namespace
        self.canary_version = canary_version
        self.baseline_version = baseline_version
        self.queries = queries
        self.min_requests = min_requests
        self.clock = clock
        self.endpoint = redact_url(spec.url)
        #: HTTP requests sent to Prometheus (retries included); the benchmark reads it.
        self.round_trips = 0
        self._client: PrometheusConnect | None = None

    # --- the port ------------------------------------------------------------

    async def canary_metrics(self, window_s: float) -> CanaryMetrics:
        promql = self.batched_query(window_s)
        try:
            series = await self._call(lambda pc: pc.custom_query(promql))
        except NoData as exc:
            reason = await self._explain_failure(str(exc), window_s)
            return CanaryMetrics(
                canary=WorkloadSample(reason=reason),
                baseline=WorkloadSample(reason=reason),
                at=self.clock.now(),
                reason=reason,
            )
        values = self._collect(series)
        window = promql_duration(self.window_for(window_s))
        return CanaryMetrics(
            canary=self._side(self.canary_version, values.get(self.canary_version, {}), window),
            baseline=self._side(self.baseline_version, values.get(self.baseline_version, {}), window),
            at=self.clock.now(),
        )

    async def query(self, promql: str) -> QueryResult:
        try:
            data = await self._call(lambda pc: pc.custom_query(promql))
        except NoData as exc:
            return QueryResult(value=None, reason=str(exc))
        return _single_value(data)

    async def range_history(
        self, start: datetime, end: datetime, step_s: float, *, window_s: float | None = None
    ) -> list[CanaryMetrics]:
        """Canary vs baseline at every step between start and end, for charts opened mid-deploy.

        start/end are Prometheus (wall-clock) times; each point covers ``window_s``
        (default two steps, so consecutive points overlap and no scrape is missed).
        """
        promql = self.batched_query(window_s if window_s is not None else 2 * step_s, scale=False)
        step = f"{step_s:g}s"
        try:
            series = await self._call(lambda pc: pc.custom_query_range(promql, start, end, step))
        except NoData as exc:
            return [
                CanaryMetrics(
                    canary=WorkloadSample(reason=str(exc)),
                    baseline=WorkloadSample(reason=str(exc)),
                    at=end,
                    reason=str(exc),
                )
            ]
        by_time: dict[float, list[dict[str, Any]]] = {}
        for item in series:
            for ts, raw in item.get("values", []):
                by_time.setdefault(float(ts), []).append(
                    {"metric": item.get("metric", {}), "value": [ts, raw]}
                )
        out: list[CanaryMetrics] = []
        for ts in sorted(by_time):
            values = self._collect(by_time[ts])
            out.append(
                CanaryMetrics(
                    canary=self._side(self.canary_version, values.get(self.canary_version, {})),
                    baseline=self._side(self.baseline_version, values.get(self.baseline_version, {})),
                    at=datetime.fromtimestamp(ts, UTC),
                )
            )
        return out

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)

    def set_versions(self, canary_version: str, baseline_version: str) -> None:
        self.canary_version = canary_version
        self.baseline_version = baseline_version

    # --- PromQL ----------------------------------------------------------------

    def templates(self) -> dict[str, str]:
        """Metric name -> PromQL template ($quantile already filled in)."""
        latency = self.queries.latency_quantile or DEFAULT_LATENCY
        out = {
            "requests": self.queries.requests or DEFAULT_REQUESTS,
            "error_rate": self.queries.error_rate or DEFAULT_ERROR_RATE,
        }
        for name, q in QUANTILES.items():
            out[name] = latency.replace("$quantile", f"{q:g}")
        return out

    def window_for(self, window_s: float) -> float:
        # Prometheus lives on the wall clock. Under the demo's ScaledClock a
        # window of N plan seconds spans N / speed real seconds.
        speed = getattr(self.clock, "speed", 1.0)
        wall = window_s / speed if isinstance(speed, int | float) and speed > 0 else window_s
        # A range shorter than a few scrapes is empty or one lumpy step (issue 14: a 300 s
        # window at speed 300 became [1s] and verification read "no data"). Floor it.
        if self.scrape_interval_s:
            wall = max(wall, MIN_SCRAPES * self.scrape_interval_s)
        return wall

    def render(self, template: str, window_s: float, version_regex: str) -> str:
        # `version="$version"` would only ever match one side; the batch needs both.
        template = template.replace('version="$version"', 'version=~"$version"')
        return (
            template.replace("$service", promql_string(self.service))
            .replace("$namespace", promql_string(self.namespace))
            .replace("$version", promql_string(version_regex))
            .replace("$window", promql_duration(window_s))
        )

    def metric_query(self, template: str, window_s: float) -> str:
        """Both versions of one metric in one vector, labelled by version."""
        if _GROUPED_BY_VERSION.search(template):
            both = f"{_regex_literal(self.canary_version)}|{_regex_literal(self.baseline_version)}"
            return self.render(template, window_s, both)
        # A template that does not keep the version label is evaluated once per
        # version and the label is put back, still inside the same request.
        parts = [
            f'label_replace({self.render(template, window_s, _regex_literal(v))}, "version", '
            f'"{promql_string(v)}", "", "")'
            for v in (self.canary_version, self.baseline_version)
        ]
        return " or ".join(parts)

    def batched_query(self, window_s: float, *, scale: bool = True) -> str:
        window = self.window_for(window_s) if scale else window_s
        return " or ".join(
            f'label_replace({self.metric_query(t, window)}, "{METRIC_LABEL}", "{name}", "", "")'
            for name, t in self.templates().items()
        )

    # --- reading results -------------------------------------------------------

    @staticmethod
    def _collect(series: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for item in series:
            labels = item.get("metric", {})
            version, name = labels.get("version"), labels.get(METRIC_LABEL)
            value = item.get("value")
            if version is None or name is None or not isinstance(value, list | tuple) or len(value) != 2:
                continue
            out.setdefault(version, {})[name] = _number(value[1])
        return out

    def _side(self, version: str, values: dict[str, float | None], window: str = "") -> WorkloadSample:
        if not values:
            # the window is part of the message: a range shorter than two scrapes is empty too
            where = f"service {self.service}, namespace {self.namespace}" + (
                f", window {window}" if window else ""
            )
            return WorkloadSample(reason=f"no data: empty result for version {version} ({where})")
        problems: list[str] = []

        def finite(name: str) -> float | None:
            if name not in values:
                problems.append(f"{name} absent")
                return None
            value = values[name]
            if value is None or math.isnan(value):
                problems.append(f"{name} is NaN")
                return None
            if math.isinf(value):
                problems.append(f"{name} is {'+' if value > 0 else '-'}Inf")
                return None
            return value

        requests = finite("requests")
        if requests is not None and requests < self.min_requests:
            return WorkloadSample(
                requests=requests,
                reason=(
                    f"no data: {version} served {requests:.0f} requests in the window, "
                    f"fewer than the minimum {self.min_requests}"
                ),
            )
        sample = {k: finite(k) for k in ("error_rate", "p50", "p95", "p99")}
        reason = f"no data: {version}: {', '.join(problems)}" if problems else None
        return WorkloadSample(requests=requests, reason=reason, **sample)

    # --- transport -------------------------------------------------------------

    def _connect(self) -> PrometheusConnect:
        if self._client is None:
            import requests
            from prometheus_api_client import PrometheusConnect
            from urllib3.util.retry import Retry

            session = requests.Session()
            session.verify = self.spec.ca_file or self.spec.verify_tls
            headers = {"Authorization": f"Bearer {self.spec.token}"} if self.spec.token else None
            auth = (self.spec.username, self.spec.password or "") if self.spec.username else None
            self._client = PrometheusConnect(
                url=self.spec.url.rstrip("/"),
                headers=headers,
                auth=auth,
                session=session,
                # Retries are ours (with the Clock and distinct reasons), not urllib3's.
                retry=Retry(total=0, connect=0, read=0, status=0, redirect=3),
                timeout=self.spec.timeout,
            )
        return self._client

    async def _call(self, fn: Callable[[PrometheusConnect], Any]) -> Any:
        """Run a sync client call in a thread, retrying what may pass; raise NoData with the reason."""
        attempts = self.spec.retries + 1
        reason = "no data: Prometheus was not asked"
        tried = 0
        for attempt in range(attempts):
            if attempt:
                await self.clock.sleep(min(2.0, 0.25 * 2 ** (attempt - 1)))
            self.round_trips += 1
            tried += 1
            try:
                client = self._connect()
                # requests' timeout is per read; a Prometheus dribbling bytes needs a total deadline.
                # A daemon thread: an abandoned call must not hold the process at exit.
                hold = getattr(
                    self.clock, "hold", None
                )  # a VirtualClock stays still while the socket is open
                with hold() if callable(hold) else contextlib.nullcontext():
                    return await within(
                        self.spec.timeout, in_daemon_thread(fn, client), clock=self.clock, what="Prometheus"
                    )
            except Exception as exc:
                reason, retry = self._classify(exc)
                if not retry:
                    break
        raise NoData(reason if tried == 1 else f"{reason} (after {tried} attempts)")

    def _classify(self, exc: Exception) -> tuple[str, bool]:
        """Reason text and whether trying again may help."""
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException

        where = f"Prometheus at {self.endpoint}"
        if isinstance(exc, requests.exceptions.Timeout | DeadlineExceeded):
            return f"no data: {where} timed out after {self.spec.timeout:g}s", True
        if isinstance(exc, requests.exceptions.SSLError):
            return f"no data: {where}: TLS verification failed", False
        if isinstance(exc, requests.exceptions.ConnectionError):
            text = str(exc)
            # without urllib3 retries a read timeout arrives wrapped as a ConnectionError
            if "timed out" in text.lower():
                return f"no data: {where} timed out after {self.spec.timeout:g}s", True
            detail = next(
                (
                    d
                    for d in ("Connection refused", "Name or service not known", "No route to host", "reset")
                    if d.lower() in text.lower()
                ),
                "connection failed",
            )
            return f"no data: {where} unreachable ({detail})", True
        if isinstance(exc, PrometheusApiClientException):
            status, body = _split_status(str(exc))
            if status is None:
                return f"no data: {where}: unexpected answer", False
            error = _prometheus_error(body)
            if status in (400, 422) and error:
                return f"no data: PromQL error from {where}: {error}", False
            retry = status >= 500 or status == 429
            suffix = f": {error}" if error else ""
            return f"no data: {where} answered HTTP {status}{suffix}", retry
        if isinstance(exc, ValueError | KeyError | TypeError):
            # 200 with a body that is not the Prometheus API (a proxy's login page, say).
            return f"no data: {where} answered without a Prometheus API response", False
        if isinstance(exc, requests.exceptions.RequestException):
            return f"no data: {where}: request failed ({type(exc).__name__})", True
        return f"no data: {where}: {type(exc).__name__}", False

    async def _explain_failure(self, reason: str, window_s: float) -> str:
        """A PromQL error in the batch: find which template caused it (only costs requests on failure)."""
        if "PromQL error" not in reason:
            return reason
        window = self.window_for(window_s)
        for name, template in self.templates().items():
            promql = self.metric_query(template, window)
            try:
                await self._call(lambda pc, q=promql: pc.custom_query(q))
            except NoData as exc:
                if "PromQL error" in str(exc):
                    return f"{exc} (in the '{name}' query)"
        return reason


def _split_status(message: str) -> tuple[int | None, str]:
    match = _STATUS.search(message)
    if not match:
        return None, ""
    try:
        raw = ast.literal_eval(match.group(2))
    except (ValueError, SyntaxError):
        raw = b""
    body = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return int(match.group(1)), body


def _prometheus_error(body: str) -> str:
    """Prometheus's own message from an error body, or ''."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:200] if body.strip() and "<" not in body else ""
    if isinstance(data, dict) and data.get("error"):
        kind = data.get("errorType")
        return f"{kind}: {data['error']}" if kind else str(data["error"])
    return ""


def _single_value(data: Any) -> QueryResult:
    # scalar and string results come back as [timestamp, "value"]
    if isinstance(data, list) and len(data) == 2 and not isinstance(data[0], dict):
        value = _number(data[1])
    elif isinstance(data, list):
        if not data:
            return QueryResult(value=None, reason="no data: the query returned no series")
        if len(data) > 1:
            return QueryResult(
                value=None,
                reason=f"no data: the query returned {len(data)} series; aggregate it to one (e.g. sum(...))",
            )
        item = data[0]
        if "values" in item:
            return QueryResult(value=None, reason="no data: the query returns a range vector, not one number")
        value = _number((item.get("value") or [None, None])[1])
    else:
        return QueryResult(value=None, reason="no data: unexpected result shape")
    if value is None or math.isnan(value):
        return QueryResult(value=None, reason="no data: the result is NaN")
    if math.isinf(value):
        return QueryResult(value=None, reason="no data: the result is infinite")
    return QueryResult(value=value)
