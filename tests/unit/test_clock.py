"""The assembler clock: binlog time during catch-up, wall time when live."""

from cdc.clock import Clock


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_live_runs_on_wall_time_and_ignores_one_second_jitter() -> None:
    mono = FakeMonotonic()
    clock = Clock(mono)
    clock.advance(1_000)
    mono.t += 0.3
    assert clock.now() == 1_000.3
    assert not clock.advance(1_001)  # a concurrent session's later second: within resolution
    mono.t += 0.2
    assert clock.now() == 1_000.5


def test_backlog_jumps_to_binlog_time_and_never_goes_back() -> None:
    mono = FakeMonotonic()
    clock = Clock(mono)
    clock.advance(1_000)
    assert clock.advance(1_060)  # a minute later in the binlog, read a moment later
    assert clock.now() == 1_060
    assert not clock.advance(1_010)
    assert clock.now() == 1_060
