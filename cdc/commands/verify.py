"""``wpcdc verify``: the event topic, folded as a consumer folds it, compared with the database.

The first step after any incident: it says which posts a consumer of the topic has wrong. To
compare a live site at one consistent point without reporting changes still in flight
(docs/operations.md, "Verify"):

1. Note the binlog's end P0 and wait until the connector's committed checkpoint resumes at or
   past it: every row before P0 is then in a committed Kafka transaction.
2. Fold the topic (read_committed, start to stable end) into one packed digest per post
   (cdc/digest.py: about 70 bytes plus 16 per meta row), not the events themselves.
3. Read the database in consistent chunks with the backfill's reader (the stream's capture
   policy), and compare each post with its digest. A post compared leaves the fold, so what
   remains is in the topic only. Every chunk is read after the fold, so the database is never
   older than the topic.
4. A post that differs may only be in flight: changed after the fold, or its event still in
   the quiescence window. It is read again (at position P), the connector is waited for past P,
   the topic's new records are folded into it, and it is compared again: equal, it was in flight;
   its newest event past P, or either side changed since the last look, it is tried again (three
   rounds, then it is reported as still changing, not as a difference); otherwise, seen twice the
   same with the connector past the read, it differs.
5. The first posts that differ are read once more for the report: the columns and meta keys.

Without waiting (``--verify-timeout 0``, or ``--repair`` with the connector stopped) steps 1 and
4 are skipped: the topic is compared as it stands.

``--repair`` (cdc/repair.py) beside a running connector writes repair requests for the posts that
differ (cdc/repair_requests.py), waits until the connector tombstoned them (its backfill of those
posts is committed), then verifies again: exit 0 only when nothing differs then. With the
connector stopped it runs the repair's session itself.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import click
import orjson
from aiokafka import TopicPartition

from cdc import repair_requests
from cdc.backfill import skip_types
from cdc.checkpoint import CheckpointStore
from cdc.config import StreamSettings
from cdc.digest import (
    Difference,
    Scope,
    TopicFold,
    column_differences,
    content,
    difference,
    doc_state,
    is_cut,
    post_key,
    seq_of,
    split_key,
    unpack,
)
from cdc.errors import ConnectorBehindError, MismatchError, NoCheckpointError, RepairPendingError, VerifyError
from cdc.kafka import KafkaReader
from cdc.position import Position
from cdc.progress import ProgressBar
from cdc.source.database import Database
from cdc.source.snapshot import SnapshotReader
from cdc.wordpress import TableNames

log = logging.getLogger(__name__)

ROUNDS = 3  # re-checks of a post that keeps changing
DETAILS = 100  # posts whose columns and meta keys the report names (a read each)
READ_TIMEOUT = 3600.0  # reading one partition of the topic, start to end
IGNORED: Any = object()  # a post the capture policy leaves out (an excluded status): compared on neither side


@dataclass
class Report:
    connector: str
    topic: str
    position: str | None = None  # where the comparison stands (P0), when it waited for the connector
    records: int = 0  # records of the topic folded
    topic_posts: int = 0  # posts the fold holds
    compared: int = 0  # posts of the database compared
    equal: int = 0
    in_flight: int = 0  # differences the re-check found were changes in flight
    differ: list[Difference] = field(default_factory=list)
    changing: list[str] = field(default_factory=list)  # still changing after the re-checks
    not_compared: list[str] = field(default_factory=list)  # the size policy cut part of their state
    repaired: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # repair requests the running connector did
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector, "topic": self.topic, "position": self.position,
            "records": self.records, "topic_posts": self.topic_posts, "compared": self.compared,
            "equal": self.equal, "in_flight": self.in_flight,
            "differ": [d.as_dict() for d in self.differ], "changing": self.changing,
            "not_compared": self.not_compared, "repaired": self.repaired, "requests": self.requests,
            "seconds": round(self.seconds, 2),
        }

    def render(self, limit: int = DETAILS) -> str:
        at = f" at {self.position}" if self.position else " as the topic stands (not waiting for the connector)"
        lines = [f"connector {self.connector}: topic {self.topic} ({self.records} records, {self.topic_posts} posts) "
                 f"against the database{at}"]
        lines += [f"  {d.describe()}" for d in self.differ[:limit]]
        if len(self.differ) > limit:
            lines.append(f"  … and {len(self.differ) - limit} more (--json lists them all)")
        if self.changing:
            lines.append(f"  still changing, not compared: {', '.join(self.changing[:limit])}")
        if self.not_compared:
            lines.append(f"  cut by the size policy, compared by existence only: {', '.join(self.not_compared[:limit])}")
        kinds = {k: sum(d.kind == k for d in self.differ) for k in ("missing", "extra", "differs")}
        lines.append(f"{len(self.differ)} posts differ ({kinds['missing']} missing from the topic, {kinds['extra']} "
                     f"only in the topic, {kinds['differs']} with other content); {self.equal} of {self.compared} "
                     f"database posts equal; {self.in_flight} in flight; {len(self.changing)} still changing "
                     f"({self.seconds:.1f}s)")
        if self.repaired and self.requests:
            lines.append(f"repaired {len(self.repaired)} posts: re-emitted by the running connector (repair requests "
                         f"{', '.join(self.requests)}), then compared again (the lines above)")
        elif self.repaired:
            lines.append(f"repaired {len(self.repaired)} posts: re-emitted through the backfill")
        return "\n".join(lines)


@dataclass(slots=True)
class Suspect:
    """A post that differed: its topic state, and the database's as last read (and where)."""

    topic: bytes | None
    db: Any = None  # packed state, None (not in the database) or IGNORED
    position: Position | None = None
    exact: bool = True  # False: the position is only a lower bound of the read (MySQL)


