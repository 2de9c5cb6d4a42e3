"""`t`: the rollout's ReplicaSet/pod tree (kubectl argo rollouts get rollout), and Enter on a pod:
its events and log tail (as k9s), on the in-memory world and on the simulated API server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import DataTable, Static

from tui.screens.rollout_tree import PodScreen, RolloutScreen, age
from tui.screenshots import canary_at, demo_app, drive

IMAGE_OLD = "registry.example.com/shop/checkout:1.4.2"
IMAGE_NEW = "registry.example.com/shop/checkout:1.5.0"


async def _until(pilot: object, check: object, what: str, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"not reached: {what}")
        await pilot.pause(0.05)  # type: ignore[attr-defined]


async def test_t_shows_weights_images_tree_and_analysis_and_enter_opens_a_pod() -> None:
    async with demo_app("healthy", size=(80, 24), freeze_at=canary_at(25, samples=3)) as (
        app,
        pilot,
    ):
        await drive(app, pilot, canary_at(25, samples=3))
        await pilot.press("t")
        screen = app.screen
        assert isinstance(screen, RolloutScreen)
        await _until(pilot, lambda: screen.reads > 0, "the first tree read")
        tree = screen.cluster_tree
        assert tree is not None, screen.error
        summary = str(screen.query_one("#tree-summary", Static).render())
        assert "SetWeight 25 %" in summary
        assert f"ActualWeight {tree.weight_actual} %" in summary
        assert IMAGE_OLD in summary and IMAGE_NEW in summary
        assert f"rev {tree.stable_revision}" in summary
        # per-step analysis counts, folded from the engine's samples: 5 % passed, 25 % is running
        checks = app.model.step_checks
        assert checks["5 %"][0] > 0 and checks["5 %"][1] == 0 and checks["25 %"][0] >= 1
        assert f"5 % ✔ {checks['5 %'][0]} ✖ 0" in summary
        table = screen.query_one(DataTable)
        keys = [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]
        canary_rs = next(rs for rs in tree.replica_sets if rs.role == "canary")
        assert f"rs:{canary_rs.name}" in keys
        assert [k for k in keys if k.startswith("pod:")] == [
            f"pod:{p.name}" for rs in tree.replica_sets for p in rs.pods
        ]
        # a ReplicaSet row is not a pod: Enter says so and stays
        table.move_cursor(row=keys.index(f"rs:{canary_rs.name}"))
        await pilot.press("enter")
        assert isinstance(app.screen, RolloutScreen)
        pod = canary_rs.pods[0].name
        table.move_cursor(row=keys.index(f"pod:{pod}"))
        await pilot.press("enter")
        assert isinstance(app.screen, PodScreen) and app.screen.pod == pod
        pod_screen = app.screen
        await _until(pilot, lambda: pod_screen.detail is not None, "the pod's events and log")
        body = str(pod_screen.query_one("#pod-body", Static).render())
        assert "Events" in body and "Started" in body and "Scheduled" in body
        assert f"starting {IMAGE_NEW}" in body and "listening on :8080, ready" in body
        assert "GET /" in body  # the workload's request lines
        await pilot.press("escape")
        assert isinstance(app.screen, RolloutScreen)
        # the rollback key works from here too
        await pilot.press("r")
        await _until(pilot, lambda: app.model.rollback is not None, "the rollback")


async def test_the_tree_screen_says_when_the_cluster_cannot_answer() -> None:
    from core.ports import ClusterError

    async with demo_app("healthy", size=(120, 40), freeze_at=canary_at(5, samples=1)) as (app, pilot):
        await drive(app, pilot, canary_at(5, samples=1))
        cluster = app.session.world.production.inner  # type: ignore[attr-defined]

        async def down() -> None:
            raise ClusterError("GET replicasets on 127.0.0.1: HTTP 503")

        cluster.tree = down
        await pilot.press("t")
        screen = app.screen
        assert isinstance(screen, RolloutScreen)
        await _until(pilot, lambda: screen.reads > 0, "the failed read")
        summary = str(screen.query_one("#tree-summary", Static).render())
        assert "ActualWeight ?" in summary and "HTTP 503" in summary


async def test_the_tree_and_a_pod_through_the_simulated_api_server(tmp_path: Path) -> None:
    """The same screen fed by KubeCluster over the simulated API server (the real adapter path). The
    cluster is moved as the engine would move it, on the real clock: the lease and the server's
    pods need time that a frozen virtual clock would not give them."""
    from core.clock import SystemClock
    from core.session import demo_plan, open_session
    from tui.app import DeployDeckApp

    session = await open_session(
        demo_plan("healthy"),
        actor="alice",
        clock=SystemClock(),
        journal_path=tmp_path / "j.jsonl",
        sim_backend="kube",
        pod_start_delay_s=0.05,
    )
    try:
        prod = session.world.production
        await prod.deploy(IMAGE_NEW, "canary")
        change = await prod.set_canary_weight(25)
        await prod.wait_ready("canary", 10)
        app = DeployDeckApp(session, actor="alice", start=False, cursor_blink=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("t")
            screen = app.screen
            assert isinstance(screen, RolloutScreen)
            await _until(pilot, lambda: screen.reads > 0, "the first tree read")
            tree = screen.cluster_tree
            assert tree is not None, screen.error
            assert tree.weight_configured == change.effective == tree.weight_actual
            summary = str(screen.query_one("#tree-summary", Static).render())
            assert f"ActualWeight {change.effective} %" in summary and "no analysis yet" in summary
            assert IMAGE_OLD in summary and IMAGE_NEW in summary
            table = screen.query_one(DataTable)
            keys = [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]
            canary = next(rs for rs in tree.replica_sets if rs.role == "canary")
            assert canary.ready == canary.desired > 0 and canary.status == "Healthy"
            pod = canary.pods[-1].name
            table.move_cursor(row=keys.index(f"pod:{pod}"))
            await pilot.press("enter")
            pod_screen = app.screen
            assert isinstance(pod_screen, PodScreen)
            await _until(pilot, lambda: pod_screen.detail is not None, "the pod's events and log")
            body = str(pod_screen.query_one("#pod-body", Static).render())
            assert f"Successfully assigned shop/{pod} to sim-node-1" in body
            assert "Started container app" in body and f"starting {IMAGE_NEW}" in body
    finally:
        await session.close()


def test_ages_read_as_kubectl_writes_them() -> None:
    assert [age(s) for s in (None, 5, 119, 120, 7199, 7200, 172799, 172800)] == [
        "?",
        "5s",
        "119s",
        "2m",
        "119m",
        "2h",
        "47h",
        "2d",
    ]
