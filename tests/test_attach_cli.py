"""`deploydeck attach` / `run --agent` from the command line, and whose token the agent gets.

The token comes from the kubeconfig context as kubectl would send it: a static token, a tokenFile,
or an exec plugin (run again once its ExecCredential's expirationTimestamp has passed). The agent
(core.agent.api on loopback, tests/attach_helpers.py) tells who it authenticated.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from core.agent.client import AgentClient, KubeconfigToken
from core.domain import EXIT_CODES, Outcome
from core.events import GateSignedOff, parse_event
from tests.agent_api_helpers import TOKENS
from tests.attach_helpers import NS, Fleet, agent_fleet
from tui.cli import main
from tui.commands.attach_cmd import follow_headless
from tui.headless import JsonPrinter
from tui.screenshots import at_gates, rolled_back

pytestmark = pytest.mark.timeout(90)

PLUGIN = """
import json, sys
from pathlib import Path
counter, token, expires = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
counter.write_text(str(int(counter.read_text() or 0) + 1) if counter.exists() else "1")
status = {"token": token}
if expires != "-":
    status["expirationTimestamp"] = expires
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", "status": status}))
"""


def kubeconfig(fleet: Fleet, directory: Path, user: dict[str, object], name: str = "k") -> Path:
    path = directory / f"{name}.yaml"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sim", "cluster": {"server": fleet.cluster.url}}],
        "users": [{"name": "me", "user": user}],
        "contexts": [{"name": "me", "context": {"cluster": "sim", "user": "me", "namespace": NS}}],
        "current-context": "me",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def exec_user(directory: Path, token: str, expires: datetime | None) -> tuple[dict[str, object], Path]:
    script = directory / "plugin.py"
    script.write_text(PLUGIN, encoding="utf-8")
    counter = directory / f"runs-{token}"
    stamp = expires.strftime("%Y-%m-%dT%H:%M:%SZ") if expires else "-"
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(script), str(counter), token, stamp],
            "interactiveMode": "Never",
        }
    }
    return user, counter


async def whoami_twice(url: str, config: Path) -> list[str]:
    token = await KubeconfigToken.load(str(config), None)
    try:
        async with AgentClient(url, token) as client:
            return [(await client.whoami()).username, (await client.whoami()).username]
    finally:
        await token.close()


async def test_the_token_comes_from_the_kubeconfig_context_exec_plugins_and_token_files(
    tmp_path: Path,
) -> None:
    async with agent_fleet(tmp_path, runs=[]) as fleet:
        # an exec plugin whose credential expires in an hour: run once for both calls
        user, counter = exec_user(tmp_path, TOKENS["alice"], datetime.now(UTC) + timedelta(hours=1))
        assert await whoami_twice(fleet.url, kubeconfig(fleet, tmp_path, user, "exec-fresh")) == [
            "alice",
            "alice",
        ]
        assert counter.read_text() == "1"
        # one that has already expired: run again before each request, as kubectl does
        user, counter = exec_user(tmp_path, TOKENS["bob"], datetime.now(UTC) - timedelta(minutes=1))
        assert await whoami_twice(fleet.url, kubeconfig(fleet, tmp_path, user, "exec-stale")) == [
            "bob",
            "bob",
        ]
        assert int(counter.read_text()) >= 2
        # tokenFile
        (tmp_path / "carol-token").write_text(TOKENS["carol"], encoding="utf-8")
        config = kubeconfig(fleet, tmp_path, {"tokenFile": str(tmp_path / "carol-token")}, "file")
        assert await whoami_twice(fleet.url, config) == ["carol", "carol"]


def test_attach_without_an_agent_url_says_what_to_do(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DEPLOYDECK_AGENT", raising=False)
    assert main(["attach"]) == 2
    err = capsys.readouterr().err
    assert "--agent URL" in err and "$DEPLOYDECK_AGENT" in err and "deploydeck agent --api-port" in err


def test_plain_http_to_another_host_is_refused_before_the_token_leaves(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "k.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "secret-token-value"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        ),
        encoding="utf-8",
    )
    assert main(["attach", "--agent", "http://10.0.0.2:8443", "--kubeconfig", str(config)]) == 2
    assert "use https://" in capsys.readouterr().err


async def test_an_unreachable_agent_is_exit_2_naming_the_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with agent_fleet(tmp_path, runs=[]) as fleet:
        config = fleet.kubeconfig(tmp_path, "alice")
    # the agent and its cluster are gone now: the URL points at nothing
    monkeypatch.setenv("DEPLOYDECK_AGENT", fleet.url)
    from tui.commands import attach_cmd

    args = attach_cmd_args(["attach", "--kubeconfig", str(config)])
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    code = await attach_cmd._attach(args, attach_cmd.agent_url(args) or "", None)
    assert code == 2
    assert "GET /api/v1/whoami: unreachable" in err.getvalue() and "--agent" in err.getvalue()


def attach_cmd_args(argv: list[str]) -> object:
    from tui.cli import build_parser

    return build_parser().parse_args(argv)


# --- headless, attached ---------------------------------------------------------------------------


async def test_headless_json_attached_prints_the_run_as_the_embedded_mode_and_exits_with_its_outcome(
    tmp_path: Path,
) -> None:
    runs = [("payments-2-0-1", "bad-canary", "payments", rolled_back, True)]
    async with agent_fleet(tmp_path, runs=runs) as fleet, fleet.client("carol") as carol:
        out = io.StringIO()
        code = await follow_headless(carol, NS, "payments-2-0-1", JsonPrinter(out))
        engine = fleet.runs["payments-2-0-1"].session.rollout
        lines = out.getvalue().splitlines()
        assert code == EXIT_CODES[Outcome.ROLLED_BACK] == 3
        assert [parse_event(json.loads(line)) for line in lines] == engine.events
        assert json.loads(lines[-1])["type"] == "finished"
        # byte for byte what the embedded `--headless --json` prints for the same events
        embedded = io.StringIO()
        for event in engine.events:
            JsonPrinter(embedded)(event)
        assert out.getvalue() == embedded.getvalue()


async def test_headless_attached_signs_approved_gates_as_the_caller_and_a_signal_detaches(
    tmp_path: Path,
) -> None:
    runs = [("search-3-1-0", "healthy", "search", at_gates, False)]
    async with agent_fleet(tmp_path, runs=runs) as fleet, fleet.client("alice") as alice:
        engine = fleet.runs["search-3-1-0"].session.rollout
        err = io.StringIO()
        gates = ["rollback-plan", "dashboards-reviewed"]

        def signed() -> list[GateSignedOff]:
            return [e for e in engine.events if isinstance(e, GateSignedOff)]

        both = asyncio.Event()
        engine.subscribe(lambda _e: both.set() if len(signed()) >= 2 else None)
        follower = asyncio.create_task(
            follow_headless(alice, NS, "search-3-1-0", lambda e: None, approvals=gates, err=err)
        )
        await asyncio.wait_for(both.wait(), 15)
        assert sorted(e.gate_id for e in signed()) == sorted(gates)
        assert {(e.actor, e.identity) for e in signed()} == {("alice", "authenticated")}
        os.kill(os.getpid(), signal.SIGTERM)  # a headless follower stopped: it detaches, the run goes on
        assert await asyncio.wait_for(follower, 10) == 143
        assert "detached from shop/search-3-1-0; the agent keeps driving it" in err.getvalue()
        assert engine.outcome is None


async def test_an_https_agent_is_trusted_through_the_kubeconfig_ca_or_agent_ca(tmp_path: Path) -> None:
    import base64
    import shutil

    from core.agent.client import AgentError
    from core.sim.kube.tls import make_serving_cert
    from tests.agent_api_helpers import start_cluster, start_replica
    from tui.commands import attach_cmd

    if shutil.which("openssl") is None:
        pytest.skip("needs openssl for the agent's serving certificate")
    cert = make_serving_cert()
    cluster = await start_cluster()
    replica = await start_replica(cluster.url, [], tls=(cert.cert_file, cert.key_file))
    try:
        assert replica.url.startswith("https://")
        async with AgentClient(replica.url, TOKENS["alice"], deadline_s=2) as blind:
            with pytest.raises(AgentError, match=r"certificate is not trusted.*--agent-ca") as untrusted:
                await blind.whoami()
            assert "GET /api/v1/whoami" in str(untrusted.value)
        async with AgentClient(replica.url, TOKENS["alice"], ca_file=cert.cert_file) as told:
            assert (await told.whoami()).username == "alice"  # --agent-ca
        # through a port-forward: the certificate's name, not the URL's, is what is verified
        named = AgentClient(replica.url, TOKENS["alice"], ca_file=cert.cert_file, tls_server_name="localhost")
        async with named:
            assert (await named.whoami()).username == "alice"
        other = AgentClient(
            replica.url, TOKENS["alice"], ca_file=cert.cert_file, tls_server_name="agent.example"
        )
        async with other:
            with pytest.raises(AgentError, match="not trusted"):
                await other.whoami()
        # the kubeconfig's cluster CA (the agent's certificate signed by the cluster's CA, or the same)
        config = tmp_path / "k.yaml"
        cluster_entry = {
            "server": "https://127.0.0.1:6443",
            "certificate-authority-data": base64.b64encode(cert.ca_pem).decode(),
        }
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": cluster_entry}],
                    "users": [{"name": "bob", "user": {"token": TOKENS["bob"]}}],
                    "contexts": [{"name": "bob", "context": {"cluster": "c", "user": "bob"}}],
                    "current-context": "bob",
                }
            ),
            encoding="utf-8",
        )
        args = attach_cmd_args(["attach", "--agent", replica.url, "--kubeconfig", str(config)])
        client, token, me = await attach_cmd.connect(args, replica.url)  # type: ignore[arg-type]
        await client.close()
        await token.close()
        assert me.username == "bob"
    finally:
        await replica.close()
        await cluster.stop()
        shutil.rmtree(cert.folder, ignore_errors=True)


def test_agent_flags_without_agent_are_bad_input(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["run", "examples/minimal.yaml", "--sim", "--headless", "--context", "alice"]) == 2
    assert "--context go with --agent URL" in capsys.readouterr().err


def test_run_with_agent_refuses_as_and_json_without_headless(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["run", "examples/minimal.yaml", "--agent", "http://127.0.0.1:9", "--as", "bob"]) == 2
    assert "--as does not apply with --agent" in capsys.readouterr().err
    assert main(["run", "examples/minimal.yaml", "--agent", "http://127.0.0.1:9", "--json"]) == 2
    assert "--json needs --headless" in capsys.readouterr().err


def test_a_bare_agent_flag_takes_the_environment_and_without_it_run_stays_embedded(
    monkeypatch: pytest.MonkeyPatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.delenv("DEPLOYDECK_AGENT", raising=False)
    assert main(["run", "examples/minimal.yaml", "--agent", "--headless"]) == 2
    assert "no agent URL" in capsys.readouterr().err
    monkeypatch.setenv("DEPLOYDECK_AGENT", "http://10.9.9.9:8080")  # a bare --agent reads it
    assert main(["run", "examples/minimal.yaml", "--agent", "--headless"]) == 2
    assert "plain HTTP sends your Kubernetes token in the clear" in capsys.readouterr().err


async def test_an_exec_plugin_that_hangs_is_bounded_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.ports import ClusterError
    from tui.commands import attach_cmd

    script = tmp_path / "hang.py"
    script.write_text("import time\ntime.sleep(5)\n", encoding="utf-8")
    config = tmp_path / "k.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [
                    {
                        "name": "u",
                        "user": {
                            "exec": {
                                "apiVersion": "client.authentication.k8s.io/v1beta1",
                                "command": sys.executable,
                                "args": [str(script)],
                                "interactiveMode": "Never",
                            }
                        },
                    }
                ],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setattr(attach_cmd, "CREDENTIAL_DEADLINE_S", 0.5)
    args = attach_cmd_args(["attach", "--agent", "http://127.0.0.1:9", "--kubeconfig", str(config)])
    with pytest.raises(ClusterError, match=r"credential \(exec plugin\) did not answer within 0.5 s"):
        await attach_cmd.connect(args, "http://127.0.0.1:9")  # type: ignore[arg-type]
