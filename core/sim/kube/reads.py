"""Reads of the simulated API server: chunked lists and watches, with selectors, as the real server serves them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from aiohttp import web

from core.clock import Clock
from core.sim.kube import events, paging, tables
from core.sim.kube.errors import ApiError, bad_request
from core.sim.kube.resources import Resource
from core.sim.kube.selectors import field_matcher, label_matcher
from core.sim.kube.store import Obj, Store


def list_page(store: Store, request: web.Request, res: Resource, ns: str | None) -> tuple[list[Obj], Obj]:
    """A list, chunked by `limit`/`continue`; every chunk is read at the first chunk's resourceVersion."""
    matches = matcher(request, res.kind)
    try:
        limit = int(request.query.get("limit") or 0)
    except ValueError:
        raise bad_request(f'invalid limit "{request.query.get("limit")}"') from None
    token = request.query.get("continue")
    start: str | None = None
    if token:
        if request.query.get("resourceVersion") not in (None, ""):
            raise bad_request("specifying resource version is not allowed when using continue")
        rv, start = paging.decode(token)
        if rv == -1:  # the token a 410 hands back: go on at the latest version
            rv = int(store.resource_version)
        try:
            items = store.list_at(res, ns, matches, rv)
        except ApiError as exc:
            if exc.code != 410:
                raise
            raise ApiError(
                410, "Expired", paging.STALE_MESSAGE, list_meta={"continue": paging.encode(-1, start)}
            ) from None
    else:
        rv = int(store.resource_version)
        items = store.list(res, ns, matches)
    items, next_start, remaining = paging.page(items, start, limit)
    meta: Obj = {"resourceVersion": str(rv)}
    if next_start is not None:
        meta["continue"] = paging.encode(rv, next_start)
        if not request.query.get("labelSelector") and not request.query.get("fieldSelector"):
            meta["remainingItemCount"] = remaining  # as the real server: only without selectors
    return items, meta


def matcher(request: web.Request, kind: str) -> Callable[[Obj], bool]:
    labels = label_matcher(request.query.get("labelSelector"))
    fields = field_matcher(events.field_selector(request), kind)
    return lambda o: labels(o) and fields(o)


async def watch(
    store: Store,
    clock: Clock,
    timers: set[asyncio.Future[None]],
    request: web.Request,
    res: Resource,
    ns: str | None,
    name: str,
    out: Callable[[Obj], Obj] = lambda o: o,
) -> web.StreamResponse:
    matches = matcher(request, res.kind)
    if name:
        base = matches
        matches = lambda o: base(o) and o["metadata"]["name"] == name  # noqa: E731
    timeout = float(request.query.get("timeoutSeconds", "1800"))
    as_table = tables.wants_table(request.headers.get("Accept", ""))
    response = web.StreamResponse(
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    )
    try:
        backlog, watcher = store.open_watch(res, ns, matches, request.query.get("resourceVersion"))
    except ApiError as exc:
        if exc.code != 410:
            raise
        # the real server accepts the watch (200) and sends the 410 as its one ERROR event
        await response.prepare(request)
        await response.write(json.dumps({"type": "ERROR", "object": exc.body}).encode() + b"\n")
        await response.write_eof()
        return response
    timer = asyncio.ensure_future(clock.sleep(timeout))
    timers.add(timer)
    sent_columns = False
    try:
        await response.prepare(request)
        while True:
            if backlog:
                change = backlog.pop(0)
            else:
                nxt = asyncio.ensure_future(watcher.queue.get())
                done, _ = await asyncio.wait({nxt, timer}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    break
                change = nxt.result()
            obj: Obj = out(change.obj)
            if as_table:
                obj = tables.table(res, [change.obj], str(change.rv), with_columns=not sent_columns)
                sent_columns = True
            await response.write(json.dumps({"type": change.type, "object": obj}).encode() + b"\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        timer.cancel()
        timers.discard(timer)
        store.close_watch(watcher)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
