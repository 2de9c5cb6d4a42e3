"""One ApiClient per (kubeconfig, context) (issues 12 and 15).

Staging and production on one context, and an agent's concurrent runs, share one client: one
aiohttp session, one SSL context (the CA bundle loaded once), one credential loader. A different
context is another client; the last handle closed closes it; a kubeconfig rewritten since is read
again; a token renewed for one user of the client serves the others without running the exec
plugin again.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.adapters.kubernetes import KubeCluster
from core.adapters.kubernetes import credentials as creds_mod
from core.clock import SystemClock, VirtualClock
from core.ports import ClusterError
from tests.kube_helpers import Sim, sim, start_sim
from tests.test_kube_credentials import exec_kubeconfig, rotate

__all__ = ["sim"]


def _client(cluster: KubeCluster) -> object:
    """The ApiClient under the cluster's KubeApi (the pooled one, behind its handle)."""
    handle = cluster.api._client
    return getattr(handle, "_client", handle)


async def connect(sim: Sim, kubeconfig: Path | None = None, context: str | None = None) -> KubeCluster:
    return await KubeCluster.connect(
        sim.target(), kubeconfig=str(kubeconfig or sim.kubeconfig), clock=SystemClock(), context=context
    )


def two_contexts(sim: Sim, path: Path) -> Path:
    """The sim's kubeconfig with a second context: the same cluster as another user."""
    config = yaml.safe_load(sim.kubeconfig.read_text())
    config["users"].append({"name": "other", "user": {"token": "other-token"}})
    config["contexts"].append(
        {"name": "other", "context": {"cluster": config["clusters"][0]["name"], "user": "other"}}
    )
    path.write_text(yaml.safe_dump(config))
    return path


async def test_same_kubeconfig_and_context_share_one_client_and_its_session(sim: Sim) -> None:
    staging, production = await connect(sim), await connect(sim)
    try:
        assert _client(staging) is _client(production)
        assert staging.api.credentials is production.api.credentials
        await staging.describe()
        await production.describe()
        rest = _client(staging).rest_client  # type: ignore[attr-defined]
        assert rest.pool_manager is not None  # one aiohttp session served both
        assert _client(production).rest_client.pool_manager is rest.pool_manager  # type: ignore[attr-defined]
        # no cap of 100 connections shared by every run (each had its own before)
        assert rest.pool_manager.connector.limit == 0
    finally:
        await staging.close()
        await production.close()


