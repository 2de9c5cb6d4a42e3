"""The agent's API (core.agent.api) on loopback, against the simulated API server's TokenReview and
SubjectAccessReview, over a real engine (the in-memory world) wrapped in a RunView.

Who is who comes from tests/agent_api_helpers.py: alice and bob release managers (through a group),
carol a viewer, dave a release manager who wrote the change, "alice\u200b" a second account whose
name only looks like alice's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.agent.api import ApiConfigError, check_bind, serve_api
from core.events import CommandRefused, GateSignedOff, parse_event
from core.session import Session, demo_plan
from core.sim.kube import SimKubeServer
from tests.agent_api_helpers import (
    NS,
    RUN,
    Replica,
    View,
    agent_kube_api,
    auth,
    collect_until_finished,
    command,
    sse,
    start_cluster,
    start_replica,
)
from tests.engine_helpers import sim_session, until

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(90)


def the_plan() -> dict[str, Any]:
    """The demo with dave as the change's author, and a rollback-plan sign-off that needs two people
    other than him."""
    plan = demo_plan("healthy")
    two = {"signers": 2, "author_may_sign": False}
    manual = [m.model_copy(update=two) if m.id == "rollback-plan" else m for m in plan.gates.manual]
    return {
        "change": plan.change.model_copy(update={"author": "dave"}),
        "gates": plan.gates.model_copy(update={"manual": manual}),
    }


class Env:
    def __init__(self, kube: SimKubeServer, session: Session, replica: Replica, http: aiohttp.ClientSession):
        self.kube, self.session, self.replica, self.http = kube, session, replica, http
        self.run_task: asyncio.Task[Any] | None = None

    @property
    def url(self) -> str:
        return self.replica.url

    @property
    def rollout(self) -> Any:
        return self.session.rollout

    async def start_run(self) -> None:
        """Run the rollout until it waits at the pre-deploy sign-offs."""
        self.run_task = asyncio.create_task(self.rollout.run())
        await until(lambda: self.rollout.phase.value == "preflight" and self.rollout.allowed("sign_off").ok)
        await until(lambda: "rollback-plan" in self.rollout.gates)

    def journal(self) -> list[Any]:
        lines = self.session.journal_path.read_text(encoding="utf-8").splitlines()
        return [parse_event(json.loads(line)) for line in lines if '"type"' in line]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    kube = await start_cluster()
    session = await sim_session(tmp_path, "healthy", interactive=True, approve=False, **the_plan())
    replica = await start_replica(kube.url, [View((NS, RUN), session.rollout)])
    http = aiohttp.ClientSession()
    e = Env(kube, session, replica, http)
    try:
        yield e
    finally:
        if e.run_task is not None:
            e.run_task.cancel()
            await asyncio.wait({e.run_task})
        await http.close()
        await replica.close()
        await session.close()
        await kube.stop()


async def test_three_clients_see_the_same_events_in_the_same_order(env: Env) -> None:
    await env.start_run()
    ready = [asyncio.Event() for _ in range(3)]
    users = ["alice", "bob", "carol"]
    clients = [
        asyncio.create_task(collect_until_finished(env.http, env.url, u, ready[i]))
        for i, u in enumerate(users)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 10)
    assert (await command(env.http, env.url, "alice", "signoff", {"gate": "rollback-plan"}))[0] == 200
    assert (await command(env.http, env.url, "bob", "signoff", {"gate": "rollback-plan"}))[0] == 200
    assert (await command(env.http, env.url, "bob", "signoff", {"gate": "dashboards-reviewed"}))[0] == 200
    await until(lambda: env.rollout.allowed("proceed").ok)
    assert await command(env.http, env.url, "alice", "proceed") == (200, {"ok": True, "reason": ""})
    seen = await asyncio.wait_for(asyncio.gather(*clients), 60)
    engine = [(i, e.model_dump(mode="json")) for i, e in enumerate(env.rollout.events, start=1)]
    assert seen[0] == seen[1] == seen[2] == engine  # history + live: every event, once, in order
    assert [s for s, _ in seen[0]] == list(range(1, len(engine) + 1))
    assert engine[-1][1]["type"] == "finished" and env.rollout.outcome.value == "completed"
    # the data is the journal line: it parses back into the engine's own event
    assert parse_event(seen[2][-1][1]) == env.rollout.events[-1]
    # a client that saw up to event 5 resumes from 6 (Last-Event-ID), then gets the state
    resumed = []
    async for kind, ident, data in sse(env.http, env.url, "carol", last_event_id=5):
        if kind == "state":
            assert data["outcome"] == "completed" and data["allowed"]["rollback"]["ok"] is False
            break
        resumed.append((int(ident or 0), data))
    assert resumed == engine[5:]


async def test_a_state_follows_each_live_event(env: Env) -> None:
    await env.start_run()
    frames: list[tuple[str, Any]] = []

    async def read() -> None:
        async for kind, _, data in sse(env.http, env.url, "carol"):
            frames.append((kind, data))
            if kind == "event" and data["type"] == "gate_signed_off":
                return

    reader = asyncio.create_task(read())
    await until(lambda: any(k == "state" for k, _ in frames), turns=10**7)
    await command(env.http, env.url, "alice", "signoff", {"gate": "dashboards-reviewed", "note": "looked"})
    await asyncio.wait_for(reader, 10)
    following = await anext(aiter(sse(env.http, env.url, "carol", last_event_id=len(env.rollout.events))))
    assert following[0] == "state"
    state = following[2]
    assert state["phase"] == "preflight" and state["allowed"]["sign_off"] == {"ok": True, "reason": ""}
    assert "rollback-plan: needs sign off" in "; ".join(state["pending_reasons"])


async def test_carols_rollback_is_forbidden_and_journaled_with_her_name(env: Env) -> None:
    await env.start_run()
    status, body = await command(env.http, env.url, "carol", "rollback", {"reason": "looks bad"})
    assert status == 403
    assert "carol may not create deployruns/rollback" in body["error"] and f"{NS}/{RUN}" in body["error"]
    assert env.rollout.outcome is None and env.rollout.phase.value == "preflight"  # nothing happened
    refused = [e for e in env.journal() if isinstance(e, CommandRefused)]
    assert len(refused) == 1
    assert refused[0].command == "rollback" and refused[0].actor == "carol"
    assert refused[0].identity == "authenticated" and refused[0].groups == [
        "deploydeck:viewers",
        "system:authenticated",
    ]
    # carol may still watch: observing is get/list/watch
    async with env.http.get(f"{env.url}/api/v1/namespaces/{NS}/runs/{RUN}", headers=auth("carol")) as r:
        detail = await r.json()
    assert r.status == 200
    assert detail["you"]["may"] == {k: False for k in ("signoff", "proceed", "rollback", "abort", "pause")}
    assert detail["state"]["allowed"]["rollback"]["ok"] is True  # the engine would; RBAC does not


async def test_alices_sign_off_is_recorded_as_alice_authenticated_with_her_groups(env: Env) -> None:
    await env.start_run()
    status, body = await command(
        env.http, env.url, "alice", "signoff", {"gate": "rollback-plan", "note": "ok"}
    )
    assert (status, body) == (200, {"ok": True, "reason": "recorded; another person must sign too"})
    signed = [e for e in env.journal() if isinstance(e, GateSignedOff)]
    assert [(e.actor, e.identity, e.groups) for e in signed] == [
        ("alice", "authenticated", ["deploydeck:release-managers", "system:authenticated"])
    ]
    record = env.rollout.ledger.records_for("rollback-plan", "sign")[0]
    assert (record.actor, record.identity, record.groups) == (
        "alice",
        "authenticated",
        ("deploydeck:release-managers", "system:authenticated"),
    )
    async with env.http.get(f"{env.url}/api/v1/namespaces/{NS}/runs/{RUN}", headers=auth("alice")) as r:
        detail = await r.json()
    assert detail["you"] == {
        "username": "alice",
        "groups": ["deploydeck:release-managers", "system:authenticated"],
        "may": {k: True for k in ("signoff", "proceed", "rollback", "abort", "pause")},
    }
    assert detail["row"]["service"] == "checkout" and detail["plan"]["change"]["author"] == "dave"


async def test_the_author_cannot_sign_off_his_own_change(env: Env) -> None:
    await env.start_run()
    status, body = await command(env.http, env.url, "dave", "signoff", {"gate": "rollback-plan"})
    assert status == 409 and body["ok"] is False
    assert "dave is the change author and cannot sign off rollback-plan" in body["reason"]
    refused = [e for e in env.journal() if isinstance(e, CommandRefused)]
    assert [(e.actor, e.identity) for e in refused] == [("dave", "authenticated")]
    assert not env.rollout.ledger.records_for("rollback-plan", "sign")


async def test_alice_and_a_look_alike_account_are_one_person_to_a_two_person_gate(env: Env) -> None:
    await env.start_run()
    assert (await command(env.http, env.url, "alice", "signoff", {"gate": "rollback-plan"}))[0] == 200
    status, body = await command(env.http, env.url, "alice\u200b", "signoff", {"gate": "rollback-plan"})
    assert status == 409
    assert "already signed rollback-plan; the next one must be a different person" in body["reason"]
    assert not env.rollout.ledger.signed("rollback-plan")
    assert (await command(env.http, env.url, "bob", "signoff", {"gate": "rollback-plan"}))[0] == 200
    assert env.rollout.ledger.signed("rollback-plan")


async def test_unauthenticated_requests_get_401(env: Env) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YWxpY2U6eA=="}):
        async with env.http.get(f"{env.url}/api/v1/whoami", headers=headers) as r:
            assert r.status == 401, headers
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert "token" in (await r.json())["error"]
        async with env.http.post(
            f"{env.url}/api/v1/namespaces/{NS}/runs/{RUN}/commands/rollback", headers=headers, json={}
        ) as r:
            assert r.status == 401
    assert env.rollout.outcome is None
    async with env.http.get(f"{env.url}/api/v1/whoami", headers=auth("bob")) as r:
        assert await r.json() == {
            "username": "bob",
            "groups": ["deploydeck:release-managers", "system:authenticated"],
        }


async def test_bad_commands_name_what_is_wrong(env: Env) -> None:
    await env.start_run()
    status, body = await command(env.http, env.url, "alice", "signoff", {"gate": ""})
    assert status == 400 and "gate" in body["error"] and "/commands/signoff" in body["error"]
    status, body = await command(env.http, env.url, "alice", "signoff", {"gate": "x", "sneaky": 1})
    assert status == 400 and "sneaky" in body["error"]
    status, body = await command(env.http, env.url, "alice", "launch")
    assert status == 404 and "unknown command 'launch'" in body["error"]
    status, body = await command(env.http, env.url, "alice", "proceed")
    assert status == 409 and "rollback-plan" in body["reason"]  # the engine's reason, not RBAC's
    async with env.http.get(f"{env.url}/api/v1/namespaces/{NS}/runs/nope", headers=auth("alice")) as r:
        assert r.status == 404 and "deployrun shop/nope not found" in (await r.json())["error"]


async def test_the_fleet_lists_only_namespaces_the_caller_may_list(tmp_path: Path) -> None:
    kube = await start_cluster(namespaces=(NS,))
    session = await sim_session(tmp_path, "healthy", interactive=True, approve=False)
    other = View(("payments", "ledger-2-0"), None, None)
    replica = await start_replica(kube.url, [View((NS, RUN), session.rollout), other])
    try:
        async with aiohttp.ClientSession() as http:
            # bob's group is bound in shop only (carol's sim token may list everywhere)
            async with http.get(f"{replica.url}/api/v1/runs", headers=auth("bob")) as r:
                rows = (await r.json())["runs"]
            assert [(row["namespace"], row["name"], row["service"]) for row in rows] == [
                (NS, RUN, "checkout")
            ]
            assert rows[0]["attached"] == []
            async with http.get(f"{replica.url}/api/v1/runs", headers=auth("carol")) as r:
                assert [row["namespace"] for row in (await r.json())["runs"]] == ["payments", NS]
            # an attached client is listed by name
            stream = sse(http, replica.url, "bob")
            assert (await anext(stream))[0] in {"event", "state"}
            async with http.get(f"{replica.url}/api/v1/runs", headers=auth("alice")) as r:
                assert [row["attached"] for row in (await r.json())["runs"]] == [["bob"]]
            await stream.aclose()  # bob hangs up: within a second he is no longer listed
            for _ in range(300):
                if not replica.server.hub.attached((NS, RUN)):
                    break
                await asyncio.sleep(0.01)
            assert replica.server.hub.attached((NS, RUN)) == []
            assert replica.server.hub.get((NS, RUN)) is None  # nobody watches: no frames kept
            # nobody drives the other run and it is not driven here: commands say so
            kube_ns = "payments"
            async with http.post(
                f"{replica.url}/api/v1/namespaces/{kube_ns}/runs/ledger-2-0/commands/pause",
                headers=auth("alice"),
            ) as r:
                assert r.status == 503 and "no replica drives it" in (await r.json())["error"]
    finally:
        await replica.close()
        await session.close()
        await kube.stop()


async def test_a_replica_that_does_not_drive_the_run_forwards_to_the_one_that_does(env: Env) -> None:
    await env.start_run()
    standby = await start_replica(env.kube.url, [View((NS, RUN), None, env.url)])
    try:
        status, body = await command(
            env.http, standby.url, "alice", "signoff", {"gate": "dashboards-reviewed"}
        )
        assert (status, body) == (200, {"ok": True, "reason": ""})
        status, body = await command(env.http, standby.url, "carol", "abort", {"reason": "x"})
        assert status == 403 and "carol may not create deployruns/abort" in body["error"]
        refused = [e for e in env.journal() if isinstance(e, CommandRefused)]
        assert [(e.command, e.actor) for e in refused] == [("abort", "carol")]  # journaled by the driver
        async with env.http.get(f"{standby.url}/api/v1/namespaces/{NS}/runs/{RUN}", headers=auth("bob")) as r:
            detail = await r.json()
        assert detail["state"]["phase"] == "preflight" and detail["plan"]["service"] == "checkout"
        frames = []
        async for kind, ident, data in sse(env.http, standby.url, "bob"):
            frames.append((kind, ident, data))
            if kind == "state":
                break
        assert [int(i) for k, i, _ in frames if k == "event"] == list(range(1, len(env.rollout.events) + 1))
        # a request forwarded to a replica that does not drive the run is not forwarded again
        async with env.http.get(
            f"{standby.url}/api/v1/namespaces/{NS}/runs/{RUN}/events",
            headers={**auth("bob"), "X-Deploydeck-Forwarded-By": "http://127.0.0.1:1"},
        ) as r:
            assert r.status == 503 and "does not drive it" in (await r.json())["error"]
    finally:
        await standby.close()


async def test_plain_http_is_refused_off_loopback() -> None:
    with pytest.raises(
        ApiConfigError, match=r"--tls-cert and --tls-key are required to serve the API on 0\.0\.0\.0"
    ):
        check_bind("0.0.0.0", None, None)
    with pytest.raises(ApiConfigError, match="--tls-key is missing"):
        check_bind("127.0.0.1", "cert.pem", None)
    with pytest.raises(ApiConfigError, match=r"--tls-cert /nonexistent/cert\.pem: no such file"):
        check_bind("10.0.0.7", "/nonexistent/cert.pem", "/nonexistent/key.pem")
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.53"):
        check_bind(host, None, None)
    with pytest.raises(ApiConfigError, match="--tls-cert"):
        await serve_api(object(), "0.0.0.0", 0)  # type: ignore[arg-type]


async def test_https_with_a_certificate(tmp_path: Path) -> None:
    import ssl

    from core.sim.kube.tls import make_serving_cert

    kube = await start_cluster()
    cert = make_serving_cert()  # self-signed, for 127.0.0.1
    try:
        replica = await start_replica(kube.url, [], tls=(cert.cert_file, cert.key_file))
        try:
            assert replica.url.startswith("https://")
            trust = ssl.create_default_context(cafile=str(cert.cert_file))
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{replica.url}/api/v1/whoami", headers=auth("carol"), ssl=trust) as r:
                    assert (await r.json())["username"] == "carol"
                with pytest.raises(aiohttp.ClientError):  # plain HTTP on the TLS port gets nowhere
                    async with http.get(replica.url.replace("https", "http") + "/api/v1/whoami") as r:
                        await r.read()
        finally:
            await replica.close()
    finally:
        cert.remove()
        await kube.stop()


async def test_token_reviews_are_cached_by_token_hash_and_shared(env: Env) -> None:
    reviews = lambda: sum(1 for m, p in env.kube.requests if p.endswith("/tokenreviews"))  # noqa: E731
    before = reviews()
    await asyncio.gather(
        *(env.http.get(f"{env.url}/api/v1/whoami", headers=auth("alice")) for _ in range(10))
    )
    assert reviews() == before + 1  # ten requests at once, one TokenReview
    authorizer = env.replica.server.auth
    assert all("tok-alice" not in repr(key) for key in authorizer._cache)  # the token is never a key
    kube_api = agent_kube_api(env.kube.url)
    await kube_api.close()


async def test_keepalives_flow_and_a_stream_ends_when_the_run_is_no_longer_driven_here(
    tmp_path: Path,
) -> None:
    kube = await start_cluster()
    session = await sim_session(tmp_path, "healthy", interactive=True, approve=False)
    view = View((NS, RUN), session.rollout)
    replica = await start_replica(kube.url, [view], keepalive_s=0.05)
    try:
        async with aiohttp.ClientSession() as http:
            kinds: list[str] = []
            stream = sse(http, replica.url, "carol")
            async for kind, _, _ in stream:
                kinds.append(kind)
                if kinds.count("comment") == 2:
                    break
            assert kinds == ["state", "comment", "comment"]  # nothing happened yet: state, then keepalives
            assert (await anext(stream))[0] == "comment"
            view.engine = None  # the lease went elsewhere: this replica no longer drives it
            rest = [kind async for kind, _, _ in stream]  # ends by itself: the client reconnects
            assert set(rest) <= {"comment"}
            assert replica.server.hub.attached((NS, RUN)) == []
    finally:
        await replica.close()
        await session.close()
        await kube.stop()


async def test_a_client_that_cannot_keep_up_is_dropped_and_catches_up_from_history(env: Env) -> None:
    from core.agent.stream import RunStream
    from core.events import LogLine

    hub = RunStream(env.rollout, max_backlog=3)
    history, slow = hub.attach("slow")
    _, fast = hub.attach("fast")
    for i in range(5):
        await env.rollout._emit(LogLine, message=f"line {i}")
        fast.queue.get_nowait()  # the fast one reads each frame as it comes
    assert slow.dropped and slow.queue.get_nowait() is None and slow.queue.empty()
    assert not fast.dropped and hub.attached() == {"fast"}
    again, _ = hub.attach("slow", last_event_id=hub.seq - 5)  # reconnects with its Last-Event-ID
    assert again.count(b"event: event") == 5 and b"line 0" in again and b"line 4" in again
    assert history.count(b"event: event") == hub.seq - 5
    hub.close()


async def test_the_cluster_not_answering_is_a_503_never_a_yes(env: Env) -> None:
    from core.agent.auth import Authorizer

    async with env.http.get(f"{env.url}/api/v1/whoami", headers=auth("alice")) as r:
        assert r.status == 200  # cached from here on for a few seconds
    await env.kube.stop()
    env.replica.server.auth.deadline_s = 0.3  # the whole wait, retries included
    async with env.http.get(f"{env.url}/api/v1/whoami", headers=auth("bob")) as r:
        assert r.status == 503 and "TokenReview" in (await r.json())["error"]
    # a SubjectAccessReview that cannot be asked refuses the command (and says why)
    status, body = await command(env.http, env.url, "alice", "pause")
    assert status == 503 and "SubjectAccessReview" in body["error"]
    assert env.rollout.phase.value != "paused"
    slow = Authorizer(env.replica.agent.api, deadline_s=0.2)
    slow.api.request = _never  # type: ignore[method-assign]
    with pytest.raises(Exception, match=r"took over 0\.2s"):
        await slow.authenticate("Bearer something")


async def _never(*_args: Any, **_kwargs: Any) -> Any:
    await asyncio.sleep(3600)


async def test_a_removed_binding_takes_effect_once_the_short_cache_expires(env: Env) -> None:
    from core.sim.kube.rbac import ROLE_BINDINGS

    await env.start_run()
    env.replica.server.auth.access_ttl = __import__("datetime").timedelta(seconds=0.2)
    assert (await command(env.http, env.url, "dave", "pause", {"reason": "hold"}))[0] == 200
    env.kube.store.delete(ROLE_BINDINGS, NS, "dave")
    await asyncio.sleep(0.3)
    status, body = await command(env.http, env.url, "dave", "resume")
    assert status == 403 and "dave may not create deployruns/pause" in body["error"]


async def test_every_error_is_json(env: Env) -> None:
    async with env.http.get(f"{env.url}/api/v1/nothing-here", headers=auth("alice")) as r:
        assert r.status == 404 and (await r.json())["error"] == "GET /api/v1/nothing-here: HTTP 404 Not Found"
    async with env.http.delete(f"{env.url}/api/v1/whoami", headers=auth("alice")) as r:
        assert r.status == 405 and "HTTP 405" in (await r.json())["error"]
    big = {"gate": "rollback-plan", "note": "x" * 100_000}
    status, body = await command(env.http, env.url, "alice", "signoff", big)
    assert status == 413 and "HTTP 413" in body["error"]


def agent_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed serving certificate naming the agent's Service only, as deploy/ would mount:
    the replicas reach each other at Pod IPs (here 127.0.0.1), which it does not list."""
    import shutil
    import subprocess

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (make real-deps)")
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=deploydeck-agent",
            "-addext", "subjectAltName=DNS:deploydeck-agent.deploydeck-system.svc",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


