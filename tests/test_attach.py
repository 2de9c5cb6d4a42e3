"""`deploydeck attach`: the fleet screen and the dashboard fed by the agent's real API (issue 12, item 5).

The agent here is core.agent.api serving real engines (tests/attach_helpers.py); who the caller is and
what they may do is the simulated API server's TokenReview and SubjectAccessReview over
deploy/rbac-users.yaml's Roles: alice and bob are release managers, carol a viewer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import DataTable, Footer

from core.agent.client import AgentError, StreamEvent
from core.events import CommandRefused, GateSignedOff
from core.sim.kube.rbac import ROLE_BINDINGS
from tests.attach_helpers import NS, Fleet, agent_fleet, samples
from tui.remote import AttachApp, RemoteCommands, RemoteSession
from tui.screens.fleet import FleetScreen
from tui.screens.main import MainScreen
from tui.screenshots import at_gates

pytestmark = pytest.mark.timeout(90)

CHECKOUT = "checkout-1-5-0"


async def until(pilot: object, check: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)  # type: ignore[attr-defined]


def table_text(app: App[object]) -> list[str]:
    table: DataTable[object] = app.screen.query_one("#fleet-table", DataTable)
    return [" | ".join(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]


def footer_keys(app: App[object]) -> set[str]:
    return {str(key.render()).split()[0] for key in app.screen.query_one(Footer).query("FooterKey")}


def palette_titles(app: App[object]) -> set[str]:
    return {title for title, _, _ in RemoteCommands(app.screen)._commands()}


async def attached(agent: Fleet, user: str, **kwargs: object) -> tuple[AttachApp, object]:
    client = agent.client(user)
    me = await client.whoami()
    return AttachApp(client, me, period_s=0.3, **kwargs), client  # type: ignore[arg-type]


async def test_fleet_lists_filters_and_enter_opens_the_dashboard_filled_from_history(tmp_path: Path) -> None:
    async with agent_fleet(tmp_path) as fleet:
        app, client = await attached(fleet, "alice")
        async with client, app.run_test(size=(120, 40)) as pilot:  # type: ignore[attr-defined]
            await until(
                pilot, lambda: isinstance(app.screen, FleetScreen) and app.screen.fetches > 0, "the fleet"
            )
            rows = table_text(app)
            assert len(rows) == 3
            checkout = next(r for r in rows if r.startswith("checkout"))
            assert "1.4.2 → 1.5.0" in checkout and "canary" in checkout and "25 %" in checkout
            assert "replica-a" in checkout
            assert any(r.startswith("payments") and "rolled back" in r for r in rows)

            # the fleet follows the runs by itself: bob pauses checkout, the row says so without a key
            async with fleet.client("bob") as bob:
                assert (await bob.command(NS, CHECKOUT, "pause", {"reason": "look"})).ok
            await until(
                pilot,
                lambda: any(r.startswith("checkout") and "paused" in r for r in table_text(app)),
                "paused",
            )
            async with fleet.client("bob") as bob:
                assert (await bob.command(NS, CHECKOUT, "resume")).ok
            await until(
                pilot,
                lambda: any(r.startswith("checkout | 1.4.2 → 1.5.0 | canary") for r in table_text(app)),
                "resumed",
            )

            await pilot.press("slash", *"pay")
            await pilot.pause()
            assert [r.split(" | ")[0] for r in table_text(app)] == ["payments"]
            await pilot.press("escape")
            await pilot.pause()
            assert len(table_text(app)) == 3

            await pilot.press("slash", *"canary 25%")  # every word must match: only checkout
            await pilot.press("enter")  # leaves the filter box for the table
            await pilot.pause()
            assert [r.split(" | ")[0] for r in table_text(app)] == ["checkout"]
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, MainScreen), "the dashboard")

            engine = fleet.runs[CHECKOUT].model
            # opened mid-canary: the charts hold the whole history, not only what came after Enter
            assert samples(app.model) == samples(engine) > 4
            assert app.model.weight == 25
            assert app.session.rollout.events == fleet.runs[CHECKOUT].session.rollout.events

            # bob's fleet shows who else is attached
            async with fleet.client("bob") as bob:
                rows_seen_by_bob = {r.name: r.attached for r in await bob.runs()}
            assert rows_seen_by_bob[CHECKOUT] == ["alice"]

            await pilot.press("q")  # detaches: back to the fleet, the run untouched
            await until(pilot, lambda: isinstance(app.screen, FleetScreen), "the fleet again")
            assert app.session is None
            assert fleet.runs[CHECKOUT].session.rollout.outcome is None


async def test_carols_rbac_hides_steering_keys_and_palette_entries(tmp_path: Path) -> None:
    async with agent_fleet(tmp_path, runs=None) as fleet:
        seen: dict[str, tuple[set[str], set[str]]] = {}
        for user in ("alice", "carol"):
            app, client = await attached(fleet, user, fleet=False, run=(NS, CHECKOUT))
            async with client, app.run_test(size=(120, 40)) as pilot:  # type: ignore[attr-defined]
                await until(pilot, lambda: isinstance(app.screen, MainScreen), "the dashboard")  # noqa: B023
                app.refresh_now()
                await pilot.pause()
                seen[user] = (footer_keys(app), palette_titles(app))
                if user == "carol":
                    assert app.read_only  # she may do nothing here: the header says so
                    await pilot.press("r", "a", "space")  # hidden keys do nothing: no request is sent
                    await pilot.pause(0.3)
                    assert not any(isinstance(e, CommandRefused) for e in app.session.rollout.events)
        alice_keys, alice_palette = seen["alice"]
        carol_keys, carol_palette = seen["carol"]
        assert {"r", "a", "space"} <= alice_keys
        assert not {"r", "p", "s", "a", "space", "g", "d"} & carol_keys
        assert {"v", "l"} <= carol_keys  # looking stays
        steering = {"Roll back now", "Abort the deploy", "Pause / resume", "Sign off the selected gate"}
        assert steering <= alice_palette
        assert not steering & carol_palette
        assert "Show the full event log" in carol_palette


async def test_a_403_from_the_agent_is_shown_and_the_key_then_hidden(tmp_path: Path) -> None:
    async with agent_fleet(tmp_path) as fleet:
        app, client = await attached(fleet, "bob", fleet=False, run=(NS, CHECKOUT))
        notes: list[str] = []
        async with client, app.run_test(size=(120, 40), notifications=True) as pilot:  # type: ignore[attr-defined]
            real_notify = app.notify

            def spy(message: str, **kwargs: object) -> None:
                notes.append(str(message))
                real_notify(message, **kwargs)  # type: ignore[arg-type]

            app.notify = spy  # type: ignore[method-assign]
            await until(pilot, lambda: isinstance(app.screen, MainScreen), "the dashboard")
            assert app.check_action("rollback", ()) is True
            # the release managers lose their binding while bob watches: his key is now stale
            fleet.cluster.store.delete(ROLE_BINDINGS, NS, "release-managers")
            # the agent caches a SubjectAccessReview answer briefly: the change applies after that
            await pilot.pause(fleet.replica.server.auth.access_ttl.total_seconds() + 0.2)
            await pilot.press("r")
            await until(pilot, lambda: any("403" in n for n in notes), "the refusal on screen")
            refusal = next(n for n in notes if "403" in n)
            assert refusal.startswith("rollback refused:") and "bob may not" in refusal
            assert "/commands/rollback" in refusal  # the endpoint is named
            await until(pilot, lambda: app.check_action("rollback", ()) is False, "the key hidden")
        rollout = fleet.runs[CHECKOUT].session.rollout
        assert rollout.outcome is None and rollout.weight == 25  # nothing was rolled back
        refused = [e for e in rollout.events if isinstance(e, CommandRefused)]
        assert refused and refused[-1].actor == "bob"


async def test_the_stream_reconnects_with_last_event_id_missing_and_repeating_nothing(tmp_path: Path) -> None:
    async with agent_fleet(tmp_path) as fleet, fleet.client("alice") as client:
        rollout = fleet.runs[CHECKOUT].session.rollout
        got: list[StreamEvent] = []
        caught_up = asyncio.Event()

        async def follow() -> None:
            async for item in client.events(NS, CHECKOUT):
                if isinstance(item, StreamEvent):
                    got.append(item)
                elif len(got) >= len(rollout.events):
                    caught_up.set()

        task = asyncio.create_task(follow())
        await asyncio.wait_for(caught_up.wait(), 10)
        caught_up.clear()
        fleet.replica.server.hub.get((NS, CHECKOUT)).close()  # the agent drops every stream of the run
        answer = await client.command(NS, CHECKOUT, "pause", {"reason": "look closer"})
        assert answer.ok
        await asyncio.wait_for(caught_up.wait(), 10)
        task.cancel()
        assert client.reconnects >= 1
        seqs = [g.seq for g in got]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # contiguous: nothing lost, nothing twice
        assert [g.event for g in got] == rollout.events


async def test_errors_name_the_endpoint_and_the_status(tmp_path: Path) -> None:
    async with agent_fleet(tmp_path, runs=[]) as fleet:
        async with fleet.client("carol") as carol:
            with pytest.raises(AgentError) as refused:
                await carol.command(NS, CHECKOUT, "rollback", {"reason": "x"})
            assert refused.value.status in {403, 404}
            assert f"POST /api/v1/namespaces/{NS}/runs/{CHECKOUT}/commands/rollback" in str(refused.value)
        from core.agent.client import AgentClient

        async with AgentClient(fleet.url, "not-a-token") as stranger:
            with pytest.raises(AgentError) as unknown:
                await stranger.whoami()
            assert unknown.value.status == 401 and "GET /api/v1/whoami: HTTP 401" in str(unknown.value)
        async with AgentClient("http://127.0.0.1:9", "x", deadline_s=0.5) as nowhere:
            with pytest.raises(AgentError) as down:
                await nowhere.runs()
            assert down.value.unreachable and "GET /api/v1/runs: unreachable" in str(down.value)


async def test_the_fleet_at_80x24_shows_every_column_and_the_cut_values_in_full_below(tmp_path: Path) -> None:
    from tui.fleet_shots import FleetShotApp, fleet_scene
    from tui.screenshots import ACTOR

    async with fleet_scene(tmp_path) as runs:
        app = FleetShotApp(runs)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(
                pilot, lambda: isinstance(app.screen, FleetScreen) and app.screen.fetches > 0, "the fleet"
            )
            await pilot.pause()
            keys = footer_keys(app)
            table = app.screen.query_one("#fleet-table", DataTable)
            # nothing to scroll to: every column is within the table's 76 cells
            assert table.virtual_size.width <= table.scrollable_content_region.width, table.virtual_size
            update = app.screen._compositor.render_full_update()
            lines = ["".join(segment.text for segment in strip) for strip in update.strips]
    header = next(line for line in lines if "service" in line and "phase" in line)
    for label in ("service", "from→to", "phase", "weight", "in phase", "attached", "holder"):
        assert f" {label} " in header, header  # whole, not cut at the border
    checkout = next(line for line in lines if "checkout" in line and "canary" in line)
    # service, versions, phase, weight, time in phase, who else is attached, the holder's pod (its end)
    for cell in ("1.4.2→1.5.0", "canary", "25 %", "5m50s", "bob, carol", "…-x2k4p "):
        assert cell in checkout, checkout
    assert ACTOR not in checkout  # the attached column lists the others
    assert any("inventory" in line and "…-q8m2t" in line for line in lines)  # the other replica
    assert any("payments" in line and "rolled back" in line for line in lines)
    # what the row cut, in full on the lines under the table (the highlighted run: checkout)
    detail = " ".join(line.strip() for line in lines[-5:-1])
    holder = "deploydeck-agent/deploydeck-agent-5f7c9-x2k4p@deploydeck-agent-5f7c9-x2k4p:1"
    assert "shop/checkout-1-5-0" in detail and holder in detail, detail
    assert f"attached: {ACTOR} (you), bob, carol" in detail, detail
    assert {"/", "q"} <= keys and any("Open" in line for line in lines[-2:])  # the footer offers Enter and /


async def test_attached_you_sign_as_your_kubeconfig_identity_only(tmp_path: Path) -> None:
    runs = [("search-3-1-0", "healthy", "search", at_gates, False)]
    async with agent_fleet(tmp_path, runs=runs) as fleet, fleet.client("alice") as client:
        session = await RemoteSession.open(client, NS, "search-3-1-0")
        try:
            refused = await session.rollout.sign_off("rollback-plan", "bob", "")
            assert not refused.ok and "you sign as alice" in refused.reason
            signed = await session.rollout.sign_off("rollback-plan", "alice", "read it")
            assert signed.ok, signed.reason
        finally:
            await session.close()
        engine = fleet.runs["search-3-1-0"].session.rollout
        assert [(e.gate_id, e.actor) for e in engine.events if isinstance(e, GateSignedOff)] == [
            ("rollback-plan", "alice")
        ]


async def test_a_stream_the_agent_ends_for_good_is_said_and_is_no_outcome(tmp_path: Path) -> None:
    async with agent_fleet(tmp_path) as fleet:
        app, client = await attached(fleet, "alice", fleet=False, run=(NS, CHECKOUT))
        notes: list[str] = []
        async with client, app.run_test(size=(120, 40)) as pilot:  # type: ignore[attr-defined]
            real_notify = app.notify
            app.notify = lambda message, **kw: (notes.append(str(message)), real_notify(message, **kw))[1]  # type: ignore[method-assign]
            await until(pilot, lambda: isinstance(app.screen, MainScreen), "the dashboard")
            # the agent forgets the run (deleted, or another agent's namespace now) and drops its stream
            fleet.replica.registry.views.pop((NS, CHECKOUT))
            fleet.replica.server.hub.get((NS, CHECKOUT)).close()
            await until(
                pilot, lambda: any("lost the agent's event stream" in n for n in notes), "the loss said"
            )
            assert "HTTP 404" in next(n for n in notes if "lost the agent" in n)
            assert app.outcome is None  # the run was not this dashboard's to end


async def test_the_fleet_says_what_the_driving_replica_says_of_the_highlighted_run(tmp_path: Path) -> None:
    """A run's status message (an edit not applied, a refusal) is under the table at 80×24, whole."""
    from tui.fleet_shots import FleetShotApp, fleet_scene

    said = (
        "spec generation 2 is not applied: this run drives generation 1 (a plan is fixed once driven; "
        "pause or roll back, then apply a new DeployRun)"
    )

    class Told(FleetShotApp):
        async def rows(self) -> list:  # type: ignore[type-arg]
            rows = await super().rows()
            return [r.model_copy(update={"message": said}) if r.service == "checkout" else r for r in rows]

    async with fleet_scene(tmp_path) as runs:
        app = Told(runs)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(
                pilot, lambda: isinstance(app.screen, FleetScreen) and app.screen.fetches > 0, "the fleet"
            )
            await pilot.pause()
            update = app.screen._compositor.render_full_update()
            lines = ["".join(segment.text for segment in strip) for strip in update.strips]
    below = " ".join(line.strip() for line in lines[-7:-1])
    assert "shop/checkout-1-5-0" in below and said in below, below
