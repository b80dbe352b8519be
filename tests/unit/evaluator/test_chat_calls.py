"""The call layer: the priority limit shared by all calls, and reading chat completion bodies."""

from __future__ import annotations

import asyncio

from assay.evaluator import calls


async def test_priority_limit_admits_the_lowest_position_first():
    limit = calls.PriorityLimit(1)
    admitted: list[int] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with limit.slot(0):
            await release.wait()

    async def waiter(priority: int) -> None:
        async with limit.slot(priority):
            admitted.append(priority)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(waiter(p)) for p in (9, 3, 7, 3, 1)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *waiters)
    assert admitted == [1, 3, 3, 7, 9]


async def test_a_cancelled_waiter_does_not_leak_its_slot():
    limit = calls.PriorityLimit(1)
    release = asyncio.Event()

    async def holder() -> None:
        async with limit.slot(0):
            await release.wait()

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(holder())
    await asyncio.sleep(0)
    cancelled.cancel()
    release.set()
    await asyncio.gather(first, cancelled, return_exceptions=True)
    async with asyncio.timeout(1):
        async with limit.slot(5):
            pass


def test_completion_body_gives_text_and_usage():
    body = {
        "choices": [{"message": {"role": "assistant", "content": "Hi"}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2},
    }
    assert calls.parse_completion(body, latency_ms=12.5) == calls.Completion("Hi", 7, 2, 12.5)


def test_null_content_is_an_empty_answer_and_missing_usage_is_unknown():
    body = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": []}}]}
    assert calls.parse_completion(body, latency_ms=1.0) == calls.Completion("", None, None, 1.0)


def test_content_parts_are_joined():
    body = {"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}]}
    assert calls.parse_completion(body, latency_ms=1.0).text == "ab"  # type: ignore[union-attr]


def test_a_body_that_is_not_a_chat_completion_is_refused():
    assert calls.parse_completion({"error": "nope"}, latency_ms=1.0) is None
    assert calls.parse_completion({"choices": []}, latency_ms=1.0) is None
    assert calls.parse_completion(["x"], latency_ms=1.0) is None