class Verifier:
    def __init__(self, settings: StreamSettings, wait: float) -> None:
        self.settings = settings
        self.wait = wait
        self.tables = TableNames(settings.table_prefix, settings.blog_ids)
        s = settings.snapshot
        self.scope = Scope(settings.capture, settings.blog_ids, s.blog_ids, s.post_types, s.id_min, s.id_max)
        self.report = Report(settings.name, settings.topic)
        self.ends: dict[TopicPartition, int] = {}
        self.newest_seq = 0  # the newest seq in the topic among the posts that differ (0: none there)

    async def run(self) -> Report:
        started = time.monotonic()
        if self.wait:
            position = await asyncio.to_thread(_binlog_end, self.settings)
            self.report.position = str(position)
            await self._wait_for_connector(position)
        fold = TopicFold(self.scope)
        await self._read_topic(fold)
        self.report.records, self.report.topic_posts = fold.records, len(fold.states)
        if fold.unreadable:
            log.warning("verify: %d records of %s are not post events (skipped)", fold.unreadable,
                        self.settings.topic)
        suspects = await asyncio.to_thread(self._compare_database, fold.states)
        del fold
        confirmed: dict[int, Suspect] = {}
        if self.wait:
            for _ in range(ROUNDS):
                if not suspects:
                    break
                suspects, sure = await self._recheck(suspects)
                confirmed |= sure
            self.report.changing = [_name(k) for k in sorted(suspects)]
            if suspects:
                log.warning("verify: %d posts kept changing through %d re-checks and were not compared: %s; run "
                            "verify again when they are quiet", len(suspects), ROUNDS, ", ".join(self.report.changing[:20]))
        else:
            confirmed = suspects
        self.report.differ = [d for k in sorted(confirmed) if (d := _difference(k, confirmed[k])) is not None]
        differ = {post_key(d.blog_id, d.post_id) for d in self.report.differ}
        self.newest_seq = max((seq_of(s.topic) for k, s in confirmed.items() if k in differ and s.topic is not None),
                              default=0)
        await self._describe(self.report.differ[:DETAILS], confirmed)
        self.report.seconds = time.monotonic() - started
        return self.report

    # ------------------------------------------------------------------ the connector

    async def _wait_for_connector(self, position: Position) -> None:
        """Until the connector's committed checkpoint resumes at or past ``position``."""
        s = self.settings
        store = CheckpointStore(s.kafka, s.checkpoint_topic, s.name)
        deadline = time.monotonic() + self.wait
        said = False
        while True:
            checkpoint = await store.load()
            if checkpoint is None:
                raise NoCheckpointError(
                    f"connector {s.name} has no checkpoint in {s.checkpoint_topic}: verify compares at a position "
                    f"the connector has written past. Start `wpcdc stream --name {s.name}` (with the options it "
                    "runs with), or give --verify-timeout 0 to compare the topic as it stands")
            snapshot = checkpoint.snapshot or {}
            backfilling = bool(snapshot) and not snapshot.get("finished_ms")
            if checkpoint.resume >= position and not backfilling:
                return
            if time.monotonic() > deadline:
                age = time.time() - checkpoint.ts_ms / 1000
                if backfilling:
                    raise ConnectorBehindError(
                        f"connector {s.name} is still backfilling ({snapshot.get('posts_done')} of "
                        f"{snapshot.get('total')} posts after {self.wait:.0f}s): verify would find the posts not read "
                        "yet missing; run it once `wpcdc status` shows the backfill finished")
                raise ConnectorBehindError(
                    f"connector {s.name} did not checkpoint past {position} within {self.wait:.0f}s (its checkpoint "
                    f"resumes at {checkpoint.resume}, written {age:.0f}s ago): is `wpcdc stream --name {s.name}` "
                    "running and caught up (`wpcdc status`)? verify waits for it so that changes in flight are not "
                    "reported; raise --verify-timeout, or give 0 to compare the topic as it stands")
            if not said:
                log.info("verify: waiting for connector %s to pass %s (its checkpoint resumes at %s)", s.name,
                         position, checkpoint.resume)
                said = True
            await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ the topic

    async def _read_topic(self, fold: TopicFold, start: dict[TopicPartition, int] | None = None) -> None:
        """Fold the topic's committed records (from ``start``, else its beginning) up to its stable
        end, which is remembered for the next read."""
        topic = self.settings.topic
        async with KafkaReader(self.settings.kafka, f"read event topic {topic}") as reader:
            tps = await reader.partitions(topic)
            if not tps:
                log.warning("verify: topic %s does not exist; every post counts as missing from it", topic)
                return
            offsets = await reader.offsets(tps)
            first = {tp: max(offsets.begin[tp], (start or {}).get(tp, 0)) for tp in tps}
            bar = None if start is not None else ProgressBar("verify: topic", offsets.committed, unit="record")
            for tp in tps:
                async for msg in reader.read(tp, first[tp], offsets.stable[tp], READ_TIMEOUT):
                    fold.add(msg.key, msg.value, tp.partition, msg.offset)
                    if bar is not None and fold.records % 2000 == 0:
                        bar.update(fold.records)
            if bar is not None:
                bar.update(fold.records)
                bar.close()
            self.ends = dict(offsets.stable)

    async def _events(self, places: list[tuple[int, int]]) -> dict[tuple[int, int], dict[str, Any]]:
        """The events at these (partition, offset) places of the topic (compaction may have taken some)."""
        out: dict[tuple[int, int], dict[str, Any]] = {}
        topic = self.settings.topic
        async with KafkaReader(self.settings.kafka, f"read event topic {topic}") as reader:
            for partition, offset in places:
                async for msg in reader.read(TopicPartition(topic, partition), offset, offset + 1, 60.0):
                    if msg.value is not None:
                        out[(partition, offset)] = orjson.loads(msg.value)
        return out

    # ------------------------------------------------------------------ the database

    def _reader(self) -> SnapshotReader:
        return SnapshotReader(self.settings.mysql, self.tables, self.settings.snapshot, skip_types(self.settings.capture))

    def _compare_database(self, states: dict[int, bytes]) -> dict[int, Suspect]:
        """Every post of the database against its packed state in ``states`` (which it empties of
        them); the posts that differ, those left in ``states`` included (in the topic only)."""
        suspects: dict[int, Suspect] = {}
        reader = self._reader()
        try:
            blogs = reader.blogs()
            bar = ProgressBar("verify: database", reader.count(blogs))
            for blog in blogs:
                cursor = 0
                while True:
                    chunk = reader.read_chunk(blog, cursor)
                    for doc in chunk.docs:
                        self._compare(states.pop(post_key(blog, doc.post_id), None), doc, chunk.position, suspects)
                    cursor = chunk.last_id
                    bar.update(self.report.compared)
                    if chunk.exhausted:
                        break
            bar.close()
        finally:
            reader.close()
        for key, topic in states.items():
            suspects[key] = Suspect(topic, None)
        return suspects

    def _compare(self, topic: bytes | None, doc: Any, position: Position, suspects: dict[int, Suspect]) -> None:
        if not self.scope.wants_row(doc.row):
            return  # a status the policy leaves out: the stream says nothing of it either
        self.report.compared += 1
        if topic is not None and is_cut(topic):
            self.report.not_compared.append(f"{doc.blog_id}:{doc.post_id}")
            return
        db = doc_state(doc, self.settings.capture, position.seq)
        if topic is not None and content(topic) == content(db):
            self.report.equal += 1
            return
        suspects[post_key(doc.blog_id, doc.post_id)] = Suspect(topic, db, position)

    def _reread(self, keys: list[int]) -> dict[int, tuple[Any, Position, bool]]:
        """The posts ``keys`` read again, each as (packed state, None or IGNORED; the position read
        at; whether that position is exact)."""
        out: dict[int, tuple[Any, Position, bool]] = {}
        reader = self._reader()
        try:
            for blog, ids in _by_blog(keys):
                for i in range(0, len(ids), self.settings.snapshot.chunk_size):
                    batch = ids[i:i + self.settings.snapshot.chunk_size]
                    chunk = reader.read_chunk(blog, 0, ids=batch)
                    found = {doc.post_id: doc for doc in chunk.docs}
                    for post_id in batch:
                        doc = found.get(post_id)
                        state = (None if doc is None else IGNORED if not self.scope.wants_row(doc.row)
                                 else doc_state(doc, self.settings.capture, chunk.position.seq))
                        out[post_key(blog, post_id)] = (state, chunk.position, chunk.exact)
        finally:
            reader.close()
        return out

    # ------------------------------------------------------------------ re-check, details

    async def _recheck(self, suspects: dict[int, Suspect]) -> tuple[dict[int, Suspect], dict[int, Suspect]]:
        """One round: (the posts still changing, the posts that differ for sure)."""
        fresh = await asyncio.to_thread(self._reread, list(suspects))
        await self._wait_for_connector(max(pos for _, pos, _ in fresh.values()))
        tail = TopicFold(self.scope, {k: s.topic for k, s in suspects.items() if s.topic is not None},
                         only=set(suspects))
        await self._read_topic(tail, self.ends)
        changing: dict[int, Suspect] = {}
        sure: dict[int, Suspect] = {}
        for key, s in suspects.items():
            seen = _seen(s)
            s.topic = tail.states.get(key)
            s.db, s.position, s.exact = fresh[key]
            if s.db is IGNORED:
                continue
            if s.topic is not None and is_cut(s.topic):
                self.report.not_compared.append(_name(key))
            elif difference(*split_key(key), s.topic, s.db) is None:
                self.report.in_flight += 1
            elif (s.topic is not None and seq_of(s.topic) > s.position.seq) or not s.exact or _seen(s) != seen:
                # Its newest event is past our read (it changed again), our read may hold changes
                # past its position (MySQL), or either side moved since the last look (an event's
                # row looked up from the database at emit time can be newer than its seq): a
                # difference counts when seen twice with nothing moving. Compare again.
                changing[key] = s
            else:
                sure[key] = s
        return changing, sure

    async def _describe(self, differ: list[Difference], suspects: dict[int, Suspect]) -> None:
        """Name the columns and meta keys of these differences (the database read again, and the
        topic's newest event of each post)."""
        rows = [d for d in differ if d.kind == "differs"]
        if not rows:
            return
        docs = await asyncio.to_thread(self._docs, [post_key(d.blog_id, d.post_id) for d in rows])
        places = {}
        for d in rows:
            topic = suspects[post_key(d.blog_id, d.post_id)].topic
            if d.row and topic is not None:
                packed = unpack(topic)
                places[post_key(d.blog_id, d.post_id)] = (packed.partition, packed.offset)
        events = await self._events(sorted(set(places.values()))) if places else {}
        for d in rows:
            key = post_key(d.blog_id, d.post_id)
            doc = docs.get(key)
            event = events.get(places.get(key, (-1, -1)))
            if d.row and doc is not None and event is not None:
                d.columns = tuple(column_differences(event.get("after"), doc.row))
            names = {int(m["meta_id"]): m["meta_key"] for m in doc.meta} if doc is not None else {}
            for m in (event or {}).get("meta") or ():
                names.setdefault(int(m["meta_id"]), m["key"])
            d.meta_keys = {i: names[i] for i in (*d.meta_changed, *d.meta_missing, *d.meta_extra) if i in names}

    def _docs(self, keys: list[int]) -> dict[int, Any]:
        out: dict[int, Any] = {}
        reader = self._reader()
        try:
            for blog, ids in _by_blog(keys):
                for doc in reader.read_chunk(blog, 0, ids=ids).docs:
                    out[post_key(blog, doc.post_id)] = doc
        finally:
            reader.close()
        return out


