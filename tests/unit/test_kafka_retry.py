"""cdc.kafka.retrying: an admin request that met a dead broker is sent again, others are not."""

from __future__ import annotations

import pytest
from aiokafka.errors import NodeNotReadyError, TopicAuthorizationFailedError

from cdc import kafka
from cdc.config import KafkaSettings


def _failing(errors: list[Exception]):  # type: ignore[no-untyped-def]
    calls = []

    async def call() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "done"

    return call, calls


async def test_a_retriable_error_is_retried_until_it_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "RETRY_BACKOFF", 0.01)
    call, calls = _failing([NodeNotReadyError("node 1"), NodeNotReadyError("node 1")])
    assert await kafka.retrying(KafkaSettings("x:9092"), call) == "done"
    assert len(calls) == 3


async def test_a_refusal_is_not_retried() -> None:
    call, calls = _failing([TopicAuthorizationFailedError()])
    with pytest.raises(TopicAuthorizationFailedError):
        await kafka.retrying(KafkaSettings("x:9092"), call)
    assert len(calls) == 1


async def test_retries_stop_at_the_request_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "RETRY_BACKOFF", 0.05)
    call, calls = _failing([NodeNotReadyError("node 1")] * 100)
    with pytest.raises(NodeNotReadyError):
        await kafka.retrying(KafkaSettings("x:9092", request_timeout_ms=200), call)
    assert 2 <= len(calls) <= 6
