"""Short-lived credentials renewed through kubernetes.aio's loader (issue 10 item 4).

An exec plugin (a small script here, like `aws eks get-token`) hands out a new token each run. The
simulated API server accepts one token at a time: the test rotates it mid-rollout (the server's
`tokens` table, changed from the test: no simulator code involved), so the old token gets 401s
from then on, as an expired EKS token does. The adapter renews once through the loader and the
rollout completes.
"""

from __future__ import annotations

import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import certifi
import pytest
import yaml

from core.adapters.kubernetes import KubeCluster
from core.clock import VirtualClock
from core.ports import ClusterError
from core.sim.kube.controller import DEPLOYMENTS
from tests.kube_helpers import CANARY, NS, STABLE, Sim, start_sim
from tests.ready_capacity import ReadyCapacity
from tests.test_ready_capacity import drive

PLUGIN = """#!{python}
import json, pathlib, sys
counter = pathlib.Path(sys.argv[1])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
token = sys.argv[2] if len(sys.argv) > 2 else f"tok-{{n}}"
# a far expiry: the client has no reason to renew early; only the server's 401 tells it
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {{"token": token, "expirationTimestamp": "2099-01-01T00:00:00Z"}}}}))
"""


def exec_kubeconfig(s: Sim, tmp: Path, *fixed: str) -> tuple[Path, Path]:
    script = tmp / "get-token"
    script.write_text(PLUGIN.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    counter = tmp / "runs"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sim", "cluster": {"server": s.server.url}}],
        "users": [
            {
                "name": "eks",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": str(script),
                        "args": [str(counter), *fixed],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "eks"}}],
        "current-context": "sim",
    }
    path = tmp / "exec-config"
    path.write_text(yaml.safe_dump(config))
    return path, counter


def rotate(s: Sim, token: str) -> None:
    """The old token expires: from now on the server accepts only the new one."""
    s.server.tokens.clear()
    s.server.tokens[token] = None


async def test_token_expiring_mid_rollout_is_renewed_and_the_rollout_completes(tmp_path: Path) -> None:
    clock = VirtualClock()
    s = await start_sim(tmp_path, tokens={"tok-1": None}, pod_ready_delay_s=3, clock=clock)
    try:
        config, counter = exec_kubeconfig(s, tmp_path)
        cluster = await KubeCluster.connect(s.target("replicas"), kubeconfig=str(config), clock=clock)
        expired: list[int] = []

        def expire_at_25(change: Any) -> None:
            # mid-step: the canary has just been scaled to 3 pods (25 %), the waits come next
            if change.res == (DEPLOYMENTS.group, DEPLOYMENTS.plural) and not expired:
                obj = change.obj
                if obj["metadata"]["name"] == CANARY and obj["spec"].get("replicas") == 3:
                    expired.append(1)
                    rotate(s, "tok-2")

        s.server.store.listeners.append(expire_at_25)
        try:
            with ReadyCapacity(s, "replicas", 10) as watch:
                assert await drive(cluster) is None  # every step, promotion, weight back to 0
            watch.assert_held()
        finally:
            await cluster.close()
        assert expired
        assert counter.read_text() == "2"  # the plugin ran at connect and once after the 401
        assert cluster.api.credentials.refreshes == 1
        assert s.server.deployment_image(NS, STABLE) == "shop:2.0"
    finally:
        await s.server.stop()


async def test_a_token_still_rejected_after_renewal_is_final_not_retried_forever(tmp_path: Path) -> None:
    s = await start_sim(tmp_path, tokens={"static": None})
    try:
        config, counter = exec_kubeconfig(s, tmp_path, "static")  # the plugin keeps giving the same
        cluster = await KubeCluster.connect(
            s.target("replicas"), kubeconfig=str(config), clock=VirtualClock()
        )
        try:
            await cluster.describe()
            rotate(s, "something-else")
            with pytest.raises(ClusterError, match=r"HTTP 401\) to get deployments.apps .*still rejected"):
                await cluster.describe()
            assert counter.read_text() == "2" and cluster.api.credentials.refreshes == 0
        finally:
            await cluster.close()
    finally:
        await s.server.stop()


async def test_in_cluster_config_reads_and_renews_the_service_account_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.adapters.kubernetes import credentials

    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("first")
    shutil.copyfile(certifi.where(), sa / "ca.crt")  # any valid PEM bundle
    monkeypatch.setattr(credentials, "SA_DIR", sa)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config: in-cluster is next, as kubectl
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    api_client, creds = await credentials.load(None, None)
    try:
        cfg = api_client.configuration
        assert cfg.host == "https://10.96.0.1:443"
        assert cfg.ssl_ca_cert == str(sa / "ca.crt")
        assert cfg.api_key["BearerToken"] == "bearer first"
        (sa / "token").write_text("rotated")  # the kubelet rotates the projected token
        assert await creds.refresh() is True
        assert cfg.api_key["BearerToken"] == "bearer rotated"
    finally:
        await api_client.close()
