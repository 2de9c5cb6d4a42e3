"""The agent's API: every DeployRun it watches, their event streams, and people's commands.

JSON over HTTPS (plain HTTP only on a loopback address: a bearer token must not cross a network in
the clear), events as Server-Sent Events. Who calls is the cluster's answer, not the caller's: the
``Authorization: Bearer`` token goes to a TokenReview, and every read and every command to a
SubjectAccessReview on ``deployruns`` (core.agent.auth). A command RBAC refuses is journaled on
the run (``command_refused``, identity "authenticated", with the caller's groups), so the log
keeps who tried, not only who succeeded.

Endpoints (all under ``/api/v1``):

- ``GET whoami``: ``{username, groups}``
- ``GET runs``: ``{"runs": [FleetRow + attached]}``, only namespaces the caller may ``list``
- ``GET namespaces/{ns}/runs/{name}``: ``{row, plan, state, you}``
- ``GET namespaces/{ns}/runs/{name}/events``: ``text/event-stream`` (core.agent.stream)
- ``POST namespaces/{ns}/runs/{name}/commands/{verb}``: ``{ok, reason}``; 403 RBAC, 409 engine

One replica drives a run (it holds the run's Lease); the others answer reads of the fleet and
forward the rest to the driver (core.agent.forward), which authorizes and journals.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core import redact
from core.adapters.kubernetes.api import KubeApi
from core.agent.auth import Authorizer, AuthProblem, Identity
from core.agent.forward import FORWARDED, Forwarder, HttpProblem, forward_context
from core.agent.http import ApiMetrics
from core.agent.runs import SUBRESOURCE_OF, RunRegistry, RunView
from core.agent.stream import KEEPALIVE, StreamHub, run_state
from core.rollout import CommandResult, Rollout

log = logging.getLogger("deploydeck.agent.api")

PREFIX = "/api/v1"
#: the permissions ``you.may`` reports, as the subresources a Role grants
MAY = ("signoff", "proceed", "rollback", "abort", "pause")
#: the engine's name of each API verb (what ``command_refused`` records)
ENGINE_COMMAND = {verb: ("sign_off" if verb == "signoff" else verb) for verb in SUBRESOURCE_OF}


class ApiConfigError(ValueError):
    """The API cannot be served as asked; the message names the flag (the CLI exits 2 with it)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tls_cert: str | Path | None, tls_key: str | Path | None) -> None:
    """Refuse a plain-HTTP API off loopback, half a TLS pair, or a missing certificate file."""
    if (tls_cert is None) != (tls_key is None):
        missing = "--tls-key" if tls_key is None else "--tls-cert"
        raise ApiConfigError(f"{missing} is missing: --tls-cert and --tls-key go together")
    if tls_cert is None and not is_loopback(host):
        raise ApiConfigError(
            f"--tls-cert and --tls-key are required to serve the API on {host}: plain HTTP is only "
            "served on loopback (127.0.0.1, ::1), since every request carries a bearer token"
        )
    for flag, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
        if path is not None and not Path(path).is_file():
            raise ApiConfigError(f"{flag} {path}: no such file")


class AgentLike(Protocol):
    """What the API needs of core.agent.runner.Agent."""

    registry: RunRegistry
    api: KubeApi  # the agent's own client: TokenReviews and SubjectAccessReviews go through it
    api_url: str  # this replica's API URL, as other replicas reach it


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignOffBody(_Body):
    gate: str = Field(min_length=1, max_length=253)
    note: str = Field(default="", max_length=4096)


class ReasonBody(_Body):
    reason: str = Field(default="", max_length=4096)


class DecideBody(_Body):
    option: str = Field(min_length=1, max_length=64)


BODY_OF: dict[str, type[_Body]] = {
    "signoff": SignOffBody,
    "pause": ReasonBody,
    "rollback": ReasonBody,
    "abort": ReasonBody,
    "decide": DecideBody,
}


def redacted_plan(rollout: Rollout) -> dict[str, Any]:
    """The plan as a caller may read it: every secret value masked (its interpolated secrets and
    the process's secret-looking variables, as the journal does), and every credential field
    (tokens, passwords, webhook URLs, whose path is the secret) masked whatever its value."""
    own = {v for v in rollout.plan.secret_values if len(v) >= redact.MIN_SECRET_LEN}
    forms = tuple(sorted(set(redact.secrets()) | own, key=len, reverse=True))  # longest first
    return _mask_fields(redact.redact_obj(rollout.plan.model_dump(mode="json"), forms))  # type: ignore[no-any-return]


