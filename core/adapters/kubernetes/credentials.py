"""Cluster credentials through kubernetes.aio's own loaders, kept for the whole session (issue 10 item 4).

Short-lived credentials (EKS `aws eks get-token`, GKE's gke-gcloud-auth-plugin, OIDC id-tokens,
projected ServiceAccount tokens) expire during a rollout. The loader that read them knows how to
get new ones, so it is kept rather than discarded after the first read:

- before a request: a credential whose own expiry has passed is renewed (exec plugins that state
  an `expirationTimestamp`, OIDC id-tokens, gcp); the in-cluster loader re-reads its token file
  each minute itself;
- on a 401: the credential is renewed once (the exec plugin run again, the token file re-read)
  and the request retried; a second 401 is final and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from core.ports import ClusterError

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class Credentials:
    """Refreshes the bearer token of one client Configuration through the loader that made it."""

    def __init__(self, configuration: Any, loader: Any) -> None:
        self.configuration = configuration
        self.loader = loader
        self._lock = asyncio.Lock()
        self.refreshes = 0  # renewals after a 401 (tests and the report read it)

    def _token(self) -> str | None:
        return self.configuration.api_key.get("BearerToken")

    def _exec(self) -> bool:
        user = getattr(self.loader, "_user", None)
        return bool(user) and "exec" in user

    async def before_request(self, configuration: Any) -> None:
        """The Configuration's refresh hook: renew what has its own expiry, and only then."""
        loader = self.loader
        if not hasattr(loader, "_load_authentication"):
            return
        provider = getattr(loader, "provider", None)
        expiring_exec = self._exec() and hasattr(loader, "exec_plugin_expiry")
        if not (expiring_exec or provider in {"oidc", "gcp"}):
            return  # static tokens, and exec plugins without an expiry, renew on a 401 only
        async with self._lock:
            await loader._load_authentication()  # each provider checks its own expiry first
            if getattr(loader, "token", None):
                configuration.api_key["BearerToken"] = loader.token

    async def refresh(self) -> bool:
        """After a 401: renew now. True when the token changed (worth one retry)."""
        async with self._lock:
            before = self._token()
            loader = self.loader
            if hasattr(loader, "_read_token_file"):  # in-cluster: the kubelet rotated the file
                loader._read_token_file()
                loader._set_config(self.configuration)
            elif hasattr(loader, "_load_authentication"):
                if hasattr(loader, "exec_plugin_expiry"):
                    del loader.exec_plugin_expiry  # the server says it is over, whatever it claimed
                await loader._load_authentication()
                if getattr(loader, "token", None):
                    self.configuration.api_key["BearerToken"] = loader.token
            changed = self._token() != before
            if changed:
                self.refreshes += 1
            return changed


async def load(kubeconfig: str | None, context: str | None) -> tuple[Any, Credentials]:
    """(ApiClient, Credentials) from a kubeconfig (every $KUBECONFIG path), else in-cluster config."""
    from kubernetes.aio import client, config
    from kubernetes.aio.config.config_exception import ConfigException

    cfg = client.Configuration()
    # the whole $KUBECONFIG list: the loader merges every file in it, as kubectl does
    path = kubeconfig or (os.environ.get("KUBECONFIG", "").strip(os.pathsep) or None)
    default = Path.home() / ".kube" / "config"
    try:
        if path or default.exists():
            loader = await config.load_kube_config(
                config_file=path or str(default),
                context=context,
                client_configuration=cfg,
                # as kubectl: a rotated OIDC refresh token is written back, or the next run fails
                persist_config=True,
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            loader = incluster_loader(SA_DIR)
            loader.load_and_set(cfg)
        else:
            raise ClusterError(
                "no kubeconfig: set cluster.kubeconfig in the plan, $KUBECONFIG, or ~/.kube/config"
            )
    except ConfigException as exc:
        raise ClusterError(f"kubeconfig {path or default}: {exc}") from None
    except OSError as exc:
        raise ClusterError(f"kubeconfig {path or default}: {exc.strerror or exc}") from None
    creds = Credentials(cfg, loader)
    if cfg.refresh_api_key_hook is None:  # the in-cluster loader sets its own
        cfg.refresh_api_key_hook = creds.before_request
    return client.ApiClient(configuration=cfg), creds


def incluster_loader(directory: Path) -> Any:
    """kubernetes.aio's in-cluster loader on a ServiceAccount directory (token, ca.crt)."""
    from kubernetes.aio.config.incluster_config import InClusterConfigLoader

    return InClusterConfigLoader(
        token_filename=str(directory / "token"), cert_filename=str(directory / "ca.crt")
    )


async def load_incluster(directory: Path) -> tuple[Any, Credentials]:
    """For tests and tools that point at a ServiceAccount directory other than the standard one."""
    from kubernetes.aio import client
    from kubernetes.aio.config.config_exception import ConfigException

    cfg = client.Configuration()
    loader = incluster_loader(directory)
    try:
        loader.load_and_set(cfg)
    except ConfigException as exc:
        raise ClusterError(f"in-cluster config: {exc}") from None
    with contextlib.suppress(AttributeError):
        cfg.refresh_api_key_hook = cfg.refresh_api_key_hook or Credentials(cfg, loader).before_request
    return client.ApiClient(configuration=cfg), Credentials(cfg, loader)
