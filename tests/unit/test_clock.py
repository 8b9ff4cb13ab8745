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


def test_a_long_block_is_left_out_so_queued_saves_are_cut_by_binlog_time() -> None:
    """A Kafka write hangs for 20 s while two saves 20 s apart queue up behind it: without the
    block left out, the wall clock has run ahead of both saves and they fold into one event."""
    mono = FakeMonotonic()
    clock = Clock(mono)
    clock.advance(1_000)
    with clock.stopped():
        mono.t += 20.0  # the hung write
    assert clock.now() == 1_000.0  # resumes where the block began
    assert not clock.advance(1_000)  # the first save, queued during the hang
    assert clock.advance(1_020)  # the second save, 20 s later in the binlog: the clock jumps
    assert clock.now() == 1_020.0


def test_a_short_block_is_live_time() -> None:
    mono = FakeMonotonic()
    clock = Clock(mono)
    clock.advance(1_000)
    with clock.stopped():
        mono.t += 0.05  # a normal write
    assert clock.now() == 1_000.05


def test_a_block_that_raises_is_left_out_too() -> None:
    mono = FakeMonotonic()
    clock = Clock(mono)
    clock.advance(1_000)
    try:
        with clock.stopped():
            mono.t += 30.0
            raise TimeoutError
    except TimeoutError:
        pass
    assert clock.now() == 1_000.0