async def test_concurrent_first_connects_load_the_kubeconfig_once(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str | None] = []
    real_load = creds_mod.load

    async def counted(kubeconfig: str | None, context: str | None, **kw: object) -> object:
        loads.append(context)
        await asyncio.sleep(0.01)  # a slow loader: the others must wait for it, not load again
        return await real_load(kubeconfig, context, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(creds_mod, "load", counted)
    clusters = await asyncio.gather(*(connect(sim) for _ in range(5)))
    try:
        assert len(loads) == 1
        assert len({id(_client(c)) for c in clusters}) == 1
    finally:
        for c in clusters:
            await c.close()


async def test_different_contexts_get_different_clients_with_their_own_credentials(
    sim: Sim, tmp_path: Path
) -> None:
    path = two_contexts(sim, tmp_path / "two")
    first = await connect(sim, path)  # the current context
    other = await connect(sim, path, context="other")
    try:
        assert _client(first) is not _client(other)
        assert "BearerToken" not in first.api._client.configuration.api_key  # the sim's user has none
        assert "other-token" in other.api._client.configuration.api_key["BearerToken"]
    finally:
        await first.close()
        await other.close()


async def test_the_last_close_closes_the_client_and_a_handle_closes_once(sim: Sim) -> None:
    a, b = await connect(sim), await connect(sim)
    client = _client(a)
    await a.describe()
    session = client.rest_client.pool_manager  # type: ignore[attr-defined]
    await a.close()
    await a.api.close()  # twice: must not take b's reference away
    assert not session.closed
    await b.describe()  # b still works on the shared client
    await b.close()
    assert session.closed  # the last handle closed the client's aiohttp session
    c = await connect(sim)
    try:
        assert _client(c) is not client  # a new one, not the closed one
        await c.describe()
    finally:
        await c.close()


async def test_a_rewritten_kubeconfig_is_read_again_never_served_stale(sim: Sim, tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(sim.kubeconfig.read_text())
    a = await connect(sim, path)
    try:
        config = yaml.safe_load(path.read_text())
        config["users"][0]["user"] = {"token": "rewritten"}
        path.write_text(yaml.safe_dump(config) + "\n# rewritten\n")
        b = await connect(sim, path)
        try:
            assert _client(b) is not _client(a)
            assert "rewritten" in b.api._client.configuration.api_key["BearerToken"]
        finally:
            await b.close()
    finally:
        await a.close()


async def test_a_failed_load_leaves_nothing_behind(tmp_path: Path, sim: Sim) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ClusterError, match="kubeconfig"):
        await connect(sim, missing)
    with pytest.raises(ClusterError, match="kubeconfig"):
        await connect(sim, missing)  # tried again, not a cached failure
    pool = creds_mod._POOLS.get(asyncio.get_running_loop(), {})
    assert not any(e.refs for e in pool.values())


async def test_a_token_renewed_for_one_user_of_the_client_serves_the_other(tmp_path: Path) -> None:
    clock = VirtualClock()
    s = await start_sim(tmp_path, tokens={"tok-1": None}, clock=clock)
    try:
        config, counter = exec_kubeconfig(s, tmp_path)
        staging = await KubeCluster.connect(s.target(), kubeconfig=str(config), clock=clock)
        production = await KubeCluster.connect(s.target(), kubeconfig=str(config), clock=clock)
        try:
            assert counter.read_text() == "1"  # one loader ran the plugin once for both
            rotate(s, "tok-2")  # both clients' token is rejected from now on
            await asyncio.gather(staging.describe(), production.describe())
            # both 401s renewed through the one loader: the plugin ran once more, not twice
            assert counter.read_text() == "2"
            assert staging.api.credentials.refreshes == 1
            await staging.describe()
        finally:
            await staging.close()
            await production.close()
    finally:
        await s.server.stop()


def test_kubernetes_aio_loads_without_the_sync_client_package_and_the_package_still_works() -> None:
    code = (
        "import sys\n"
        "from core.adapters.kubernetes.credentials import _light_kubernetes\n"
        "_light_kubernetes()\n"
        "from kubernetes.aio import client, config\n"
        "print('sync-init', 'kubernetes.config' in sys.modules, 'requests' in sys.modules)\n"
        "import kubernetes\n"
        "print('version', kubernetes.__version__)\n"
        "from kubernetes import client as sync_client\n"
        "print('sync', sync_client.CoreV1Api.__name__, callable(kubernetes.config.load_kube_config))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split("\n")
    assert out[0] == "sync-init False False"
    assert out[1].startswith("version ") and out[1] != "version "
    assert out[2] == "sync CoreV1Api True"


def _open_handles() -> int:
    pool = creds_mod._POOLS.get(asyncio.get_running_loop(), {})
    return sum(e.refs for e in pool.values())


@pytest.mark.parametrize("why", ["missing deployment", "bad production context"])
async def test_a_session_that_fails_to_open_gives_its_clients_back(
    sim: Sim, tmp_path: Path, why: str
) -> None:
    from core.plan import parse_plan
    from core.ports import PortError
    from core.session import open_session
    from tests.test_session import kube_plan

    text = kube_plan(sim.kubeconfig)
    if why == "missing deployment":  # the preflight's read fails (404): open_session raises
        text = text.replace(
            "production: {namespace: prod, deployment: web,",
            "production: {namespace: prod, deployment: gone,",
        )
    if why == "bad production context":  # staging connects, production's context does not exist
        text = text.replace(
            "production: {namespace: prod,", "production: {context: nowhere, namespace: prod,"
        )
    plan = parse_plan(text, "plan.yaml", env={})
    with pytest.raises(PortError):
        await open_session(plan, actor="bob", clock=SystemClock(), journal_path=tmp_path / "j")
    assert _open_handles() == 0