def _binlog_end(settings: StreamSettings) -> Position:
    db = Database(settings.mysql)
    try:
        return db.current_position()[0]
    finally:
        db.close()


def _by_blog(keys: list[int]) -> Iterator[tuple[int, list[int]]]:
    by: dict[int, list[int]] = defaultdict(list)
    for key in sorted(keys):
        blog, post = split_key(key)
        by[blog].append(post)
    yield from by.items()


def _seen(s: Suspect) -> tuple[bytes | None, bytes | None]:
    """What a comparison of the suspect saw on both sides (the comparable parts)."""
    db = s.db if isinstance(s.db, bytes) else None
    return (None if s.topic is None else content(s.topic), None if db is None else content(db))


def _name(key: int) -> str:
    blog, post = split_key(key)
    return f"{blog}:{post}"


def _difference(key: int, s: Suspect) -> Difference | None:
    if s.db is IGNORED:
        return None
    return difference(*split_key(key), s.topic, s.db)


# ---------------------------------------------------------------------------------- the command


def run_verify(settings: StreamSettings, repair: bool = False, as_json: bool = False) -> int:
    """``wpcdc verify``: print the report; MismatchError (exit 50) when posts differ and were not
    repaired. With ``repair`` the posts that differ are re-emitted: by the running connector (repair
    requests; verified again afterwards), or inline with the connector stopped."""
    from cdc.errors import ConfigError
    from cdc.routing import TopicRouter

    if not TopicRouter(settings.topic, settings.name).static:
        # Its fold addresses records by (partition, offset) of one topic; a template's several
        # topics would read as "topic missing" and report (and --repair re-emit) every post.
        raise ConfigError(f"--topic {settings.topic!r} is a routing template: `wpcdc verify` reads one event "
                          "topic and does not follow templates yet; verify with a connector that writes one topic")

    async def main() -> Report:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if not repair:
            return await Verifier(settings, settings.verify_timeout).run()
        return await _repair(settings, stop)

    report = asyncio.run(main())
    click.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode() if as_json else report.render())
    if report.differ and report.requests:
        raise MismatchError(
            f"{len(report.differ)} posts differ between topic {settings.topic} and the database after the repair "
            "(listed above): changed behind the binlog's back again, or by the site since? Run `wpcdc verify "
            "--repair` again (docs/operations.md, 'Verify')")
    if report.differ and not report.repaired:
        raise MismatchError(
            f"{len(report.differ)} posts differ between topic {settings.topic} and the database (listed above): "
            "run `wpcdc verify --repair` to re-emit them (docs/operations.md, 'Verify')")
    return 0


