"""Who calls the agent's API, and what they may do: the cluster says so, never the caller.

Every request carries the caller's Kubernetes bearer token. A **TokenReview** turns it into a
username and groups; a **SubjectAccessReview** asks whether that user may act on a DeployRun:
``get``/``list``/``watch`` on ``deployruns`` to observe, ``create`` on a subresource
(``deployruns/signoff``, ``/proceed``, ``/pause``, ``/rollback``, ``/abort``) to act. The API
server's own RBAC (Roles, RoleBindings, aggregated ClusterRoles) decides, so one set of rules
governs kubectl and deploydeck alike.

Answers are cached briefly: a TokenReview for ``token_ttl_s`` keyed by the SHA-256 of the token
(the token itself is never kept as a key or logged), a SubjectAccessReview for ``access_ttl_s``.
A revoked binding therefore takes effect within seconds, while twenty dashboards attaching at once
cost one TokenReview, not twenty (concurrent reviews of one token share one call).

Each outside call has a total deadline: the API server is asked with the adapter's retries, but
a caller waits at most ``deadline_s`` before getting a 503 that names what could not be checked.
Nothing here fails open: no answer is "not allowed".
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from core.adapters.kubernetes.api import KubeApi, KubeApiError
from core.agent.crd import GROUP, PLURAL

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

#: the API's command verbs and the ``deployruns`` subresource a SubjectAccessReview asks about:
T = TypeVar("T")


class Identity(BaseModel):
    """An authenticated caller, as the TokenReview named them."""

    model_config = ConfigDict(frozen=True)

    username: str
    groups: list[str] = Field(default_factory=list)
    # passed on to every SubjectAccessReview as the TokenReview gave them: an authorizer (a webhook,
    # scoped tokens) may decide on them; never shown
    uid: str = Field(default="", exclude=True)
    extra: dict[str, list[str]] = Field(default_factory=dict, exclude=True)


class AuthProblem(Exception):
    """401 (who are you?), 403 (not allowed) or 503 (could not ask the cluster); ``str()`` is the
    message the caller reads."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # the authorizer's words when allowed; why not, readable, when denied


@dataclass
class _Cached:
    value: Any
    until: datetime


