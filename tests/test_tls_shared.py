"""One verified TLS context per process for the HTTP clients (issue 12: ~0.8 MB and ~45 ms each)."""

from __future__ import annotations

import ssl

from core.adapters.alertmanager import AlertmanagerAlerts
from core.adapters.github import GitHubCodeHost
from core.adapters.http_probe import HttpProbe
from core.plan import AlertmanagerSpec


def _context(client: object) -> ssl.SSLContext:
    return client._transport._pool._ssl_context  # type: ignore[attr-defined]


async def test_clients_share_one_verifying_context_and_an_unverified_probe_keeps_its_own() -> None:
    spec = AlertmanagerSpec(url="https://alertmanager.example.com", timeout=5)
    first, second = AlertmanagerAlerts(spec), AlertmanagerAlerts(spec)
    probe, insecure = HttpProbe(), HttpProbe(verify_tls=False)
    github = GitHubCodeHost("https://api.github.com", "token")
    clients = [first._client, second._client, probe._get_client(), github._http(), insecure._get_client()]
    try:
        shared = _context(first._client)
        assert all(_context(c) is shared for c in clients[:4])  # one CA bundle load for all
        assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname
        assert shared.cert_store_stats()["x509_ca"] > 0  # certifi's bundle (or $SSL_CERT_FILE's)
        unverified = _context(clients[4])
        assert unverified is not shared and unverified.verify_mode == ssl.CERT_NONE
    finally:
        for client in clients:
            await client.aclose()
