"""The simulated Kubernetes API server: aiohttp on loopback, kubectl-compatible enough for a rollout."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from core.clock import Clock, SystemClock
from core.sim.kube import crds, events, openapi, protobuf, rbac, reads, resources, seed, tables
from core.sim.kube import patch as patches
from core.sim.kube.controller import DeploymentController
from core.sim.kube.errors import ApiError, bad_request, forbidden, invalid_all
from core.sim.kube.errors import conflict as conflict_error
from core.sim.kube.faults import FaultConfig
from core.sim.kube.resources import Resource
from core.sim.kube.selectors import scale_of
from core.sim.kube.store import Obj, Store, rfc3339
from core.sim.kube.tls import ServingCert, make_serving_cert

_VERB_BY_METHOD = {"POST": "create", "PUT": "update", "PATCH": "patch"}
#: groups served natively; anything else (gateway.networking.k8s.io) is a custom resource
_BUILTIN_GROUPS = {
    "",
    "apps",
    "networking.k8s.io",
    "coordination.k8s.io",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "autoscaling",
}


#: who a request is when the server asks for no credentials (a kubeadm admin.conf is in system:masters)
ADMIN = "system:admin"


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


class SimKubeServer:
    """In-process Kubernetes API server subset with a deployment controller and fault injection.

    ``tokens`` maps a bearer token to the verbs it may use on every resource (None: the admin, never
    checked); its user is sim-user-<index>, authorized by RBAC over the stored Roles and bindings, the
    verb set being a seeded ClusterRole. When it is empty, requests need no credentials at all. ``pod_ready_delay_s`` is how long (on ``clock``)
    a new pod takes to become Ready; ``pod_shutdown_s`` how long a deleted pod stays Terminating
    (None: as long as it took to start; never past its terminationGracePeriodSeconds).
    """

    def __init__(
        self,
        *,
        pod_ready_delay_s: float = 3.0,
        pod_shutdown_s: float | None = None,
        faults: FaultConfig | None = None,
        clock: Clock | None = None,
        tokens: dict[str, set[str] | None] | None = None,
        tls: bool = False,
        usernames: dict[str, str] | None = None,
        groups: dict[str, list[str]] | None = None,
    ) -> None:
        self.faults = faults or FaultConfig()
        #: token -> user name (kubeconfig users such as alice); tokens not named are sim-user-<index>
        self.usernames = dict(usernames or {})
        #: user name -> the groups a TokenReview (and RBAC) says it is in, besides system:authenticated
        self.user_groups = {user: list(g) for user, g in (groups or {}).items()}
        self.clock: Clock = clock or SystemClock()
        self.tokens = dict(tokens or {})
        self.store = Store()
        # a real cluster always has these: kubectl's default context namespace must exist
        for namespace in ("default", "kube-system"):
            self.store.create(
                resources.BY_PATH[("", "v1", "namespaces")], None, {"metadata": {"name": namespace}}
            )
        self.controller = DeploymentController(self.store, self.clock, pod_ready_delay_s, pod_shutdown_s)
        self.requests: list[tuple[str, str]] = []  # (method, path) of every answered resource request
        self._rng = random.Random(self.faults.seed)
        #: the serving certificate when started with tls=True (its PEM is the CA a client trusts)
        self.cert: ServingCert | None = make_serving_cert() if tls else None
        self._runner: web.AppRunner | None = None
        self._url = ""
        self._controller_task: asyncio.Task[None] | None = None
        self._watch_timers: set[asyncio.Future[None]] = set()
        #: the resources the stored CustomResourceDefinitions serve, by (group, version, plural)
        self.custom: dict[tuple[str, str, str], Resource] = {}
        self.store.listeners.append(self._on_change)
        for token, verbs in self.tokens.items():
            if verbs is not None:
                rbac.seed_token_role(self.store, self._username(token), verbs)

    # --- lifecycle -------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise ValueError("the simulated API server binds to loopback only")
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._entry)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, host, port, ssl_context=self.cert.server_context() if self.cert else None
        )
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        bound = sockets[0].getsockname()[1]
        self._url = f"{'https' if self.cert else 'http'}://{host}:{bound}"
        self._controller_task = asyncio.get_running_loop().create_task(self.controller.run())
        self.controller.kick()
        return self._url

    async def stop(self) -> None:
        for timer in list(self._watch_timers):
            timer.cancel()  # open watches end now instead of holding shutdown
        self.controller.stop()
        if self._controller_task:
            self._controller_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._controller_task
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
        if self.cert is not None:
            self.cert.remove()

    @property
    def url(self) -> str:
        return self._url

    def write_kubeconfig(
        self, path: str | Path, context: str = "deploydeck-sim", token: str | None = None
    ) -> Path:
        if not self._url:
            raise RuntimeError("start the server before writing its kubeconfig")
        if token is None and self.cert is not None and not self.tokens:
            # over TLS, a user entry without credentials makes kubectl prompt for a password; this
            # server asks for none, so any token does
            token = "deploydeck-sim"
        user: dict[str, Any] = {"token": token} if token else {}
        cluster: dict[str, Any] = {"server": self._url}
        if self.cert is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.cert.ca_pem).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": user}],
            "contexts": [
                {"name": context, "context": {"cluster": context, "user": context, "namespace": "default"}}
            ],
            "current-context": context,
            "preferences": {},
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        target.chmod(0o600)
        return target

    # --- conveniences for the demo and tests -------------------------------------

    def seed_service(self, **kwargs: Any) -> None:
        seed.seed_service(self.store, self.controller, **kwargs)

    def canary_weight(
        self,
        namespace: str,
        deployment: str,
        canary_deployment: str,
        strategy: str,
        ingress: str | None = None,
        httproute: str | None = None,
    ) -> int:
        return seed.canary_weight(
            self.store, namespace, deployment, canary_deployment, strategy, ingress, httproute
        )

    def deployment_image(self, namespace: str, name: str) -> str | None:
        return seed.deployment_image(self.store, namespace, name)

    # --- HTTP --------------------------------------------------------------------

    async def _entry(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except ApiError as exc:
            response = _json(exc.body, exc.code)
            if exc.code == 429:
                response.headers["Retry-After"] = str(self.faults.retry_after_s)
            return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        user = self._authenticate(request)
        if path == "/version":
            return _json(resources.version_doc())
        if path in {"/healthz", "/readyz", "/livez"}:
            return web.Response(text="ok")
        if path == "/api":
            return _json(resources.api_versions_doc())
        if path == "/openapi/v3":
            return _json(openapi.index_doc(self._extra()))
        if path.startswith("/openapi/v3/"):
            tail = path[len("/openapi/v3/") :].split("/")
            doc = None
            if tail[0] == "api" and len(tail) == 2:
                doc = openapi.gv_doc("", tail[1], self._extra())
            elif tail[0] == "apis" and len(tail) == 3:
                doc = openapi.gv_doc(tail[1], tail[2], self._extra())
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(doc)
        if path == "/apis":
            return _json(resources.api_group_list_doc(self._extra()))
        parts = [p for p in path.split("/") if p]
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 2:
            if len(parts) == 2:
                doc = resources.api_group_doc(parts[1], self._extra())
                if doc is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return _json(doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            doc = resources.resource_list_doc(group, version, self._extra())
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(doc)
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        res = resources.BY_PATH.get((group, version, rest[0])) or self.custom.get((group, version, rest[0]))
        if res is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) >= 2 else ""
        sub = rest[2] if len(rest) == 3 else None
        if sub is not None and sub not in res.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        verb = self._verb(request, name)
        if res.kind == "SelfSubjectReview":
            # every authenticated user may ask who they are (the system:basic-user ClusterRole)
            return await self._self_subject_review(request, user, verb)
        if res.kind == "SelfSubjectAccessReview":
            # as SelfSubjectReview: every authenticated user may ask what they may do
            return await self._review(request, res, verb, user)
        self._authorize(user, verb, res, name, namespace, sub)
        await self._inject_faults(request, verb, res, name)
        self.requests.append((request.method, request.path))
        if res.kind in {"TokenReview", "SubjectAccessReview"}:
            return await self._review(request, res, verb, user)
        return await self._serve(request, res, namespace if res.namespaced else None, name, sub, verb)

    async def _self_subject_review(self, request: web.Request, user: str, verb: str) -> web.Response:
        if verb != "create":
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        await request.read()  # kubectl sends an empty review (as protobuf); the answer comes from the token
        groups = self._groups(user)
        review = {
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": rfc3339(self.clock.now())},
            "status": {"userInfo": {"username": user, "groups": groups}},
        }
        return _json(review, 201)

    async def _review(self, request: web.Request, res: Resource, verb: str, user: str) -> web.Response:
        if verb != "create":
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        body = await self._body(request)
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        groups = self._groups(user)
        return _json(rbac.review(self.store, res.kind, body, user, groups, self._user_of_token), 201)

    def _user_of_token(self, token: str) -> tuple[str, list[str]] | None:
        """The user a bearer token authenticates as, or None (the token table, as _authenticate reads it)."""
        if token not in self.tokens:
            return None
        user = self._username(token)
        return user, self._groups(user)

    def _username(self, token: str) -> str:
        return self.usernames.get(token) or f"sim-user-{list(self.tokens).index(token)}"

    def _groups(self, user: str) -> list[str]:
        if user == ADMIN:
            return ["system:masters", "system:authenticated"]
        return [*self.user_groups.get(user, []), "system:authenticated"]

    def _extra(self) -> tuple[Resource, ...]:
        return tuple(self.custom.values())

    def _on_change(self, change: Any) -> None:
        """A CRD written or deleted: serve what the stored CRDs say (and drop a deleted CRD's objects)."""
        if change.res != (crds.CRDS.group, crds.CRDS.plural):
            return
        self.custom = crds.on_change(self.store, change)

    def _authenticate(self, request: web.Request) -> str:
        if not self.tokens:
            return ADMIN
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if token not in self.tokens:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return self._username(token)

    def _authorize(
        self, user: str, verb: str, res: Resource, name: str, namespace: str | None, sub: str | None
    ) -> None:
        """The RBAC authorizer over the stored Roles and bindings; the seeded admin (a token with no verb
        set, or no tokens at all) is not checked, like system:masters."""
        if not self.tokens or self._verbs_of(user) is None:
            return
        attrs = {"verb": verb, "group": res.group, "resource": res.plural, "subresource": sub or ""}
        attrs |= {"name": name, "namespace": namespace or ""}
        if not rbac.decide(self.store, user, self._groups(user), {"resourceAttributes": attrs})["allowed"]:
            raise forbidden(user, verb, res.plural, res.group, name, namespace, sub)

    def _verbs_of(self, user: str) -> set[str] | None:
        return next((v for t, v in self.tokens.items() if self._username(t) == user), None)

    @staticmethod
    def _verb(request: web.Request, name: str) -> str:
        if request.method == "GET":
            if name:
                return "get"
            return "watch" if request.query.get("watch") in {"true", "1"} else "list"
        if request.method == "DELETE":
            return "delete" if name else "deletecollection"
        return _VERB_BY_METHOD.get(request.method, request.method.lower())

    async def _inject_faults(self, request: web.Request, verb: str, res: Resource, name: str) -> None:
        f = self.faults
        if f.latency_s:
            await self.clock.sleep(f.latency_s)
        if f.drop_rate and self._rng.random() < f.drop_rate:
            if request.transport is not None:
                request.transport.close()
            raise ApiError(500, "InternalError", "connection dropped by fault injection")
        if f.error_rate_429 and self._rng.random() < f.error_rate_429:
            raise _TooMany()
        if f.error_rate_500 and self._rng.random() < f.error_rate_500:
            raise ApiError(500, "InternalError", "Internal error occurred: injected fault")
        conflict = f.conflict_rate and verb in {"update", "patch"} and self._rng.random() < f.conflict_rate
        if (f.force_conflicts or conflict) and verb in {"update", "patch"}:
            if not conflict:
                f.force_conflicts -= 1
            raise conflict_error(res.plural, res.group, name)

    def _log(self, request: web.Request, res: Resource, ns: str | None, name: str, verb: str) -> web.Response:
        """GET pods/NAME/log: the container's output as text/plain (?container=, ?tailLines=)."""
        if verb != "get":
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        pod = self.store.get(res, ns, name)
        text = self.controller.pods.log(
            pod,
            request.query.get("container"),
            request.query.get("tailLines"),
            timestamps=request.query.get("timestamps") in {"true", "1"},
        )
        return web.Response(body=text.encode(), status=200, content_type="text/plain")

    async def _serve(
        self, request: web.Request, res: Resource, ns: str | None, name: str, sub: str | None, verb: str
    ) -> web.StreamResponse:
        dry_run = request.query.get("dryRun") == "All"
        if dry_run and verb not in {"create", "update", "patch", "delete"}:
            raise bad_request("dryRun is only valid on writes")
        if request.query.get("dryRun") not in (None, "All"):
            raise bad_request(f'unsupported dry run option "{request.query.get("dryRun")}"')
        # events.k8s.io/v1 Events are the core/v1 ones seen through a conversion (events.View)
        view = events.view_for(res)
        if view is not None:
            res = view.storage
        out = view.out if view is not None else _same
        into = view.into if view is not None else _same
        if sub == "log":
            return self._log(request, res, ns, name, verb)
        if verb == "watch":
            return await reads.watch(self.store, self.clock, self._watch_timers, request, res, ns, name, out)
        if verb == "list":
            items, list_meta = reads.list_page(self.store, request, res, ns)
            if tables.wants_table(request.headers.get("Accept", "")):
                table = tables.table(res, items, list_meta["resourceVersion"])
                table["metadata"] = list_meta
                return _json(table)
            kind, api_version = (view.kind, view.api_version) if view else (res.kind, res.api_version)
            return _json(
                {
                    "kind": f"{kind}List",
                    "apiVersion": api_version,
                    "metadata": list_meta,
                    "items": [out(i) for i in items],
                }
            )
        if verb == "get":
            obj = self.store.get(res, ns, name)
            if sub == "scale":
                return _json(scale_of(obj))
            if tables.wants_table(request.headers.get("Accept", "")):
                return _json(tables.table(res, [obj], obj["metadata"]["resourceVersion"]))
            return _json(out(obj))
        strict = request.query.get("fieldValidation") == "Strict"
        if verb == "create":
            body = into(await self._body(request))
            if res is crds.CRDS and isinstance(body, dict) and not crds.crd_problems(body):
                body = crds.established(body, rfc3339(self.clock.now()))  # (an invalid one: 422 below)
            return _json(out(self.store.create(res, ns, body, dry_run=dry_run, strict=strict)), 201)
        if verb == "delete":
            if res.plural == "pods" and not dry_run:
                return _json(await self._delete_pod(request, ns, name))
            return _json(out(self.store.delete(res, ns, name, dry_run=dry_run)))
        if verb in {"update", "patch"}:
            body = await self._body(request)
            return _json(
                out(await self._write(request, res, ns, name, sub, verb, body, dry_run, strict, out, into))
            )
        raise ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    async def _write(
        self,
        request: web.Request,
        res: Resource,
        ns: str | None,
        name: str,
        sub: str | None,
        verb: str,
        body: Any,
        dry_run: bool,
        strict: bool = False,
        out: Callable[[Obj], Obj] = lambda o: o,
        into: Callable[[Obj], Obj] = lambda o: o,
    ) -> Obj:
        current = out(self.store.get(res, ns, name))
        base = scale_of(current) if sub == "scale" else current
        if verb == "patch":
            ctype = request.content_type
            if ctype == patches.STRATEGIC_PATCH and res.group not in _BUILTIN_GROUPS:
                # custom resources have no patch strategy metadata: Kubernetes answers 415
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"{patches.JSON_PATCH}, {patches.MERGE_PATCH}, {patches.APPLY_PATCH}",
                )
            new = patches.apply_patch(base, body, ctype)
        else:
            if not isinstance(body, dict):
                raise bad_request("the body must be a JSON object")
            new = body
        if sub == "scale":
            replicas = (new.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid_all(
                    "Scale",
                    "autoscaling",
                    name,
                    [("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")],
                )
            current["spec"]["replicas"] = replicas
            current["metadata"]["resourceVersion"] = (new.get("metadata") or {}).get("resourceVersion")
            return scale_of(self.store.update(res, ns, name, current, dry_run=dry_run))
        return self.store.update(res, ns, name, into(new), subresource=sub, dry_run=dry_run, strict=strict)

    async def _delete_pod(self, request: web.Request, ns: str | None, name: str) -> Obj:
        """A graceful delete, as the pod strategy does it: deletionTimestamp now, gone after the grace period."""
        pod = self.store.get(resources.BY_PATH[("", "v1", "pods")], ns, name)
        grace: Any = request.query.get("gracePeriodSeconds")
        if grace is None and request.can_read_body:
            options = await self._body(request)
            grace = options.get("gracePeriodSeconds") if isinstance(options, dict) else None
        try:
            seconds = None if grace is None else float(grace)
        except ValueError:
            raise bad_request(f"invalid gracePeriodSeconds: {grace!r}") from None
        marked = self.controller.pods.terminate(pod, seconds)
        return marked if marked is not None else pod

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()
        if request.content_type == protobuf.MEDIA_TYPE:
            return protobuf.decode(raw)  # kubectl create's typed clients send protobuf
        if request.content_type == patches.APPLY_PATCH:
            raise ApiError(415, "UnsupportedMediaType", "server-side apply is not supported by the simulator")
        try:
            return json.loads(raw or b"null")
        except json.JSONDecodeError as exc:
            raise bad_request(f"invalid JSON in request body: {exc}") from None


class _TooMany(ApiError):
    def __init__(self) -> None:
        super().__init__(
            429, "TooManyRequests", "Too many requests, please try again later.", {"retryAfterSeconds": 1}
        )


def _same(obj: Obj) -> Obj:
    return obj


__all__ = ["FaultConfig", "SimKubeServer"]
