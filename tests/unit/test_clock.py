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


def test_a_row_read_while_the_session_wrote_counts_from_when_it_was_read() -> None:
    """A row waits in the hand-off while the last flush goes to Kafka: its window counts from
    when the reader read it, so its event is not late by the write."""
    mono = FakeMonotonic()
    clock = Clock(mono)
    clock.advance(1_000)
    read_at = mono.t + 0.010
    mono.t += 0.018  # the write ends; the pipeline gets to the row
    assert clock.at(read_at) == 1_000.010
    assert clock.now() == 1_000.018


def test_a_time_of_reading_never_takes_the_clock_back_nor_ahead() -> None:
    mono = FakeMonotonic()
    clock = Clock(mono)
    clock.advance(1_000)
    early = mono.t
    mono.t += 0.5
    assert clock.now() == 1_000.5
    assert clock.at(early) == 1_000.5  # earlier than a time handed out already
    assert clock.at(mono.t + 3.0) == 1_000.5  # a reading from the future: now at most
    later = mono.t + 0.1
    mono.t += 0.2
    assert clock.at(later) == 1_000.6
    assert clock.at(later - 0.05) == 1_000.6  # and never behind the last one either


def test_rows_read_during_a_long_block_take_the_time_the_clock_stood_at() -> None:
    """What Clock.stopped guarantees holds for reading times too: saves queued behind a hung
    write are still cut by their binlog times, not by when the reader got them."""
    mono = FakeMonotonic()
    clock = Clock(mono)
    clock.advance(1_000)
    clock.now()
    with clock.stopped():
        read_during = mono.t + 5.0
        mono.t += 20.0
    assert clock.at(read_during) == 1_000.0
    assert clock.advance(1_020)  # the second save: a jump, as before
    assert clock.at(read_during) == 1_020.0
