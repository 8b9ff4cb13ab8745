"""The backfill bounds what it puts into the checkpoint; its marks never switch the window off."""

from __future__ import annotations

import pytest

from cdc.assemble import Assembler
from cdc.backfill import has_room
from cdc.config import SnapshotSettings
from cdc.errors import ConfigError
from cdc.model import PostDoc
from cdc.position import Position
from cdc.terms import TermCatalog
from cdc.wordpress import Capture

from .rows import FILE, Binlog, post_row


def test_posts_ahead_of_the_resume_point_are_bounded_whatever_the_chunk_size() -> None:
    s = SnapshotSettings(chunk_size=3000, max_chunks_ahead=8, max_posts_ahead=4000)
    assert has_room([], s, 0), "nothing ahead: one chunk may always go"
    assert not has_room([(Position(FILE, 10), 3000)], s, 0), "a second chunk would make 6000 marks"
    small = SnapshotSettings(chunk_size=500, max_chunks_ahead=8, max_posts_ahead=4000)
    assert has_room([(Position(FILE, i), 500) for i in range(7)], small, 0)
    assert not has_room([(Position(FILE, i), 500) for i in range(8)], small, 0)
    assert not has_room([], small, unflushed=500), "the last chunks' events are not flushed yet"


def test_chunk_size_is_bounded() -> None:
    with pytest.raises(ConfigError, match="1..10000"):
        SnapshotSettings(chunk_size=100_000)


def test_backfill_marks_do_not_close_every_pending_change() -> None:
    """Past max_marks documented posts, an editor's save still waits for its window."""
    asm = Assembler(Capture(), TermCatalog(), window=2, max_delay=30, max_marks=100)
    for pid in range(1000, 1300):
        doc = PostDoc(blog_id=1, row=post_row(pid, post_status="publish"), meta=(), term_taxonomy_ids=())
        assert asm.on_snapshot(doc, Position(FILE, 10_000)) is not None
    b = Binlog(start=20_000)
    row = post_row(5, post_status="publish")
    closed = asm.on_batch(b.insert_post(row)[0], 0.0)
    assert closed == [] and asm.pending_posts == 1 and asm.stream_marks == 0
    assert len(asm.due(2.0)) == 1 and asm.stream_marks == 1


def test_snapshot_settings_name_the_options_an_operator_types() -> None:
    with pytest.raises(ConfigError, match="--snapshot-rows-per-second"):
        SnapshotSettings(rows_per_second=0)
    with pytest.raises(ConfigError, match="--snapshot-id-range 9:3"):
        SnapshotSettings(id_min=9, id_max=3)


def test_a_chunk_size_of_zero_is_refused_not_replaced() -> None:
    from cdc.cli import _snapshot_settings

    with pytest.raises(ConfigError, match="--snapshot-chunk-size 0"):
        _snapshot_settings({"snapshot_chunk_size": 0})
    assert _snapshot_settings({}).chunk_size == 500