async def test_forwarding_between_https_replicas_pins_their_shared_certificate(
    env: Env, tmp_path: Path
) -> None:
    import ssl

    pair, other = agent_cert(tmp_path / "a"), agent_cert(tmp_path / "b")
    driver = await start_replica(env.kube.url, [View((NS, RUN), env.rollout)], tls=pair)
    standby = await start_replica(env.kube.url, [View((NS, RUN), None, driver.url)], tls=pair)
    impostor = await start_replica(env.kube.url, [View((NS, RUN), None, standby.url)], tls=other)
    try:
        await env.start_run()
        trust = ssl.create_default_context(cafile=str(pair[0]))
        trust.check_hostname = False  # the test client, like the replicas, pins the certificate
        url = f"{standby.url}/api/v1/namespaces/{NS}/runs/{RUN}/commands/pause"
        async with env.http.post(url, headers=auth("alice"), json={"reason": "hold"}, ssl=trust) as r:
            assert (r.status, await r.json()) == (200, {"ok": True, "reason": ""})
        assert env.rollout.phase.value == "paused"
        # a replica with another certificate does not trust this one with a caller's token
        trust_other = ssl.create_default_context(cafile=str(other[0]))
        trust_other.check_hostname = False
        url = f"{impostor.url}/api/v1/namespaces/{NS}/runs/{RUN}/commands/resume"
        async with env.http.post(url, headers=auth("alice"), ssl=trust_other) as r:
            body = await r.json()
            assert (
                r.status == 503
                and "did not answer" in body["error"]
                and "CERTIFICATE_VERIFY_FAILED" in body["error"]
            )
        assert env.rollout.phase.value == "paused"
    finally:
        for replica in (impostor, standby, driver):
            await replica.close()


