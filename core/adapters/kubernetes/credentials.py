"""Cluster credentials through kubernetes.aio's own loaders, kept for the whole session (issue 10 item 4).

Short-lived credentials (EKS `aws eks get-token`, GKE's gke-gcloud-auth-plugin, OIDC id-tokens,
projected ServiceAccount tokens) expire during a rollout. The loader that read them knows how to
get new ones, so it is kept rather than discarded after the first read:

- before a request: a credential whose own expiry has passed is renewed (exec plugins that state
  an `expirationTimestamp`, OIDC id-tokens, gcp); the in-cluster loader re-reads its token file
  each minute itself;
- on a 401: the credential is renewed once (the exec plugin run again, the token file re-read)
  and the request retried; a second 401 is final and says so.

One client per (kubeconfig, context) and event loop (issue 12/15): ``shared`` hands out handles on a
pooled ApiClient, so staging and production on the same context, and an agent's hundred runs, share
one aiohttp session, one SSL context (the CA bundle is loaded once, ~55 ms and ~0.8 MB each) and one
loader; the last handle closed closes it. A kubeconfig file that changed (another server's, a rotated
refresh token written back) is another key: a new client, never the stale one.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import sys
import weakref
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

    async def refresh(self, sent: str | None = None) -> bool:
        """After a 401: renew now. True when the token changed (worth one retry).

        ``sent``: the token the rejected request carried. A client shared by several callers may
        have been renewed by another one meanwhile: then the token is new already, worth a retry,
        and the loader (an exec plugin, the token file) is not run again for nothing."""
        async with self._lock:
            before = self._token()
            if sent is not None and before != sent:
                return True
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


async def load(
    kubeconfig: str | None, context: str | None, *, pool_limit: int | None = None
) -> tuple[Any, Credentials]:
    """(ApiClient, Credentials) from a kubeconfig (every $KUBECONFIG path), else in-cluster config.

    ``pool_limit``: the client's most simultaneous connections (kubernetes.aio's default 100;
    0: no limit)."""
    _light_kubernetes()
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
    if pool_limit is not None:
        cfg.connection_pool_maxsize = pool_limit
    creds = Credentials(cfg, loader)
    if cfg.refresh_api_key_hook is None:  # the in-cluster loader sets its own
        cfg.refresh_api_key_hook = creds.before_request
    return client.ApiClient(configuration=cfg), creds


def incluster_loader(directory: Path) -> Any:
    """kubernetes.aio's in-cluster loader on a ServiceAccount directory (token, ca.crt)."""
    _light_kubernetes()
    from kubernetes.aio.config.incluster_config import InClusterConfigLoader

    return InClusterConfigLoader(
        token_filename=str(directory / "token"), cert_filename=str(directory / "ca.crt")
    )


async def load_incluster(directory: Path) -> tuple[Any, Credentials]:
    """For tests and tools that point at a ServiceAccount directory other than the standard one."""
    _light_kubernetes()
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


def _light_kubernetes() -> None:
    """Import kubernetes.aio without the synchronous client's package init (~150 ms: requests,
    urllib3, oauthlib, the sync config loaders; issue 15's start-up). kubernetes.aio imports
    nothing from it. The parent package is registered unexecuted; the first attribute read on it
    that is not a loaded submodule (``kubernetes.config``, ``from kubernetes import client``)
    runs its own __init__ then, so a caller of the sync client still gets the whole package."""
    if "kubernetes" in sys.modules:
        return
    spec = importlib.util.find_spec("kubernetes")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def complete(name: str) -> Any:
        loaded = sys.modules.get(f"kubernetes.{name}")
        if loaded is not None:  # `import kubernetes.aio.x as y` while kubernetes.aio is loading
            return loaded
        module.__dict__.pop("__getattr__", None)
        loader.exec_module(module)
        return module.__dict__[name] if name in module.__dict__ else getattr(module, name)

    module.__getattr__ = complete  # type: ignore[attr-defined]
    sys.modules["kubernetes"] = module


# --- one client per (kubeconfig, context) -------------------------------------------------------


class _Entry:
    """One pooled ApiClient, its Credentials and how many handles are open on it."""

    def __init__(self, key: tuple[Any, ...], pool: dict[tuple[Any, ...], _Entry]) -> None:
        self.key = key
        self.pool = pool
        self.client: Any = None
        self.credentials: Credentials | None = None
        self.refs = 0
        self.lock = asyncio.Lock()

    async def release(self) -> None:
        self.refs -= 1
        if self.refs > 0:
            return
        if self.pool.get(self.key) is self:
            del self.pool[self.key]
        client, self.client = self.client, None
        if client is not None:
            await client.close()


class SharedClient:
    """A handle on a pooled ApiClient: reads and calls go to it; close() gives the handle back
    (once), and the client itself closes with its last handle."""

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry
        self._client = entry.client
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._entry.release()


#: per event loop (an aiohttp session belongs to the loop that made it)
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], _Entry]] = (
    weakref.WeakKeyDictionary()
)


def _key(kubeconfig: str | None, context: str | None) -> tuple[Any, ...]:
    """What the loader would read, as it is now: every kubeconfig file's identity and version."""
    path = kubeconfig or (os.environ.get("KUBECONFIG", "").strip(os.pathsep) or None)
    files = path.split(os.pathsep) if path else [str(Path.home() / ".kube" / "config")]
    stamps: list[tuple[Any, ...]] = []
    for name in files:
        try:
            st = os.stat(name)
        except OSError:
            stamps.append((os.path.abspath(name), None))
            continue
        stamps.append((os.path.abspath(name), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
    if not path and stamps[0][1] is None:  # in-cluster: its token file renews itself
        return ("in-cluster", str(SA_DIR), os.environ.get("KUBERNETES_SERVICE_HOST"), context)
    return (tuple(stamps), context)


async def shared(kubeconfig: str | None, context: str | None) -> tuple[SharedClient, Credentials]:
    """(handle, Credentials) on the one client of this kubeconfig and context; as `load` otherwise."""
    key = _key(kubeconfig, context)
    pool = _POOLS.setdefault(asyncio.get_running_loop(), {})
    entry = pool.get(key)
    if entry is None:
        entry = pool[key] = _Entry(key, pool)
    entry.refs += 1
    try:
        async with entry.lock:  # concurrent first users wait for one load
            if entry.client is None:
                # no connection cap: each user had its own 100 before; a shared cap of 100 would
                # queue a hundred runs' lease renewals behind each other's reads on a slow server
                entry.client, entry.credentials = await load(kubeconfig, context, pool_limit=0)
    except BaseException:
        entry.refs -= 1
        if entry.refs == 0 and pool.get(key) is entry:
            del pool[key]
        raise
    assert entry.credentials is not None
    return SharedClient(entry), entry.credentials