def written_plan(view: RunView) -> dict[str, Any] | None:
    """The DeployRun's spec as written (``${VAR}`` references, not their values), credentials
    masked: the plan of a run nobody drives now. None when the view does not hold the object."""
    spec = (getattr(view, "obj", None) or {}).get("spec")  # core.agent.drive.DrivenRun keeps it
    return _mask_fields(redact.redact_obj(spec)) if isinstance(spec, dict) else None  # type: ignore[no-any-return]


#: the plan's credential fields (core.plan): masked even when written into the plan as they are
CREDENTIAL_FIELDS = frozenset({"token", "password", "pagerduty_token", "tickets_webhook"})


def _mask_fields(value: Any, parent: str = "") -> Any:
    if isinstance(value, dict):
        return {
            k: (
                redact.MASK
                if isinstance(v, str)
                and v
                and (k in CREDENTIAL_FIELDS or (parent == "webhooks" and k == "url"))
                else _mask_fields(v, k)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_fields(v, parent) for v in value]
    return value


class ApiServer:
    def __init__(
        self,
        agent: AgentLike,
        *,
        authorizer: Authorizer | None = None,
        keepalive_s: float = 15.0,
        forward_timeout_s: float = 10.0,
        forward_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.agent = agent
        self.metrics = _api_metrics(getattr(agent, "metrics", None))
        self.auth = authorizer or Authorizer(
            agent.api, observe=self.metrics.observe_review if self.metrics else None
        )
        self.hub = StreamHub()
        self.keepalive_s = keepalive_s
        self.forwarder = Forwarder(
            lambda: self.agent.api_url or "",
            ssl_context=forward_ssl,
            timeout_s=forward_timeout_s,
            keepalive_s=keepalive_s,
            count=(lambda e: self.metrics.forwarded.labels(endpoint=e).inc()) if self.metrics else None,
        )

    # --- the application ------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024, middlewares=[_json_errors])
        run = PREFIX + "/namespaces/{ns}/runs/{name}"
        app.router.add_get(PREFIX + "/whoami", self._wrap("whoami", self.whoami))
        app.router.add_get(PREFIX + "/runs", self._wrap("runs", self.runs))
        app.router.add_get(run, self._wrap("run", self.run))
        app.router.add_get(run + "/events", self._wrap("events", self.events))
        app.router.add_post(run + "/commands/{verb}", self._wrap("command", self.command))
        app.on_shutdown.append(self._shutdown)
        return app

    async def _shutdown(self, _app: web.Application) -> None:
        self.hub.close()  # open event streams end now instead of holding the shutdown
        await self.forwarder.close()

    def _wrap(
        self, endpoint: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                response = await handler(request)
            except (AuthProblem, HttpProblem) as exc:
                response = web.json_response({"error": exc.message}, status=exc.status)
                if exc.status == 401:
                    response.headers["WWW-Authenticate"] = 'Bearer realm="deploydeck"'
            except web.HTTPException:
                raise  # aiohttp's own (a body too large...): made JSON by _json_errors
            except Exception as exc:  # a bug: the caller gets JSON naming the request, the log the trace
                log.exception("%s %s failed", request.method, request.path)
                response = web.json_response(
                    {"error": f"{request.method} {request.path}: internal error ({type(exc).__name__})"},
                    status=500,
                )
            if self.metrics is not None:
                self.metrics.requests.labels(endpoint=endpoint, code=str(response.status)).inc()
            return response

        return handle

    # --- helpers ----------------------------------------------------------------------------

    async def _who(self, request: web.Request) -> Identity:
        return await self.auth.authenticate(request.headers.get("Authorization"))

    def _view(self, request: web.Request) -> RunView:
        ns, name = request.match_info["ns"], request.match_info["name"]
        view = self.agent.registry.get(ns, name)
        if view is None:
            raise HttpProblem(404, f"deployrun {ns}/{name} not found (GET {request.path})")
        return view

    def _row(self, view: RunView) -> dict[str, Any]:
        return {**view.row(), "attached": self.hub.attached(view.key)}

    # --- observing --------------------------------------------------------------------------

    async def whoami(self, request: web.Request) -> web.Response:
        who = await self._who(request)
        return web.json_response(who.model_dump())

    async def runs(self, request: web.Request) -> web.Response:
        who = await self._who(request)
        views = self.agent.registry.runs()
        namespaces = sorted({ns for ns, _ in views})
        decisions = await asyncio.gather(*(self.auth.check(who, "list", ns) for ns in namespaces))
        visible = {ns for ns, d in zip(namespaces, decisions, strict=True) if d.allowed}
        shown = {key: view for key, view in sorted(views.items()) if key[0] in visible}
        rows = {key: self._row(view) for key, view in shown.items()}
        if FORWARDED not in request.headers:
            for key, attached in (
                await self.forwarder.attached_elsewhere(request, shown, PREFIX + "/runs")
            ).items():
                rows[key]["attached"] = sorted(set(rows[key]["attached"]) | set(attached))
        return web.json_response({"runs": list(rows.values())})

    async def run(self, request: web.Request) -> web.StreamResponse:
        who = await self._who(request)
        ns, name = request.match_info["ns"], request.match_info["name"]
        await self.auth.require(who, "get", ns, name)
        view = self._view(request)
        rollout = view.rollout
        if rollout is None:
            if (
                view.driver_url
                and FORWARDED not in request.headers
                and not self.forwarder.is_self(view.driver_url)
            ):
                return await self.forwarder.forward(request, view, "run")
            # nobody drives it (finished, or between replicas): what the DeployRun says
            return web.json_response(
                {
                    "row": self._row(view),
                    "plan": written_plan(view),
                    "state": None,
                    "you": await self._you(who, ns, name),
                }
            )
        return web.json_response(
            {
                "row": self._row(view),
                "plan": redacted_plan(rollout),
                "state": run_state(rollout),
                "you": await self._you(who, ns, name),
            }
        )

    async def _you(self, who: Identity, ns: str, name: str) -> dict[str, Any]:
        decisions = await asyncio.gather(*(self.auth.check(who, "create", ns, name, sub) for sub in MAY))
        may = {sub: d.allowed for sub, d in zip(MAY, decisions, strict=True)}
        return {"username": who.username, "groups": who.groups, "may": may}

    async def events(self, request: web.Request) -> web.StreamResponse:
        who = await self._who(request)
        ns, name = request.match_info["ns"], request.match_info["name"]
        await self.auth.require(who, "watch", ns, name)
        view = self._view(request)
        raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or "0"
        try:
            last = int(raw)
        except ValueError:
            raise HttpProblem(400, f"Last-Event-ID must be an event number, got {raw[:40]!r}") from None
        rollout = view.rollout
        if rollout is None:
            return await self.forwarder.forward(request, view, "events", stream=True)
        stream = self.hub.stream(view.key, rollout)
        history, sub = stream.attach(who.username, last)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        if self.metrics is not None:
            self.metrics.stream_clients.inc()
        loop = asyncio.get_running_loop()
        try:
            await response.write(history)
            quiet_since = loop.time()
            while True:
                try:
                    # wakes at least once a second to notice a run taken over by another replica
                    # and a client that hung up (no longer listed as attached)
                    async with asyncio.timeout(min(1.0, self.keepalive_s)):  # not wait_for: 3.11 loses
                        frame = await sub.queue.get()  # a frame and the cancel landing together
                except TimeoutError:
                    if view.rollout is not rollout or stream.closed:
                        break  # the client reconnects and is sent to whoever drives it now
                    if request.transport is None or request.transport.is_closing():
                        break
                    if loop.time() - quiet_since >= self.keepalive_s:
                        await response.write(KEEPALIVE)
                        quiet_since = loop.time()
                    continue
                if frame is None:
                    break
                chunks, ended = [frame], False
                while not sub.queue.empty():  # whatever else is queued goes in the same write
                    more = sub.queue.get_nowait()
                    if more is None:
                        ended = True
                        break
                    chunks.append(more)
                await response.write(b"".join(chunks))
                quiet_since = loop.time()
                if ended:
                    break
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the client went away
        except Exception:  # the response has begun: end it (the client reconnects), log why
            log.exception("event stream of %s/%s failed", ns, name)
        finally:
            self.hub.detach(view.key, stream, sub)
            if self.metrics is not None:
                self.metrics.stream_clients.dec()
        return response

    # --- acting -------------------------------------------------------------------------------

    async def command(self, request: web.Request) -> web.StreamResponse:
        verb = request.match_info["verb"]
        if verb not in SUBRESOURCE_OF:
            raise HttpProblem(
                404, f"unknown command '{verb}' (POST {request.path}); one of: {', '.join(SUBRESOURCE_OF)}"
            )
        who = await self._who(request)
        view = self._view(request)
        rollout = view.rollout
        if rollout is None:
            # the driver authorizes and journals: it holds the run's log
            return await self.forwarder.forward(request, view, "command")
        ns, name = view.key
        decision = await self.auth.check(who, "create", ns, name, SUBRESOURCE_OF[verb])
        if not decision.allowed:
            await self._journal_refusal(rollout, verb, who, decision.reason)
            self._count(verb, "forbidden")
            raise HttpProblem(403, decision.reason)
        body = await self._body(request, verb)
        result = await self._apply(rollout, verb, who, body)
        self._count(verb, "ok" if result.ok else "refused")
        return web.json_response(result.model_dump(), status=200 if result.ok else 409)

    def _count(self, verb: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.commands.labels(verb=verb, result=result).inc()

    async def _journal_refusal(self, rollout: Rollout, verb: str, who: Identity, reason: str) -> None:
        try:
            await rollout.refuse(
                ENGINE_COMMAND[verb], who.username, reason, identity="authenticated", groups=who.groups
            )
        except Exception:  # the 403 stands even if the journal cannot take the line; say so
            log.exception("could not journal %s's refused %s", who.username, verb)

    async def _body(self, request: web.Request, verb: str) -> _Body | None:
        model = BODY_OF.get(verb)
        raw = await request.read()
        if model is None:
            if raw.strip() not in {b"", b"{}", b"null"}:
                raise HttpProblem(400, f"POST {request.path}: {verb} takes no body")
            return None
        try:
            return model.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            raise HttpProblem(400, f"POST {request.path}: {problems}") from None

    async def _apply(self, rollout: Rollout, verb: str, who: Identity, body: _Body | None) -> CommandResult:
        actor = who.username
        kw: dict[str, Any] = {"identity": "authenticated", "groups": who.groups}
        if verb == "signoff":
            assert isinstance(body, SignOffBody)
            return await rollout.sign_off(body.gate, actor, body.note, **kw)
        if verb == "decide":
            assert isinstance(body, DecideBody)
            return await rollout.decide(body.option, actor, **kw)
        reason = body.reason if isinstance(body, ReasonBody) else ""
        if verb == "pause":
            return await rollout.pause(actor, reason or f"paused by {actor}", **kw)
        if verb == "rollback":
            return await rollout.rollback(actor, reason or f"manual rollback by {actor}", **kw)
        if verb == "abort":
            return await rollout.abort(actor, reason, **kw)
        simple: dict[str, Callable[..., Awaitable[CommandResult]]] = {
            "proceed": rollout.proceed,
            "promote_early": rollout.promote_early,
            "resume": rollout.resume,
            "refresh": rollout.refresh_gates,
        }
        return await simple[verb](actor, **kw)


def _api_metrics(agent_metrics: Any) -> ApiMetrics | None:
    """The API's series in the agent's registry, registered once per registry (an API served
    again, after a restart of the listener, counts on)."""
    registry = getattr(agent_metrics, "registry", None)
    if registry is None:
        return None
    existing = getattr(agent_metrics, "_deploydeck_api", None)
    if existing is None:
        existing = ApiMetrics(registry)
        agent_metrics._deploydeck_api = existing
    return existing  # type: ignore[no-any-return]


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own answers (no such route, wrong method, body too large) as JSON, like the rest."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response(
            {"error": f"{request.method} {request.path}: HTTP {exc.status} {exc.reason}"},
            status=exc.status,
            headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
        )


async def serve_api(
    agent: AgentLike,
    host: str,
    port: int,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    *,
    tls: tuple[str | Path, str | Path] | None = None,
    ca: str | Path | None = None,
    keepalive_s: float = 15.0,
    shutdown_timeout: float = 5.0,
) -> tuple[web.AppRunner, int]:
    """Serve the API; returns the runner (``await runner.cleanup()`` stops it, ending open event
    streams) and the bound port. ApiConfigError (name the flag, exit 2) before anything binds.
    ``tls=(cert, key)`` is the same as ``tls_cert=cert, tls_key=key``."""
    if tls is not None:
        tls_cert, tls_key = tls
    check_bind(host, tls_cert, tls_key)
    context: ssl.SSLContext | None = None
    if tls_cert is not None and tls_key is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(str(tls_cert), str(tls_key))
        except (ssl.SSLError, OSError) as exc:
            raise ApiConfigError(
                f"--tls-cert {tls_cert} / --tls-key {tls_key}: cannot load them: {exc}"
            ) from None
    server = ApiServer(agent, keepalive_s=keepalive_s, forward_ssl=forward_context(tls_cert, ca))
    app = server.app()
    app[API_SERVER] = server  # for the agent and tests: the hub, the authorizer
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []  # port 0: the one the OS chose
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound


API_SERVER = web.AppKey("deploydeck.api", ApiServer)
