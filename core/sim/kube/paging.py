"""List chunking (`limit` / `continue`), as the apiserver's etcd3 storage does it.

The continue token is the real one's shape: base64 of {"v": "meta.k8s.io/v1", "rv": N, "start": KEY}
(k8s.io/apiserver/pkg/storage/continue.go). Every page of one list is read at the first page's
resourceVersion, so objects changed meanwhile do not move between pages; once that version has been
compacted away the token is stale and the answer is 410 Expired.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from core.sim.kube.errors import ApiError

Obj = dict[str, Any]
_VERSION = "meta.k8s.io/v1"


def _key(obj: Obj) -> str:
    meta = obj["metadata"]
    ns = meta.get("namespace") or ""
    return f"{ns}/{meta['name']}" if ns else meta["name"]


def encode(rv: int, start: str) -> str:
    doc = {"v": _VERSION, "rv": rv, "start": start}
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ApiError(400, "BadRequest", "continue key is not valid: illegal base64 data") from None
    if not isinstance(doc, dict) or doc.get("v") != _VERSION:
        raise ApiError(
            400, "BadRequest", "continue key is not valid: server does not recognize this encoded key version"
        )
    rv, start = doc.get("rv"), doc.get("start")
    # rv -1 is the token a 410 hands back: "go on from here at the latest version"
    if not isinstance(rv, int) or rv == 0 or rv < -1 or not isinstance(start, str):
        raise ApiError(
            400, "BadRequest", "continue key is not valid: incorrect encoded start resourceVersion"
        )
    return rv, start


def page(items: list[Obj], start: str | None, limit: int) -> tuple[list[Obj], str | None, int]:
    """The items from key `start` on, at most `limit`, the key the next page starts at, and how many remain."""
    items = sorted(items, key=_key)
    if start is not None:
        items = [o for o in items if _key(o) >= start]
    if limit <= 0 or len(items) <= limit:
        return items, None, 0
    # "\x00" after the last key returned: the next page starts just past it, as etcd's keys do
    return items[:limit], _key(items[limit - 1]) + "\x00", len(items) - limit


STALE_MESSAGE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list."
)
