"""GitHub (or GitHub Enterprise) as the CodeHost port: CI checks and pull-request reviews over httpx.

Every failure becomes a PortError naming the host and the HTTP status; the token
never appears in a message, and URLs are shown as scheme and host only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.adapters.http_probe import redact_url
from core.adapters.tls import verify
from core.domain import CheckRun, Review
from core.ports import PortError

if TYPE_CHECKING:
    import httpx

_MAX_PAGES = 10
_CHECK_CONCLUSION = {
    "success": "success",
    "failure": "failure",
    "timed_out": "failure",
    "cancelled": "failure",
    "action_required": "failure",
    "startup_failure": "failure",
    "stale": "pending",
    "neutral": "neutral",
    "skipped": "skipped",
}
_STATUS_STATE = {"success": "success", "failure": "failure", "error": "error", "pending": "pending"}
_REVIEW_STATES = {"APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING"}


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class GitHubCodeHost:
    def __init__(
        self,
        base_url: str = "https://api.github.com",
        token: str | None = None,
        *,
        timeout_s: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout_s
        self._client = client
        self._own = client is None
        self._where = f"GitHub {redact_url(self._base)}"

    def _http(self) -> httpx.AsyncClient:
        import httpx

        if self._client is None:
            headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            self._client = httpx.AsyncClient(headers=headers, timeout=self._timeout, verify=verify())
        return self._client

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        import httpx

        from core.adapters.deadline import DeadlineExceeded, within

        url = path if path.startswith("http") else f"{self._base}{path}"
        try:
            # httpx's timeout is per read; the whole answer gets one total deadline
            resp = await within(self._timeout, self._http().get(url, params=params), what="GitHub")
        except (httpx.TimeoutException, DeadlineExceeded):
            raise PortError(f"{self._where}: timed out after {self._timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise PortError(f"{self._where}: unreachable ({type(exc).__name__})") from None
        if resp.status_code < 400:
            return resp
        raise PortError(self._error(resp, path))

    def _error(self, resp: httpx.Response, path: str) -> str:
        status = resp.status_code
        where = self._where
        if status == 401:
            return f"{where}: HTTP 401 Unauthorized: the token (gates.ci.token) is missing, wrong or expired"
        remaining = resp.headers.get("x-ratelimit-remaining")
        if status in (403, 429) and (remaining == "0" or "rate limit" in resp.text.lower()):
            reset = resp.headers.get("x-ratelimit-reset")
            retry = resp.headers.get("retry-after")
            when = ""
            if reset and reset.isdigit():
                at = datetime.fromtimestamp(int(reset), tz=UTC)
                when = f"; resets at {at:%H:%M:%S} UTC"
            elif retry and retry.isdigit():
                when = f"; retry after {retry}s"
            return f"{where}: HTTP {status} rate limit exhausted{when}"
        if status == 403:
            return f"{where}: HTTP 403 Forbidden: the token cannot read {self._scrub(path.split('?')[0])}"
        if status == 404:
            return f"{where}: HTTP 404 Not Found: {self._scrub(path.split('?')[0])} (wrong repo, commit or PR, or no access)"
        return f"{where}: HTTP {status} for {self._scrub(path.split('?')[0])}"

    async def _paged(self, path: str, key: str | None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = path
        params: dict[str, Any] | None = {"per_page": 100}
        for _ in range(_MAX_PAGES):
            if url is None:
                break
            resp = await self._get(url, params)
            try:
                data = resp.json()
            except ValueError:
                raise PortError(f"{self._where}: answer to {path} is not JSON") from None
            page = data.get(key, []) if key and isinstance(data, dict) else data
            if not isinstance(page, list):
                raise PortError(f"{self._where}: unexpected answer shape for {path}")
            items += [i for i in page if isinstance(i, dict)]
            nxt = resp.links.get("next", {}).get("url")
            url, params = (nxt, None) if nxt else (None, None)
        return items

    async def checks(self, repo: str, commit: str) -> list[CheckRun]:
        runs: list[CheckRun] = []
        for item in await self._paged(f"/repos/{repo}/commits/{commit}/check-runs", "check_runs"):
            if item.get("status") != "completed":
                state = "pending"
            else:
                state = _CHECK_CONCLUSION.get(str(item.get("conclusion")), "failure")
            runs.append(
                CheckRun(name=str(item.get("name", "?")), state=state, url=str(item.get("html_url") or ""))
            )
        # legacy commit statuses (Jenkins, external CI): the combined endpoint has the latest per context
        resp = await self._get(f"/repos/{repo}/commits/{commit}/status", {"per_page": 100})
        try:
            statuses = resp.json().get("statuses", [])
        except (ValueError, AttributeError):
            raise PortError(f"{self._where}: commit status answer is not JSON") from None
        for st in statuses:
            if isinstance(st, dict):
                runs.append(
                    CheckRun(
                        name=str(st.get("context", "?")),
                        state=_STATUS_STATE.get(str(st.get("state")), "error"),
                        url=str(st.get("target_url") or ""),
                    )
                )
        return runs

    async def reviews(self, repo: str, pull_request: int) -> list[Review]:
        """Reviews that count: not by the PR author, and approvals only on the PR's current head."""
        pr = (await self._get(f"/repos/{repo}/pulls/{pull_request}")).json()
        head = str(((pr.get("head") or {}).get("sha")) or "")
        author = str(((pr.get("user") or {}).get("login")) or "")
        out: list[Review] = []
        for item in await self._paged(f"/repos/{repo}/pulls/{pull_request}/reviews", None):
            login = str((item.get("user") or {}).get("login") or "")
            state = str(item.get("state", ""))
            commit = str(item.get("commit_id") or "")
            if not login or login == author or state not in _REVIEW_STATES:
                continue
            if state == "APPROVED" and head and commit and commit != head:
                continue  # approved an older push: it says nothing about the code being deployed
            out.append(
                Review(
                    reviewer=login,
                    state=state,
                    commit=commit,
                    submitted_at=_parse_time(item.get("submitted_at")),
                )
            )
        return out

    async def close(self) -> None:
        if self._client is not None and self._own:
            await self._client.aclose()
            self._client = None
