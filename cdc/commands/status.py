"""``wpcdc status``: where a connector stands, for an operator, from Kafka (and MySQL if reachable).

Kafka has the facts that survive the process: the committed checkpoint (where the connector
resumes, when it was written, which posts are already emitted past it), the event topic
(offsets committed, offsets still inside an open transaction, the newest event). MySQL adds the
lag: how much binlog lies after the checkpoint, and whether the checkpoint's file still exists.
The running process's own view (pending posts, seconds behind) is on its /metrics. The repair
requests ``verify --repair`` left for the connector (cdc/repair_requests.py) are listed too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import click
import orjson

from cdc import repair_requests
from cdc.checkpoint import Checkpoint, CheckpointStore
from cdc.config import KafkaSettings, StreamSettings
from cdc.errors import Exit, SinkError, SourceError
from cdc.kafka import KafkaReader, event_topics
from cdc.position import Position, file_number
from cdc.source.database import Database


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def checkpoint_report(cp: Checkpoint, now: float) -> dict[str, Any]:
    furthest = max(cp.emitted.values(), default=None, key=lambda p: (file_number(p.file), p.pos))
    return {
        "resume": str(cp.resume),
        "gtid": cp.gtid,
        "written": _iso(cp.ts_ms / 1000) if cp.ts_ms else None,
        "age_seconds": round(now - cp.ts_ms / 1000, 1) if cp.ts_ms else None,
        "posts_emitted_past_resume": len(cp.emitted),
        "furthest_emitted": str(furthest) if furthest else None,
        "server_id": cp.server_id,
        "snapshot": cp.snapshot,
    }


def binlog_lag(resume: Position, logs: dict[str, int], end: Position) -> dict[str, Any]:
    """Bytes of binlog from ``resume`` to the server's ``end`` (files in between counted whole)."""
    if resume.file not in logs:
        oldest = min(logs, key=file_number, default="(none)")
        return {"purged": True, "bytes": None, "files": None,
                "detail": f"{resume.file} is no longer on the server (oldest: {oldest}): the connector "
                          "cannot resume; see 'Recover from a purged binlog' in docs/operations.md"}
    first, last = file_number(resume.file), file_number(end.file)
    if (first, resume.pos) >= (last, end.pos):
        return {"purged": False, "bytes": 0, "files": 0, "detail": "caught up"}
    total = 0
    for name, size in logs.items():
        n = file_number(name)
        if first <= n <= last:
            start = resume.pos if n == first else 0
            stop = end.pos if n == last else size
            total += max(0, stop - start)
    return {"purged": False, "bytes": total, "files": last - first,
            "detail": f"{total} binlog bytes after the checkpoint" + (f" ({last - first} file(s) later)"
                                                                      if last > first else "")
            + ": changes still in their window, or not read yet"}


def server_report(settings: StreamSettings, cp: Checkpoint | None) -> dict[str, Any]:
    db = Database(settings.mysql)
    try:
        end, gtid = db.current_position()
        report: dict[str, Any] = {"reachable": True, "position": str(end), "gtid": gtid,
                                  "version": f"{db.flavor.name} {'.'.join(map(str, db.flavor.version))}"}
        if cp is not None:
            report["lag"] = binlog_lag(cp.resume, db.binlogs(), end)
        return report
    except SourceError as exc:
        return {"reachable": False, "error": str(exc)}
    finally:
        db.close()


async def topic_report(settings: KafkaSettings, topic: str) -> dict[str, Any]:
    """Partitions, committed offsets, offsets in open (not yet committed) transactions, the newest
    event. Offsets, not records: each committed transaction also takes one for its marker."""
    async with KafkaReader(settings, f"read topic {topic}") as reader:
        tps = await reader.partitions(topic)
        if not tps:
            return {"topic": topic, "exists": False}
        offsets = await reader.offsets(tps)
        newest: dict[str, Any] | None = None
        for tp in tps:
            start = max(offsets.begin[tp], offsets.stable[tp] - 50)
            async for msg in reader.read(tp, start, offsets.stable[tp], timeout=10):
                if msg.value is not None and (newest is None or msg.timestamp > newest["kafka_ts"]):
                    newest = {"kafka_ts": msg.timestamp, "value": msg.value}
    last = None
    if newest is not None:
        event = orjson.loads(newest["value"])
        source = event.get("source") or {}
        last = {"op": event.get("op"), "post": f"{event.get('blog_id')}:{event.get('post_id')}",
                "position": f"{source.get('file')}:{source.get('pos')}",
                "source_time": _iso(source["ts_ms"] / 1000) if source.get("ts_ms") else None,
                "written": _iso(newest["kafka_ts"] / 1000)}
    return {
        "topic": topic, "exists": True, "partitions": len(tps),
        "committed_offsets": offsets.committed,
        "open_transaction_offsets": offsets.in_open_transactions,
        "last_event": last,
    }


