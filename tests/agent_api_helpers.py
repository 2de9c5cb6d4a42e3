"""The agent's API on loopback against the simulated API server, for tests and benchmarks.

The cluster is a real SimKubeServer with one token per person: alice and bob (release managers,
through their group), carol (viewer), dave (a release manager who wrote the change), and the
agent's own ServiceAccount; the people's permissions are deploy/rbac-users.yaml's ClusterRoles
bound in the run's namespace, so every TokenReview and SubjectAccessReview is the simulated API
server's answer. The rollout is a real engine (core.rollout.Rollout) wrapped in a RunView.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import yaml

from core.agent.api import API_SERVER, ApiServer, serve_api
from core.agent.http import AgentMetrics
from core.agent.runs import FleetRow
from core.rollout import Rollout
from core.sim.kube import SimKubeServer
from core.sim.kube.rbac import CLUSTER_ROLES, ROLE_BINDINGS
from core.sim.kube.resources import BY_PATH

ROOT = Path(__file__).resolve().parent.parent
NS = "shop"
RUN = "checkout-1-5-0"
NAMESPACES = BY_PATH[("", "v1", "namespaces")]
AGENT_USER = "system:serviceaccount:deploydeck:deploydeck-agent"
TOKENS = {
    "alice": "tok-alice-0001",
    "bob": "tok-bob-0002",
    "carol": "tok-carol-0003",
    "dave": "tok-dave-0004",
    "alice\u200b": "tok-alice-zwsp-0005",  # a second account whose name looks like alice's
    AGENT_USER: "tok-agent-0006",
}
GROUPS = {
    "alice": ["deploydeck:release-managers"],
    "bob": ["deploydeck:release-managers"],
    "alice\u200b": ["deploydeck:release-managers"],
    "carol": ["deploydeck:viewers"],
    "dave": ["shop:developers"],
}


async def start_cluster(namespaces: tuple[str, ...] = (NS,)) -> SimKubeServer:
    """The simulated API server with the people, their groups and deploy/'s Roles bound."""
    verbs: dict[str, set[str] | None] = {t: None for t in TOKENS.values()}
    verbs[TOKENS["carol"]] = {"get", "list", "watch"}
    server = SimKubeServer(
        tokens=verbs, usernames={t: u for u, t in TOKENS.items()}, groups=GROUPS, pod_ready_delay_s=0.01
    )
    await server.start()
    for doc in yaml.safe_load_all((ROOT / "deploy" / "rbac-users.yaml").read_text(encoding="utf-8")):
        if doc and doc.get("kind") == "ClusterRole":
            server.store.create(CLUSTER_ROLES, None, doc)
    for ns in namespaces:
        if server.store.peek(NAMESPACES, None, ns) is None:
            server.store.create(NAMESPACES, None, {"metadata": {"name": ns}})
        bind(
            server,
            ns,
            "release-managers",
            "deploydeck-release-manager",
            "Group",
            "deploydeck:release-managers",
        )
        bind(server, ns, "dave", "deploydeck-release-manager", "User", "dave")
        bind(server, ns, "viewers", "deploydeck-viewer", "Group", "deploydeck:viewers")
    return server


def bind(server: SimKubeServer, ns: str, name: str, role: str, kind: str, subject: str) -> None:
    g = "rbac.authorization.k8s.io"
    server.store.create(
        ROLE_BINDINGS,
        ns,
        {
            "metadata": {"name": name, "namespace": ns},
            "subjects": [{"kind": kind, "apiGroup": g, "name": subject}],
            "roleRef": {"apiGroup": g, "kind": "ClusterRole", "name": role},
        },
    )


def agent_kube_api(url: str) -> Any:
    """The agent's own client (its ServiceAccount token), as `deploydeck agent` builds it."""
    from kubernetes.aio import client

    from core.adapters.kubernetes.api import KubeApi
    from core.clock import SystemClock

    cfg = client.Configuration(host=url)
    cfg.api_key = {"BearerToken": TOKENS[AGENT_USER]}
    cfg.api_key_prefix = {"BearerToken": "Bearer"}
    return KubeApi(client.ApiClient(configuration=cfg), SystemClock(), deadline_s=5.0)


