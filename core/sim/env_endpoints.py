"""The small HTTP peers of `deploydeck sim serve` that are not Kubernetes or Prometheus.

One aiohttp app on loopback serves what the real adapters talk to:

- a GitHub-compatible REST subset (``/github``): check runs, commit statuses, the pull
  request and its reviews, answered for the environment's one change and checked
  against its token, so the real :class:`GitHubCodeHost` runs unchanged;
- a team channel (``/webhook/<name>``) that records every message it is sent;
- the change's dependencies (``/deps/<name>/health/ready``), a synthetic order and an
  E2E endpoint (``/e2e``) the plan's E2E command calls;
- an Alertmanager v2 subset (``/alertmanager/api/v2/alerts``, no alerts) used only when
  the real binary is missing;
- a control API (``/control``) for `sim scenario`, fault injection on the simulated API
  server and the audit of cluster writes (who wrote what, when).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

#: the checks `gates.ci.required_checks` asks for by default, all green on the change's commit
CHECKS = ("lint", "tests", "sast", "dependency-scan", "coverage")


class Endpoints:
    """State and handlers; ``switch_scenario`` and ``set_faults`` are the environment's."""

    def __init__(
        self,
        *,
        token: str,
        repo: str,
        commit: str,
        pull_request: int,
        author: str,
        reviewer: str,
        switch_scenario: Callable[[str], str],
        set_faults: Callable[[dict[str, Any]], dict[str, Any]],
        audit: Callable[[], list[dict[str, Any]]],
        status: Callable[[], dict[str, Any]],
    ) -> None:
        self.token = token
        self.repo = repo
        self.commit = commit
        self.pull_request = pull_request
        self.author = author
        self.reviewer = reviewer
        self.switch_scenario = switch_scenario
        self.set_faults = set_faults
        self.audit = audit
        self.status = status
        #: every message a webhook received: {"channel", "at" (epoch s), "body"}
        self.messages: list[dict[str, Any]] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        r = app.router
        r.add_get("/github/repos/{owner}/{repo}/commits/{sha}/check-runs", self._check_runs)
        r.add_get("/github/repos/{owner}/{repo}/commits/{sha}/status", self._statuses)
        r.add_get("/github/repos/{owner}/{repo}/pulls/{number}", self._pull)
        r.add_get("/github/repos/{owner}/{repo}/pulls/{number}/reviews", self._reviews)
        r.add_post("/webhook/{channel}", self._webhook)
        r.add_get("/deps/{name}/health/ready", self._dependency)
        r.add_get("/synthetic/order", self._synthetic)
        r.add_get("/e2e", self._e2e)
        r.add_get("/alertmanager/api/v2/alerts", self._alerts)
        r.add_get("/alertmanager/-/ready", self._ok)
        r.add_get("/control/status", self._status)
        r.add_post("/control/scenario", self._scenario)
        r.add_post("/control/faults", self._faults)
        r.add_get("/control/audit", self._audit)
        r.add_get("/control/messages", self._messages)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- GitHub ----------------------------------------------------------------

    def _github_guard(self, request: web.Request) -> web.Response | None:
        """GitHub's answers for a wrong token or another repository: 401, then 404."""
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"message": "Bad credentials"}, status=401)
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        if repo != self.repo:
            return web.json_response({"message": "Not Found"}, status=404)
        return None

    async def _check_runs(self, request: web.Request) -> web.Response:
        if (denied := self._github_guard(request)) is not None:
            return denied
        if request.match_info["sha"] != self.commit:
            return web.json_response({"total_count": 0, "check_runs": []})
        runs = [
            {
                "name": name,
                "status": "completed",
                "conclusion": "success",
                "html_url": f"{self.base_url}/github/{self.repo}/runs/{i}",
            }
            for i, name in enumerate(CHECKS, start=1)
        ]
        return web.json_response({"total_count": len(runs), "check_runs": runs})

    async def _statuses(self, request: web.Request) -> web.Response:
        if (denied := self._github_guard(request)) is not None:
            return denied
        return web.json_response({"state": "success", "statuses": []})

    async def _pull(self, request: web.Request) -> web.Response:
        if (denied := self._github_guard(request)) is not None:
            return denied
        if request.match_info["number"] != str(self.pull_request):
            return web.json_response({"message": "Not Found"}, status=404)
        return web.json_response(
            {"number": self.pull_request, "user": {"login": self.author}, "head": {"sha": self.commit}}
        )

    async def _reviews(self, request: web.Request) -> web.Response:
        if (denied := self._github_guard(request)) is not None:
            return denied
        if request.match_info["number"] != str(self.pull_request):
            return web.json_response({"message": "Not Found"}, status=404)
        review = {
            "user": {"login": self.reviewer},
            "state": "APPROVED",
            "commit_id": self.commit,
            "submitted_at": "2026-01-05T09:00:00Z",
        }
        return web.json_response([review])

    # --- team channel, dependencies, synthetics ---------------------------------

    async def _webhook(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        self.messages.append({"channel": request.match_info["channel"], "at": time.time(), "body": body})
        return web.Response(text="ok")  # what Slack's incoming webhooks answer

    async def _dependency(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ready", "name": request.match_info["name"]})

    async def _synthetic(self, request: web.Request) -> web.Response:
        # compact, as most APIs answer: the plan's synthetic check looks for '"ok":true'
        return web.Response(text='{"ok":true,"order":"sim-0001"}', content_type="application/json")

    async def _e2e(self, request: web.Request) -> web.Response:
        return web.Response(text="e2e: 12 passed\n")

    async def _alerts(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    # --- control ---------------------------------------------------------------

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())

    async def _scenario(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError('send a JSON object: {"name": SCENARIO}')
            title = self.switch_scenario(str(body.get("name", "")))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"scenario": body.get("name"), "title": title})

    async def _faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("send a JSON object of FaultConfig fields")
            return web.json_response(self.set_faults(body))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def _audit(self, request: web.Request) -> web.Response:
        return web.json_response(self.audit())

    async def _messages(self, request: web.Request) -> web.Response:
        return web.json_response(self.messages)