async def _repair(settings: StreamSettings, stop: asyncio.Event) -> Report:
    """verify, then re-emit the posts that differ: through the running connector (requests), or
    inline when it is stopped (its session, under its name)."""
    from cdc import repair as repairing

    checkpoint, running = await repairing.connector_running(settings)
    if running:
        return await _repair_running(settings, stop)
    snapshot = (checkpoint.snapshot if checkpoint is not None else None) or {}
    if snapshot and not snapshot.get("finished_ms"):
        raise RepairPendingError(
            f"connector {settings.name} is stopped with a backfill in progress (id {snapshot.get('id')}, "
            f"{snapshot.get('posts_done')} of {snapshot.get('total')} posts): the posts it has not read yet would all "
            f"count as differences. Start `wpcdc stream --name {settings.name}` and run `wpcdc verify --repair` "
            "beside it: it waits for the backfill, then asks the connector for the repair")
    verifier = Verifier(settings, 0.0)
    report = await verifier.run()
    if report.differ:
        await _wait_for_binlog(settings, verifier.newest_seq, stop)
        keys = [(d.blog_id, d.post_id) for d in report.differ]
        log.info("verify: %d posts differ; connector %s is stopped: repairing them with its session: %s", len(keys),
                 settings.name, ", ".join(d.key for d in report.differ[:50]))
        if not await repairing.repair(settings, keys, stop):
            raise VerifyError(
                "repair interrupted; the connector's checkpoint holds the posts still to read, and "
                "`wpcdc stream` finishes the repair when it starts")
        report.repaired = [d.key for d in report.differ]
    return report


