"""The retry backoff grows over consecutive failures and resets after a healthy session."""

from __future__ import annotations

from cdc.errors import (
    CheckpointBlockedError,
    CheckpointError,
    CheckpointMissingError,
    Exit,
    FencedError,
    PreflightError,
    SinkError,
)
from cdc.pipeline import Backoff, _retriable


def test_consecutive_failures_back_off_exponentially_up_to_the_cap() -> None:
    b = Backoff(base=0.5, cap=30.0, healthy_after=30.0)
    waits = [b(now=float(t)) for t in range(10)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_a_session_that_streamed_long_enough_resets_the_backoff() -> None:
    b = Backoff(base=0.5, cap=30.0, healthy_after=30.0)
    for _ in range(8):
        b(now=0.0)
    b.streaming(now=100.0)
    assert b(now=200.0) == 0.5  # a blip after a healthy day waits the base, not the cap
    assert b(now=201.0) == 1.0


def test_a_session_that_fails_right_after_connecting_keeps_backing_off() -> None:
    b = Backoff(base=0.5, cap=30.0, healthy_after=30.0)
    b(now=0.0)
    b(now=1.0)
    b.streaming(now=2.0)
    assert b(now=3.0) == 2.0  # connected, streamed 1 s, failed: still the third failure in a row


def test_which_errors_the_runner_retries() -> None:
    assert _retriable(SinkError("kafka away"))
    assert _retriable(CheckpointBlockedError("open transaction"))
    assert not _retriable(CheckpointMissingError("lost"))
    assert not _retriable(CheckpointError("unreadable"))
    assert not _retriable(FencedError("fenced"))
    assert not _retriable(ValueError("bug"))
    # The startup checks: a server that does not answer is waited for, one that says no is not.
    assert _retriable(PreflightError("cannot connect", check="connect", retriable=True))
    assert not _retriable(PreflightError("refused the login", check="connect"))
    assert not _retriable(PreflightError("binlog_format is 'STATEMENT'", check="binlog_format", exit_code=Exit.BINLOG_FORMAT))
