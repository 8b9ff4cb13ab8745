"""Checkpoint records: round trip, compact marks, and refusals with a way out."""

import orjson
import pytest

from cdc.checkpoint import Checkpoint
from cdc.errors import CheckpointError
from cdc.position import Position

F = "mariadb-bin.000007"


def test_round_trip_groups_marks_by_position() -> None:
    cp = Checkpoint("blog", Position(F, 100), gtid="0-1-9",
                    emitted={(1, 5): Position(F, 300), (1, 6): Position(F, 300), (2, 5): Position(F, 400)},
                    server_id=7, snapshot={"id": "s1"}, done_upto=Position(F, 250))
    raw = cp.encode()
    doc = orjson.loads(raw)
    assert sorted(map(tuple, [(f, p, tuple(k)) for f, p, k in doc["emitted"]])) == [
        (F, 300, ("1:5", "1:6")), (F, 400, ("2:5",))]
    back = Checkpoint.decode(raw)
    assert (back.resume, back.gtid, back.emitted, back.server_id, back.snapshot, back.done_upto) == (
        cp.resume, cp.gtid, cp.emitted, cp.server_id, cp.snapshot, cp.done_upto)


def test_a_mark_before_the_resume_point_is_refused() -> None:
    with pytest.raises(CheckpointError):
        Checkpoint("blog", Position(F, 500), emitted={(1, 1): Position(F, 400)})


def test_garbage_and_future_versions_say_what_to_do() -> None:
    with pytest.raises(CheckpointError, match="offsets"):
        Checkpoint.decode(b"{not json")
    with pytest.raises(CheckpointError, match="upgrade wpcdc"):
        Checkpoint.decode(orjson.dumps({"version": 99}))