async def _repair_running(settings: StreamSettings, stop: asyncio.Event) -> Report:
    """Beside the running connector: verify, write a repair request per batch of the posts that
    differ, wait until the connector tombstoned them all (its repair committed), verify again."""
    verifier = Verifier(settings, settings.verify_timeout)
    first = await verifier.run()
    if not first.differ:
        return first
    await _wait_for_binlog(settings, verifier.newest_seq, stop)
    requests = repair_requests.split((d.blog_id, d.post_id) for d in first.differ)
    await repair_requests.write(settings.kafka, settings.checkpoint_topic, settings.name, requests)
    log.info("verify: %d posts differ; asked the running connector %s to re-emit them (repair requests %s in %s): %s",
             len(first.differ), settings.name, ", ".join(r.id for r in requests), settings.checkpoint_topic,
             ", ".join(d.key for d in first.differ[:50]))
    await _wait_for_repairs(settings, requests, stop)
    log.info("verify: the connector committed the repair; comparing again")
    report = await Verifier(settings, settings.verify_timeout).run()
    report.repaired = [d.key for d in first.differ]
    report.requests = [r.id for r in requests]
    return report


async def _wait_for_repairs(settings: StreamSettings, requests: list[repair_requests.RepairRequest],
                            stop: asyncio.Event) -> None:
    """Until every request is tombstoned (RepairPendingError after --repair-timeout or a signal),
    showing the posts done: those of requests done, and the progress of the one running."""
    ours = {r.id: r for r in requests}
    total = sum(r.count for r in requests)
    watcher = repair_requests.RepairWatcher(settings.kafka, settings.checkpoint_topic, settings.name)
    bar = ProgressBar("repair", total)
    deadline = time.monotonic() + settings.repair_timeout
    async with KafkaReader(settings.kafka, f"read repair requests in {settings.checkpoint_topic}", "checkpoint") as reader:
        while True:
            await watcher.catch_up(reader)
            left = [r for rid, r in ours.items() if rid not in watcher.done]
            done = total - sum(r.count for r in left)
            running = _snapshot_of(watcher.checkpoint)
            if running.get("id") in ours and running.get("id") not in watcher.done:
                done += int(running.get("posts_done") or 0)
            bar.update(done)
            if not left:
                bar.close()
                return
            if stop.is_set() or time.monotonic() > deadline:
                bar.close()
                why = "verify was interrupted" if stop.is_set() else f"not done after --repair-timeout {settings.repair_timeout:.0f}s"
                busy = (f" (it is running backfill {running.get('id')}: {running.get('posts_done')} of "
                        f"{running.get('total')} posts)" if running and not running.get("finished_ms") else "")
                raise RepairPendingError(
                    f"the repair of {sum(r.count for r in left)} posts is {why}: its requests "
                    f"{', '.join(r.id for r in left)} stay pending in {settings.checkpoint_topic}, and connector "
                    f"{settings.name} does them{busy}; `wpcdc status` lists the pending requests. Run `wpcdc verify` "
                    "once they are gone to confirm")
            await asyncio.sleep(1.0)


