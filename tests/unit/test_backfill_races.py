"""The backfill beside the stream: the races found by reading the code, each pinned down here
(the simulation in tests/sim reaches them through real interleavings)."""

from __future__ import annotations

from cdc.assemble import Assembler
from cdc.model import Commit, PostDoc
from cdc.position import Position
from cdc.source.snapshot import SnapshotProgress
from cdc.terms import TermCatalog
from cdc.wordpress import Capture, TableKind

from .rows import FILE, Binlog, post_row
from .test_assemble import events, run


def doc(pid: int, **fields: object) -> PostDoc:
    return PostDoc(blog_id=1, row=post_row(pid, post_status="publish", **fields), meta=(), term_taxonomy_ids=())


def test_a_document_older_than_a_pruned_mark_is_stale() -> None:
    """1. The stream emitted post 7 at Q and the resume point passed Q (its mark pruned): a document
    read at P < Q must not be accepted, or the compacted topic ends with the older state."""
    b = Binlog()
    row = post_row(7, post_status="publish")
    asm = Assembler(Capture(), TermCatalog(), window=0, max_delay=30)
    _, [change] = run(b.insert_post(row), asm=asm)
    q = change.last_pos
    asm.marks(Position(FILE, q.pos + 100))  # a checkpoint whose resume point passed Q
    assert (1, 7) not in asm.emitted
    assert asm.on_snapshot(doc(7), Position(FILE, q.pos - 50)) is None, "stale: read it again"
    assert asm.on_snapshot(doc(7), Position(FILE, q.pos + 200)) is not None


def test_past_the_remembered_marks_an_older_document_is_stale() -> None:
    asm = Assembler(Capture(), TermCatalog(), pruned_upto=Position(FILE, 5000))  # marks forgotten up to 5000
    assert asm.on_snapshot(doc(8), Position(FILE, 4000)) is None
    assert asm.on_snapshot(doc(8), Position(FILE, 5000)) is not None


def test_a_post_created_before_the_document_and_deleted_after_it_gets_its_delete() -> None:
    """2. Insert at ≤ P, document at P, delete > P in the same window: the document was emitted, so
    a delete must follow, not vanish as born-and-gone."""
    b = Binlog()
    row = post_row(9, post_status="publish")
    asm = Assembler(Capture(), TermCatalog(), window=2, max_delay=30)
    run(b.insert_post(row), asm=asm, now=0.0)
    snap = asm.on_snapshot(doc(9), Position(FILE, b.pos))
    assert snap is not None
    run(b.delete_post(row), asm=asm, now=0.5)
    [event] = events(asm.due(5.0))
    assert (event.op, event.action, event.after) == ("delete", "deleted", None)
    assert event.before is not None and event.before["ID"] == 9


def test_the_checkpointed_progress_is_a_copy() -> None:
    """3. The checkpoint is encoded after an await; the backfill must not be able to change it."""
    progress = SnapshotProgress(id="s", blogs=[1, 2])
    saved = progress.as_dict()
    progress.done_blogs.append(1)
    progress.rereads.setdefault(2, []).append(77)
    assert saved["done_blogs"] == [] and saved["rereads"] == {}


def test_posts_to_read_again_survive_a_restart() -> None:
    """4. Stale documents queued for a re-read are in the checkpointed progress."""
    progress = SnapshotProgress(id="s", blogs=[1], last_id={1: 500}, rereads={1: [17, 42]})
    again = SnapshotProgress.from_dict(progress.as_dict())
    assert again.rereads == {1: [17, 42]} and again.last_id == {1: 500}


def test_caught_up_after_a_rotation_the_resume_point_moves_past_the_header() -> None:
    """5. A quiet server after a rotation: the last commit is the new file's start, the snapshot
    position lies after its header events; the heartbeat's position moves the resume point."""
    asm = Assembler(Capture(), TermCatalog())
    b = Binlog()
    run(b.insert_post(post_row(10, post_status="publish")), asm=asm)
    rotated = Position("mariadb-bin.000002", 4)
    asm.on_commit(Commit(rotated, "0-1-1", 0))
    asm.due(10.0)
    assert asm.resume_point() == (rotated, "0-1-1")
    asm.on_idle(Position("mariadb-bin.000002", 385), "0-1-1")
    assert asm.resume_point() == (Position("mariadb-bin.000002", 385), "0-1-1")
    b.begin()  # inside a transaction the idle position says nothing
    asm.on_batch(b.rows(TableKind.POSTS, "insert", [(None, post_row(11))]), 11.0)
    asm.on_idle(Position("mariadb-bin.000002", 900), "0-1-1")
    assert asm.resume_point()[0] < Position("mariadb-bin.000002", 900)  # type: ignore[index]


def test_a_pending_change_on_both_sides_of_the_document_makes_it_stale() -> None:
    """2 (found by the simulation, seed 39): a term added before P and removed after it, in one
    pending change, nets to nothing; emitted after a document that has the term, the removal
    would be lost. So is a post born before P and deleted after it. The document is read again."""
    b = Binlog()
    row = post_row(12, post_status="publish")
    asm = Assembler(Capture(), TermCatalog(), window=2, max_delay=30)
    run(b.insert_post(row) + b.relate(12, 7), asm=asm, now=0.0)
    p = Position(FILE, b.pos)
    run(b.relate(12, 7, op="delete"), asm=asm, now=0.5)
    assert asm.on_snapshot(doc(12), p) is None, "stale: the pending change straddles the document"
    run(b.delete_post(row), asm=asm, now=0.6)
    assert events(asm.due(5.0)) == [], "born and gone within the window, and no document emitted"


def test_a_position_that_is_only_a_lower_bound_makes_any_later_pending_row_suspect() -> None:
    """MySQL: P is read before the snapshot starts; a post born after P may be in the document.
    A pending change with any row after such a P makes the document stale (born after P, deleted
    after the snapshot, would otherwise be left standing)."""
    b = Binlog()
    row = post_row(13, post_status="publish")
    asm = Assembler(Capture(), TermCatalog(), window=2, max_delay=30)
    p = Position(FILE, b.pos)
    run(b.insert_post(row), asm=asm, now=0.0)  # after P, before the snapshot started
    assert asm.on_snapshot(doc(13), p, exact=False) is None
    assert asm.on_snapshot(doc(13), p, exact=True) is not None  # an exact P: the insert is after it