async def events_report(settings: StreamSettings) -> dict[str, Any]:
    """The event topic's report; with a routing template, every topic it names, summed, with the
    newest event among them and the list of topics."""
    topics = await event_topics(settings)
    if topics == [settings.topic]:
        return await topic_report(settings.kafka, settings.topic)
    reports = [await topic_report(settings.kafka, t) for t in topics]
    lasts = [r["last_event"] for r in reports if r.get("last_event")]
    return {
        "topic": settings.topic, "exists": bool(reports), "topics": topics,
        "partitions": sum(r["partitions"] for r in reports),
        "committed_offsets": sum(r["committed_offsets"] for r in reports),
        "open_transaction_offsets": sum(r["open_transaction_offsets"] for r in reports),
        "last_event": max(lasts, key=lambda e: e["written"], default=None),
    }


def gather(settings: StreamSettings) -> dict[str, Any]:
    now = time.time()
    store = CheckpointStore(settings.kafka, settings.checkpoint_topic, settings.name)
    cp, found_in = asyncio.run(store.find())
    report: dict[str, Any] = {
        "connector": settings.name,
        "checkpoint_topic": found_in,
        "checkpoint": checkpoint_report(cp, now) if cp else None,
    }
    try:
        watcher = asyncio.run(repair_requests.pending(settings.kafka, settings.checkpoint_topic, settings.name))
        report["repair_requests"] = [r.as_dict() for r in watcher.pending.values()]
    except SinkError as exc:
        report["repair_requests"] = {"error": str(exc)}
    try:
        report["events"] = asyncio.run(events_report(settings))
    except SinkError as exc:
        report["events"] = {"topic": settings.topic, "error": str(exc)}
    report["server"] = server_report(settings, cp)
    return report


def render(r: dict[str, Any]) -> str:
    lines = [f"connector    {r['connector']}  (checkpoints in {r['checkpoint_topic']})"]
    cp = r["checkpoint"]
    if cp is None:
        lines.append("checkpoint   none: this connector has not run yet (or uses another --checkpoint-topic)")
    else:
        lines.append(f"checkpoint   resumes at {cp['resume']}" + (f"  gtid {cp['gtid']}" if cp["gtid"] else ""))
        if cp["written"]:
            lines.append(f"  written    {cp['written']} ({cp['age_seconds']:.0f}s ago; rewritten every few "
                         "seconds while the connector runs)")
        if cp["posts_emitted_past_resume"]:
            lines.append(f"  pending    {cp['posts_emitted_past_resume']} post(s) already emitted past the resume "
                         f"point, up to {cp['furthest_emitted']} (a post older than them was still in its window)")
        else:
            lines.append("  pending    no post emitted past the resume point")
        if cp["snapshot"]:
            lines.append(f"  snapshot   {orjson.dumps(cp['snapshot']).decode()}")
    requests = r.get("repair_requests")
    if isinstance(requests, dict):
        lines.append(f"repairs      cannot read the repair requests ({requests['error']})")
    elif requests:
        lines.append(f"repairs      {len(requests)} pending (`verify --repair`; the running connector does them "
                     "one at a time, after any backfill)")
        for q in requests:
            asked = _iso(q["asked_ms"] / 1000) if q["asked_ms"] else "?"
            lines.append(f"  request    {q['id']}: {q['posts']} posts ({', '.join(q['first'])}"
                         f"{', …' if q['posts'] > len(q['first']) else ''}), asked {asked}")
    server = r["server"]
    if not server["reachable"]:
        lines.append(f"server       unreachable: {server['error']}")
    else:
        lines.append(f"server       {server['version']} at {server['position']}")
        if "lag" in server:
            lines.append(f"  lag        {server['lag']['detail']}")
    ev = r["events"]
    if "error" in ev:
        lines.append(f"events       {ev['topic']}: cannot read ({ev['error']})")
    elif not ev["exists"]:
        lines.append(f"events       {ev['topic']}: no such topic yet")
    else:
        lines.append(f"events       {ev['topic']}: {ev['partitions']} partition(s), {ev['committed_offsets']} "
                     f"committed offsets (records and transaction markers), "
                     f"{ev['open_transaction_offsets']} in open transactions")
        last = ev["last_event"]
        if last:
            lines.append(f"  last       {last['op']} post {last['post']} from {last['position']} "
                         f"(binlog time {last['source_time']}, written {last['written']})")
    return "\n".join(lines)


def show_status(settings: StreamSettings, as_json: bool = False) -> int:
    report = gather(settings)
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render(report))
    return 0 if report["checkpoint"] is not None else Exit.NO_CHECKPOINT