class Authorizer:
    """TokenReview and SubjectAccessReview through the agent's own KubeApi (its ServiceAccount
    needs ``create`` on tokenreviews and subjectaccessreviews: deploy/ grants it)."""

    def __init__(
        self,
        api: KubeApi,
        *,
        token_ttl_s: float = 5.0,
        access_ttl_s: float = 2.0,
        deadline_s: float = 3.0,
        max_entries: int = 4096,
        observe: Callable[[str, float, bool], None] | None = None,
    ) -> None:
        self.api = api
        self.clock = api.clock
        self.token_ttl = timedelta(seconds=token_ttl_s)
        self.access_ttl = timedelta(seconds=access_ttl_s)
        self.deadline_s = deadline_s
        self.max_entries = max_entries
        #: observe(kind, seconds, cached): kind "token" or "access", for the agent's metrics
        self.observe = observe or (lambda _kind, _s, _cached: None)
        self._cache: dict[Hashable, _Cached] = {}
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}

    # --- who -----------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Identity:
        """The caller of a request with this ``Authorization`` header; AuthProblem(401) otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthProblem(
                401,
                "no bearer token: send 'Authorization: Bearer <token>' with your kubeconfig's token "
                "(deploydeck attach --context NAME does)",
            )
        key = ("token", hashlib.sha256(token.encode()).hexdigest())
        identity = await self._cached(key, self.token_ttl, "token", lambda: self._token_review(token))
        if identity is None:
            raise AuthProblem(401, "the cluster did not accept this token (TokenReview: not authenticated)")
        assert isinstance(identity, Identity)
        return identity

    async def _token_review(self, token: str) -> Identity | None:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        answer = await self._ask("TokenReview", TOKEN_REVIEWS, body)
        status = answer.get("status") or {}
        user = status.get("user") or {}
        if not status.get("authenticated") or not user.get("username"):
            return None
        extra = user.get("extra") if isinstance(user.get("extra"), dict) else {}
        return Identity(
            username=str(user["username"]),
            groups=[str(g) for g in user.get("groups") or []],
            uid=str(user.get("uid") or ""),
            extra={str(k): [str(v) for v in (vs or [])] for k, vs in extra.items()},
        )

    # --- may they --------------------------------------------------------------------------

    async def check(
        self, who: Identity, verb: str, namespace: str, name: str = "", subresource: str = ""
    ) -> Decision:
        """Whether ``who`` may ``verb`` deployruns[/subresource] (named ``name``) in ``namespace``."""
        attrs = {
            "group": GROUP,
            "resource": PLURAL,
            "subresource": subresource,
            "verb": verb,
            "namespace": namespace,
            "name": name,
        }
        key = (
            "access",
            who.username,
            who.uid,
            tuple(who.groups),
            repr(sorted(who.extra.items())),
            *attrs.values(),
        )

        async def ask() -> Decision:
            body = {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": who.username,
                    "groups": who.groups,
                    **({"uid": who.uid} if who.uid else {}),
                    **({"extra": who.extra} if who.extra else {}),
                    "resourceAttributes": attrs,
                },
            }
            status = (await self._ask("SubjectAccessReview", ACCESS_REVIEWS, body)).get("status") or {}
            said = str(status.get("reason") or "")
            if status.get("allowed") and not status.get("denied"):
                return Decision(True, said)
            what = f"{PLURAL}/{subresource}" if subresource else PLURAL
            target = f'"{namespace}/{name}"' if name else f'in namespace "{namespace}"'
            why = f"{who.username} may not {verb} {what}.{GROUP} {target}"
            extra = "; ".join(s for s in (said, str(status.get("evaluationError") or "")) if s)
            return Decision(False, f"{why} ({extra})" if extra else f"{why} (no RBAC rule grants it)")

        decision = await self._cached(key, self.access_ttl, "access", ask)
        assert isinstance(decision, Decision)
        return decision

    async def require(
        self, who: Identity, verb: str, namespace: str, name: str = "", subresource: str = ""
    ) -> None:
        decision = await self.check(who, verb, namespace, name, subresource)
        if not decision.allowed:
            raise AuthProblem(403, decision.reason)

    # --- plumbing ----------------------------------------------------------------------------

    async def _ask(self, kind: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            # the total deadline is wall time on purpose: it bounds a real socket wait for a person
            # at a keyboard, and KubeApi's own retry deadline (30 s) is for the engine's writes
            async with asyncio.timeout(self.deadline_s):
                return await self.api.request("POST", path, body=body)
        except TimeoutError:
            raise AuthProblem(
                503,
                f"could not check with the cluster: {kind} on {self.api.host} took over {self.deadline_s:g}s",
            ) from None
        except KubeApiError as exc:
            raise AuthProblem(503, f"could not check with the cluster: {kind} failed: {exc}") from None

    async def _cached(self, key: Hashable, ttl: timedelta, kind: str, fetch: Callable[[], Awaitable[T]]) -> T:
        hit = self._cache.get(key)
        if hit is not None and hit.until > self.clock.now():
            self.observe(kind, 0.0, True)
            return hit.value  # type: ignore[no-any-return]
        task = self._inflight.get(key)
        if task is None:
            # a task of its own, shared by everyone asking the same question meanwhile: a caller
            # that hangs up does not cancel the answer the others wait for
            task = asyncio.ensure_future(self._fetch(key, ttl, kind, fetch))
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._settled(key, t))
        return await asyncio.shield(task)  # type: ignore[no-any-return]

    def _settled(self, key: Hashable, task: asyncio.Future[Any]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here: every caller may have hung up before it came

    async def _fetch(self, key: Hashable, ttl: timedelta, kind: str, fetch: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        started = loop.time()
        value = await fetch()
        self.observe(kind, loop.time() - started, False)
        now = self.clock.now()
        if len(self._cache) >= self.max_entries:
            self._cache = {k: v for k, v in self._cache.items() if v.until > now}
            if len(self._cache) >= self.max_entries:  # all fresh: a flood of distinct tokens
                self._cache.clear()
        self._cache[key] = _Cached(value, now + ttl)
        return value
