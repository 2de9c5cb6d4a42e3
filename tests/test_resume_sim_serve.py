"""Issue 11, done-when: a run against `sim serve` killed at 25 % resumes when the same command runs
again (the production code path end to end: real adapters, real processes, kill -9)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.serve_helpers import Driver, sim_serve, traffic_at

TTL_S = 4.0  # the lease a killed driver leaves behind expires this quickly (the resume waits it out)


@pytest.mark.real
@pytest.mark.slow
def test_a_run_killed_at_25_percent_resumes_when_the_same_command_runs_again(tmp_path: Path) -> None:
    journal = tmp_path / "alice.jsonl"
    with sim_serve(tmp_path / "env") as env:
        first = Driver(env.printed("plan"), "alice", journal, DEPLOYDECK_LEASE_TTL=str(TTL_S))
        try:
            at_25 = first.wait_for(traffic_at(25), 120, "canary at 25 %")
            first.proc.send_signal(signal.SIGKILL)  # no cleanup, no journal line, the lease left held
            assert first.proc.wait(timeout=10) == -signal.SIGKILL
        finally:
            first.kill()
        deploy_id = at_25["deploy_id"]
        # the same command again
        again = Driver(env.printed("plan"), "alice", journal, DEPLOYDECK_LEASE_TTL=str(TTL_S))
        try:
            code = again.finish(240)
        finally:
            again.kill()
        assert code == 0, again.stderr()
        resumed = [e for e in again.events if e["type"] == "run_resumed"]
        assert len(resumed) == 1 and resumed[0]["deploy_id"] == deploy_id, resumed
        assert resumed[0]["weight"] == 25 and resumed[0]["from_phase"] == "canary", resumed[0]
        assert {e["deploy_id"] for e in again.events} == {deploy_id}  # one deploy, not a new one
        # the resume neither lowers nor repeats a traffic change: from 25 % it only goes up, then home
        moves = [
            e["effective"] for e in again.events if e["type"] == "traffic_changed" and e.get("applied", True)
        ]
        climbing = moves[:-1]
        assert climbing and climbing == sorted(set(climbing)) and climbing[0] > 25, moves
        assert moves[-1] == 0  # promoted: stable runs the new version, the canary takes no traffic
        assert again.events[-1]["type"] == "finished" and again.events[-1]["outcome"] == "completed"
