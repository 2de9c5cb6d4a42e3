"""A cancellation that lands in the same turn as an answer is not lost in our own adapters.

Python 3.11's ``asyncio.wait_for`` returns the inner result when the inner call completes and the
outer task is cancelled in the same turn of the loop, dropping the cancellation (fixed in 3.12).
The kube adapter, the command runner and the gate runner awaited that way; a signal or a lost
lease then did not stop the caller. Each test completes the call and cancels its caller together.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core.adapters.kubernetes.api import KubeApi
from core.clock import VirtualClock


class _Config:
    host = "https://127.0.0.1:6443"
    api_key: dict[str, str] = {}


class _Response:
    status = 200
    headers: dict[str, str] = {}

    async def read(self) -> bytes:
        return b'{"kind": "Deployment"}'


class _AnswerHeld:
    """An ApiClient whose call_api answers when the test says so."""

    configuration = _Config()

    def __init__(self) -> None:
        self.answer: asyncio.Future[Any] | None = None
        self.asked = asyncio.Event()

    async def param_serialize(self, **kwargs: Any) -> tuple[Any, ...]:
        return kwargs["method"], kwargs["resource_path"], {}, None, None

    async def call_api(self, *args: Any, **kwargs: Any) -> Any:
        self.answer = asyncio.get_running_loop().create_future()
        self.asked.set()
        return await self.answer

    async def close(self) -> None:
        pass


async def _answer_and_cancel_together(
    task: asyncio.Task[Any], answer: asyncio.Future[Any], value: Any
) -> None:
    answer.set_result(value)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_kube_api_call_cancelled_as_its_answer_lands_is_cancelled() -> None:
    client = _AnswerHeld()
    api = KubeApi(client, VirtualClock())
    task = asyncio.ensure_future(api.request("GET", "/apis/apps/v1/namespaces/shop/deployments/checkout"))
    await client.asked.wait()
    assert client.answer is not None
    await _answer_and_cancel_together(task, client.answer, _Response())


async def test_a_gate_runner_cancelled_while_it_abandons_a_timed_out_gate_is_cancelled() -> None:
    """The gate timed out and is being cancelled; it takes a moment to end. A cancellation of the
    runner meanwhile (the deploy stopped) must end the runner, not become an "error" result."""
    from core.gates.base import guarded
    from tests.test_gates_predeploy import make_ctx

    ctx = make_ctx()
    ending = asyncio.Event()
    abandoning = asyncio.Event()

    async def slow_to_end(_ctx: Any) -> Any:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            abandoning.set()
            await ending.wait()
            raise

    runner = asyncio.ensure_future(guarded(ctx, "ci-green", slow_to_end, 5.0))
    await abandoning.wait()
    runner.cancel()
    ending.set()
    with pytest.raises(asyncio.CancelledError):
        await runner
