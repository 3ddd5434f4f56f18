"""Live pushes (tenants.events): queued without waiting, sent in order, a failure never blocks the rest."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from typing import Any

import pytest
from channels.layers import get_channel_layer

from tenants import events


def received(group: str, count: int, push: Any) -> list[dict[str, Any]]:
    """Join `group` on the real channel layer, call `push()`, and return the first `count` events."""
    layer = get_channel_layer()
    assert layer is not None

    async def listen() -> list[dict[str, Any]]:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        try:
            await asyncio.to_thread(push)
            return [(await asyncio.wait_for(layer.receive(channel), 10))["event"] for _ in range(count)]
        finally:
            await layer.group_discard(group, channel)

    return asyncio.run(listen())


def test_pushes_are_queued_at_once_and_arrive_in_the_order_they_were_made() -> None:
    group = f"test-order-{secrets.token_hex(4)}"

    def push() -> None:
        started = time.perf_counter()
        for n in range(40):
            events.send_now(group, {"type": "run.changed", "run_id": str(n), "status": "running"})
        # The caller never waited for Redis: 40 pushes queue in far less than one round trip each.
        assert time.perf_counter() - started < 0.2
        assert events.wait_pushed(10)

    got = received(group, 40, push)
    assert [event["run_id"] for event in got] == [str(n) for n in range(40)]


def test_pushes_from_many_threads_all_arrive() -> None:
    group = f"test-threads-{secrets.token_hex(4)}"

    def push() -> None:
        def some(thread: int) -> None:
            for n in range(10):
                events.send_now(group, {"type": "run.changed", "run_id": f"{thread}-{n}", "status": "running"})

        threads = [threading.Thread(target=some, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert events.wait_pushed(10)

    got = received(group, 40, push)
    assert sorted(event["run_id"] for event in got) == sorted(f"{t}-{n}" for t in range(4) for n in range(10))
    for thread in range(4):  # each thread's own pushes in its order
        mine = [event["run_id"] for event in got if event["run_id"].startswith(f"{thread}-")]
        assert mine == [f"{thread}-{n}" for n in range(10)]


def test_a_failed_push_is_logged_and_the_next_ones_still_go(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    group = f"test-failure-{secrets.token_hex(4)}"
    layer = get_channel_layer()
    assert layer is not None
    real = layer.group_send

    async def flaky(name: str, message: dict[str, Any]) -> None:
        if message["event"]["run_id"] == "broken":
            raise OSError("connection reset")
        await real(name, message)

    def push() -> None:
        monkeypatch.setattr(layer, "group_send", flaky)
        with caplog.at_level(logging.WARNING, logger="tenants.events"):
            for run_id in ("first", "broken", "last"):
                events.send_now(group, {"type": "run.changed", "run_id": run_id, "status": "running"})
            assert events.wait_pushed(10)

    got = received(group, 2, push)
    assert [event["run_id"] for event in got] == ["first", "last"]
    assert any("live push to" in record.message and record.levelno == logging.WARNING for record in caplog.records)


def test_the_caller_does_not_wait_for_a_slow_channel_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run step or a console action commits and goes on; its push follows when Redis answers."""
    group = f"test-slow-{secrets.token_hex(4)}"
    layer = get_channel_layer()
    assert layer is not None
    real = layer.group_send

    async def slow(name: str, message: dict[str, Any]) -> None:
        await asyncio.sleep(0.3)
        await real(name, message)

    def push() -> None:
        monkeypatch.setattr(layer, "group_send", slow)
        started = time.perf_counter()
        events.send_now(group, {"type": "run.changed", "run_id": "slow", "status": "running"})
        assert time.perf_counter() - started < 0.1
        assert events.wait_pushed(10)

    assert [event["run_id"] for event in received(group, 1, push)] == ["slow"]
