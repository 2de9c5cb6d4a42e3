"""GitHubCodeHost against recorded GitHub API answers (respx; no network)."""

from __future__ import annotations

import httpx
import pytest
import respx

from core.adapters.github import GitHubCodeHost
from core.ports import PortError

API = "https://ghe.example.com/api/v3"
TOKEN = "ghp_supersecrettoken123"
SHA = "9f3c2ab4d1e0aa"

CHECK_RUNS = {
    "total_count": 4,
    "check_runs": [
        {"name": "lint", "status": "completed", "conclusion": "success", "html_url": "https://ghe/r/1"},
        {"name": "tests", "status": "in_progress", "conclusion": None, "html_url": "https://ghe/r/2"},
        {"name": "sast", "status": "completed", "conclusion": "timed_out", "html_url": "https://ghe/r/3"},
        {"name": "coverage", "status": "completed", "conclusion": "skipped", "html_url": "https://ghe/r/4"},
    ],
}
STATUSES = {
    "state": "success",
    "statuses": [{"context": "dependency-scan", "state": "success", "target_url": "https://jenkins/91"}],
}
PULL = {"number": 7, "user": {"login": "alice"}, "head": {"sha": SHA}}
REVIEWS = [
    {
        "user": {"login": "bob"},
        "state": "APPROVED",
        "commit_id": "0ld5ha",
        "submitted_at": "2026-11-20T09:00:00Z",
    },
    {
        "user": {"login": "carol"},
        "state": "APPROVED",
        "commit_id": SHA,
        "submitted_at": "2026-11-21T09:00:00Z",
    },
    {
        "user": {"login": "alice"},
        "state": "APPROVED",
        "commit_id": SHA,
        "submitted_at": "2026-11-21T10:00:00Z",
    },
    {
        "user": {"login": "dan"},
        "state": "CHANGES_REQUESTED",
        "commit_id": "0ld5ha",
        "submitted_at": "2026-11-19T09:00:00Z",
    },
]


@respx.mock
async def test_checks_merge_check_runs_and_commit_statuses_and_send_the_token():
    runs = respx.get(f"{API}/repos/shop/checkout/commits/{SHA}/check-runs").mock(
        return_value=httpx.Response(200, json=CHECK_RUNS)
    )
    respx.get(f"{API}/repos/shop/checkout/commits/{SHA}/status").mock(
        return_value=httpx.Response(200, json=STATUSES)
    )
    host = GitHubCodeHost(API, TOKEN)
    try:
        got = await host.checks("shop/checkout", SHA)
    finally:
        await host.close()
    assert [(c.name, c.state) for c in got] == [
        ("lint", "success"),
        ("tests", "pending"),
        ("sast", "failure"),
        ("coverage", "skipped"),
        ("dependency-scan", "success"),
    ]
    request = runs.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.url.params["per_page"] == "100"


@respx.mock
async def test_check_runs_follow_pagination():
    first = f"{API}/repos/o/r/commits/{SHA}/check-runs"
    page2 = f"{API}/repositories/1/commits/{SHA}/check-runs?page=2"
    respx.get(page2).mock(
        return_value=httpx.Response(
            200, json={"check_runs": [{"name": "e2e", "status": "completed", "conclusion": "failure"}]}
        )
    )
    respx.get(first).mock(
        return_value=httpx.Response(200, json=CHECK_RUNS, headers={"Link": f'<{page2}>; rel="next"'})
    )
    respx.get(f"{API}/repos/o/r/commits/{SHA}/status").mock(
        return_value=httpx.Response(200, json={"statuses": []})
    )
    host = GitHubCodeHost(API, TOKEN)
    try:
        got = await host.checks("o/r", SHA)
    finally:
        await host.close()
    assert [c.name for c in got][-1] == "e2e" and len(got) == 5


@respx.mock
async def test_reviews_exclude_the_author_and_stale_approvals():
    respx.get(f"{API}/repos/shop/checkout/pulls/7").mock(return_value=httpx.Response(200, json=PULL))
    respx.get(f"{API}/repos/shop/checkout/pulls/7/reviews").mock(
        return_value=httpx.Response(200, json=REVIEWS)
    )
    host = GitHubCodeHost(API, TOKEN)
    try:
        got = await host.reviews("shop/checkout", 7)
    finally:
        await host.close()
    assert [(r.reviewer, r.state) for r in got] == [("carol", "APPROVED"), ("dan", "CHANGES_REQUESTED")]
    assert got[0].commit == SHA and got[0].submitted_at is not None and got[0].submitted_at.day == 21


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            httpx.Response(401, json={"message": "Bad credentials"}),
            "HTTP 401 Unauthorized: the token (gates.ci.token)",
        ),
        (
            httpx.Response(
                403,
                json={"message": "API rate limit exceeded"},
                headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1795000000"},
            ),
            "HTTP 403 rate limit exhausted; resets at 11:06:40 UTC",
        ),
        (
            httpx.Response(403, json={"message": "Resource not accessible"}),
            "HTTP 403 Forbidden: the token cannot read",
        ),
        (
            httpx.Response(404, json={"message": "Not Found"}),
            "HTTP 404 Not Found: /repos/shop/checkout/commits/",
        ),
        (httpx.Response(502, text="bad gateway"), "HTTP 502 for /repos/shop/checkout/commits/"),
    ],
)
@respx.mock
async def test_errors_are_clear_and_never_show_the_token(response, expected):
    respx.get(url__startswith=API).mock(return_value=response)
    host = GitHubCodeHost(API, TOKEN)
    with pytest.raises(PortError) as info:
        await host.checks("shop/checkout", SHA)
    await host.close()
    message = str(info.value)
    assert message.startswith("GitHub https://ghe.example.com: ")
    assert expected in message
    assert TOKEN not in message and "/api/v3" not in message.split(": ")[0]


@respx.mock
async def test_timeouts_and_unreachable_hosts():
    respx.get(url__startswith=API).mock(side_effect=httpx.ReadTimeout("slow"))
    host = GitHubCodeHost(API, TOKEN, timeout_s=3)
    with pytest.raises(PortError, match=r"GitHub https://ghe.example.com: timed out after 3s"):
        await host.reviews("shop/checkout", 7)
    respx.get(url__startswith=API).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(PortError, match=r"unreachable \(ConnectError\)"):
        await host.reviews("shop/checkout", 7)
    await host.close()


@respx.mock
async def test_non_json_answers_are_port_errors():
    respx.get(url__startswith=API).mock(return_value=httpx.Response(200, text="<html>login</html>"))
    host = GitHubCodeHost(API, TOKEN)
    with pytest.raises(PortError, match="is not JSON"):
        await host.checks("shop/checkout", SHA)
    await host.close()