@dataclass
class View:
    """A RunView over a rollout this process drives (rollout set) or another replica does."""

    key: tuple[str, str]
    engine: Rollout | None
    url: str | None = None

    def row(self) -> dict[str, Any]:
        r = self.engine
        return FleetRow(
            namespace=self.key[0],
            name=self.key[1],
            service=r.plan.service if r else "",
            version_from=r.plan.version.from_ if r else "",
            version_to=r.plan.version.to if r else "",
            phase=r.phase.value if r else "pending",
            weight=r.weight if r else 0,
            lease_holder="replica-a" if r else None,
            deploy_id=r.deploy_id if r else None,
        ).model_dump(mode="json")

    @property
    def rollout(self) -> Rollout | None:
        return self.engine

    @property
    def driver_url(self) -> str | None:
        return self.url


@dataclass
class Registry:
    views: dict[tuple[str, str], View] = field(default_factory=dict)

    def runs(self) -> dict[tuple[str, str], View]:
        return dict(self.views)

    def get(self, namespace: str, name: str) -> View | None:
        return self.views.get((namespace, name))


@dataclass
class Replica:
    """One agent's API: its registry, its URL, its server object."""

    registry: Registry
    url: str
    runner: Any
    agent: Any

    @property
    def server(self) -> ApiServer:
        return self.runner.app[API_SERVER]  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.agent.api.close()


async def start_replica(
    kube_url: str, views: list[View], *, keepalive_s: float = 15.0, tls: tuple[Path, Path] | None = None
) -> Replica:
    registry = Registry({v.key: v for v in views})
    agent = SimpleNamespace(
        registry=registry, api=agent_kube_api(kube_url), api_url="", metrics=AgentMetrics()
    )
    runner, port = await serve_api(
        agent, "127.0.0.1", 0, tls=tls, keepalive_s=keepalive_s, shutdown_timeout=0.5
    )
    agent.api_url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    return Replica(registry, agent.api_url, runner, agent)


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[user]}"}


async def command(
    http: aiohttp.ClientSession, url: str, user: str, verb: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        f"{url}/api/v1/namespaces/{NS}/runs/{RUN}/commands/{verb}", json=body or {}, headers=auth(user)
    ) as response:
        return response.status, await response.json()


async def sse(
    http: aiohttp.ClientSession,
    url: str,
    user: str,
    last_event_id: int | None = None,
    *,
    path: str | None = None,
) -> AsyncIterator[tuple[str, str | None, Any]]:
    """(event, id, data) per Server-Sent Event; comments (keepalives) come as ("comment", None, text).
    ``path``: the whole events URL (default: RUN's on ``url``)."""
    headers = auth(user)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    async with http.get(
        path or f"{url}/api/v1/namespaces/{NS}/runs/{RUN}/events", headers=headers
    ) as response:
        if response.status != 200:
            raise AssertionError(f"events: HTTP {response.status}: {await response.text()}")
        kind, ident, data = "message", None, []
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                yield "comment", None, line[1:].strip()
            elif line.startswith("id: "):
                ident = line[4:]
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and data:
                yield kind, ident, json.loads("\n".join(data))
                kind, ident, data = "message", None, []


async def collect_until_finished(
    http: aiohttp.ClientSession, url: str, user: str, ready: asyncio.Event | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """Every (seq, event) one client receives until the run's `finished` event."""
    seen: list[tuple[int, dict[str, Any]]] = []
    async for kind, ident, data in sse(http, url, user):
        if kind == "state" and ready is not None:
            ready.set()  # the history and first state arrived: this client is attached
        if kind == "event":
            assert ident is not None
            seen.append((int(ident), data))
            if data["type"] == "finished":
                return seen
    return seen
