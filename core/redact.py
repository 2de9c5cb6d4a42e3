"""The one redaction point: every value the tool writes or draws passes through here.

A plan's ``${VAR}`` values are secrets unless the plan marks them ``${VAR:public}``
(core.plan_load registers them when it loads the plan), and so are the values of
environment variables whose names look secret (``*TOKEN*``, ``*SECRET*``, ...).
Redaction is by value, so a secret is hidden wherever it ends up: inside a URL path
or query string, inside a longer string, JSON-escaped or percent-encoded.

Where it is applied, so that nothing the tool writes or draws can go around it:

* every engine event is redacted when it is made (``core.events.EventBase``), so the journal,
  ``--json``, the readable progress, ``log show``/``export``, incident records, notifications
  and the dashboard (which draws only from events) never hold a secret;
* the CLI wraps stdout and stderr in :class:`RedactingStream`, so every print (``check``'s
  checklist, error messages, notes) passes here too;
* ``PlanError`` redacts its messages, for callers that never print them.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

MASK = "***"
#: shorter values ("1", "yes", "main") would mask ordinary words everywhere; a secret that
#: short is no secret, and the README says so
MIN_SECRET_LEN = 4
_SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "WEBHOOK", "CREDENTIAL", "AUTH")

#: a URL query parameter whose name says it holds a credential: masked even when the value was
#: written into the plan as is (not interpolated), so `check` never prints it
_SECRET_QUERY = re.compile(
    r"([?&][^=&\s#]*(?:token|key|sig|secret|pass|auth|credential)[^=&\s#]*=)([^&\s#\"']+)", re.IGNORECASE
)

_lock = threading.Lock()
_registered: set[str] = set()
_forms: tuple[str, ...] = ()  # every spelling of every secret, longest first
_env_seen: dict[object, object] | None = None  # os.environ's raw data when last read


def looks_secret(name: str) -> bool:
    return any(marker in name.upper() for marker in _SECRET_MARKERS)


def secret_env_values(env: Mapping[str, str]) -> set[str]:
    return {v for k, v in env.items() if looks_secret(k) and len(v) >= MIN_SECRET_LEN}


def _spellings(value: str) -> set[str]:
    """The ways a value appears in output: as is, JSON-escaped, percent-encoded."""
    out = {value, json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1]}
    out |= {quote(value, safe=""), quote_plus(value), quote(value)}
    return {s for s in out if len(s) >= MIN_SECRET_LEN}


def _rebuild() -> None:
    global _forms
    forms: set[str] = set()
    for value in _registered:
        forms |= _spellings(value)
    # longest first, so a secret that contains another is masked whole
    _forms = tuple(sorted(forms, key=len, reverse=True))


def register(values: Iterable[str]) -> None:
    """Add secret values for the rest of this process (a loaded plan's interpolated values)."""
    fresh = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LEN} - _registered
    if not fresh:
        return
    with _lock:
        _registered.update(fresh)
        _rebuild()


def _refresh_env() -> None:
    # os.environ can change under a running test; re-read it only when it did. This runs for
    # every event made, so the check compares the raw environment (a C-level dict compare)
    # instead of decoding a copy of it each time.
    global _env_seen
    raw = getattr(os.environ, "_data", None)
    if raw is not None and raw == _env_seen:
        return
    _env_seen = dict(raw) if raw is not None else None
    register(secret_env_values(dict(os.environ)))


def secrets() -> tuple[str, ...]:
    _refresh_env()
    return _forms


def reset_for_tests() -> None:
    global _env_seen
    with _lock:
        _registered.clear()
        _env_seen = None
        _rebuild()


def redact(text: str, forms: tuple[str, ...] | None = None) -> str:
    if not text:
        return text
    for form in secrets() if forms is None else forms:
        if form in text:
            text = text.replace(form, MASK)
    if "=" in text:
        text = _SECRET_QUERY.sub(lambda m: m.group(1) + MASK, text)
    return text


def redact_obj(value: Any, forms: tuple[str, ...] | None = None) -> Any:
    """A JSON-like value with every string (keys too) redacted; models come back as dicts
    only when something in them was masked (the caller re-validates those)."""
    forms = secrets() if forms is None else forms
    # every event passes here: one C-speed scan of the whole value first, and the walk only
    # when a secret (in any of its spellings) or a credential-looking query could be in it
    try:
        blob = json.dumps(value, ensure_ascii=False, default=_plain)
    except (TypeError, ValueError):
        blob = None
    if blob is not None and not any(form in blob for form in forms) and not _SECRET_QUERY.search(blob):
        return value
    return _walk(value, forms)


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else str(value)


def _walk(value: Any, forms: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return redact(value, forms)
    if isinstance(value, Mapping):
        return {_walk(k, forms): _walk(v, forms) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, forms) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # a nested pydantic model (a GateResult, a RuleReading)
        plain = dump()
        masked = _walk(plain, forms)
        return value if masked == plain else masked
    return value


class RedactingStream:
    """A text stream that redacts what it forwards.

    Writes are buffered to the end of a line, so a secret split across two ``write``
    calls is still seen whole; ``flush`` forwards any partial line.
    """

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            head, _, self._pending = self._pending.rpartition("\n")
            self._inner.write(redact(head + "\n"))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._inner.write(redact(self._pending))
            self._pending = ""
        self._inner.flush()

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install_on_std_streams() -> None:
    """Wrap sys.stdout and sys.stderr once (the CLI's entry point calls this)."""
    import sys

    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]