def test_the_plan_a_caller_reads_has_no_credentials() -> None:
    from types import SimpleNamespace

    from core.agent.api import redacted_plan
    from core.plan import parse_plan

    text = (ROOT / "examples" / "full.yaml").read_text(encoding="utf-8")
    env = {
        "PROMETHEUS_TOKEN": "prom-secret-value-1",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/zzz",
    }
    plan = parse_plan(text, "examples/full.yaml", env=env)
    ci = plan.gates.ci.model_copy(update={"token": "written-in-the-plan"})
    literal = plan.model_copy(update={"gates": plan.gates.model_copy(update={"ci": ci})})
    shown = json.dumps(redacted_plan(SimpleNamespace(plan=literal)))  # type: ignore[arg-type]
    for secret in ("prom-secret-value-1", "hooks.slack.com/services/T0/B0/zzz", "written-in-the-plan"):
        assert secret not in shown, secret
    data = json.loads(shown)
    assert data["prometheus"]["token"] == "***" and data["gates"]["ci"]["token"] == "***"
    assert data["notifications"]["webhooks"][0]["url"] == "***"
    assert data["prometheus"]["url"] == "http://prometheus.monitoring.svc:9090"  # the rest as it is
    assert data["change"]["author"] == plan.change.author


async def test_the_embedded_mode_stays_self_declared(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy", interactive=True, approve=False, **the_plan())
    run = asyncio.create_task(session.rollout.run())
    try:
        rollout = session.rollout
        await until(lambda: rollout.allowed("sign_off").ok and "rollback-plan" in rollout.gates)
        assert (await rollout.sign_off("rollback-plan", "alice", "typed")).ok  # --as alice, the dialog
        await rollout.rollback("zoe", "typed too")
        await until(lambda: rollout.outcome is not None)
        signed = [e for e in rollout.events if isinstance(e, GateSignedOff)]
        assert [(e.actor, e.identity, e.groups) for e in signed] == [("alice", "self-declared", [])]
        assert rollout.ledger.to_records()[0].keys() == {"kind", "gate_id", "actor", "text", "at", "needed"}
        refused = await rollout.pause("zoe")  # too late: journaled as typed
        assert not refused.ok
        last = rollout.events[-1]
        assert isinstance(last, CommandRefused) and (last.actor, last.identity) == ("zoe", "self-declared")
    finally:
        run.cancel()
        await asyncio.wait({run})
        await session.close()


async def test_a_failing_stream_never_reaches_the_engine(env: Env) -> None:
    from core.agent.stream import RunStream, run_state
    from core.events import LogLine

    calls = 0

    def state(rollout: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("a bug in the state")
        return run_state(rollout)

    stream = RunStream(env.rollout, state=state)
    _, sub = stream.attach("alice")
    event = await env.rollout._emit(LogLine, message="the engine goes on")
    assert env.rollout.events[-1] is event  # published and journaled: the failure stayed in the stream
    assert stream.closed and sub.queue.get_nowait() is None  # its client is told to reconnect


async def test_any_replica_lists_who_is_attached_to_a_run_another_drives(env: Env) -> None:
    standby = await start_replica(env.kube.url, [View((NS, RUN), None, env.url)])
    try:
        stream = sse(env.http, env.url, "bob")  # bob watches on the driving replica
        assert (await anext(stream))[0] == "state"
        async with env.http.get(f"{standby.url}/api/v1/runs", headers=auth("carol")) as r:
            rows = (await r.json())["runs"]
        assert [(row["name"], row["attached"]) for row in rows] == [(RUN, ["bob"])]
        await stream.aclose()
    finally:
        await standby.close()