async def _wait_for_binlog(settings: StreamSettings, seq: int, stop: asyncio.Event) -> None:
    """Until the binlog's end is past ``seq`` (the newest event, in the topic, of the posts to
    repair). A repair document's ``seq`` is the binlog position it was read at: read with no
    transaction committed since a post's last event, it would carry that event's ``seq`` (and
    ``event_id``), and consumers that drop events not newer than the last would drop it. Any
    commit on the server ends the wait; a live site commits all the time."""
    deadline = time.monotonic() + settings.repair_timeout
    said = False
    while True:
        end = await asyncio.to_thread(_binlog_end, settings)
        if end.seq > seq:
            return
        if stop.is_set() or time.monotonic() > deadline:
            raise RepairPendingError(
                f"nothing was committed on the server since the last events of the posts to repair (the binlog "
                f"still ends at {end}): their repair documents would carry the same seq as those events, and "
                "consumers that drop events not newer than the last would drop them. Nothing was requested; "
                "run `wpcdc verify --repair` again once the site wrote anything")
        if not said:
            log.info("verify: waiting for a commit on the server: the binlog ends at %s, where the last events of "
                     "posts to repair stand (their repair documents must be read past it)", end)
            said = True
        await asyncio.sleep(1.0)


def _snapshot_of(checkpoint: bytes | None) -> dict[str, Any]:
    """The ``snapshot`` (backfill progress) of a checkpoint record's value; {} when none."""
    if not checkpoint:
        return {}
    try:
        return dict(orjson.loads(checkpoint).get("snapshot") or {})
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return {}


__all__ = ["Report", "Verifier", "run_verify"]
