"""One verified TLS context per process for the HTTP clients (issue 12).

``httpx.AsyncClient()`` builds its own SSL context from certifi's bundle: ~45 ms of CPU and ~0.8 MB
of RSS each (benchmarks/bench_agent_memory.py). The agent made three per DeployRun (Alertmanager,
GitHub, the health probe) and one per notification. A context may serve many clients; the shared
one is built as httpx builds its default (certifi, or $SSL_CERT_FILE / $SSL_CERT_DIR when set).
"""

from __future__ import annotations

import functools
import ssl
from typing import Any


@functools.cache
def _verified() -> ssl.SSLContext:
    import httpx

    return httpx.create_ssl_context()


def verify(setting: Any = True) -> Any:
    """httpx's ``verify=``: the shared context for the default (True), anything else as given."""
    return _verified() if setting is True else setting
