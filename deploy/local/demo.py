#!/usr/bin/env python3
"""`make demo`: real WordPress edits becoming post events on Kafka, in front of you.

Starts (or reuses) the local stack, seeds a few sample posts, runs `wpcdc stream --snapshot
initial` against the site, then performs editor actions through WordPress's own PHP API and
prints each event as a consumer reads it from Kafka. Nothing is faked: stop it with Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import stack  # noqa: E402
from wordpress import WordPress  # noqa: E402

STEPS = [
    ("create a draft with a tag", lambda wp, s: s.update(post=wp.create_post(
        "Hello from the demo", "First words.", status="draft", tags=["demo"], meta={"color": "teal"}))),
    ("publish it", lambda wp, s: wp.publish(s["post"], via="update")),
    ("edit the title and content", lambda wp, s: wp.update_post(s["post"], title="Hello, edited", content="More words.")),
    ("change its tags", lambda wp, s: wp.run("set_tags", post_id=s["post"], tags=["demo", "kafka"], append=False)),
    ("the editor heartbeat (no event expected)", lambda wp, s: wp.run("heartbeat_lock", post_id=s["post"])),
    ("move it to the trash", lambda wp, s: wp.trash(s["post"])),
    ("delete it for good", lambda wp, s: wp.delete(s["post"])),
]


def describe(key: str, value: dict | None) -> str:
    if value is None:
        return f"  {key:>8}  (tombstone: the compacted topic forgets this post)"
    bits = [f"{value['op']:<8} {value['action']:<10} {value['post_type'] or '-':<10} seq={value['seq']}"]
    title = (value.get("after") or value.get("before") or {}).get("post_title")
    if title:
        bits.append(f"title={title!r}")
    if value["changed_fields"] and value["op"] == "update":
        bits.append(f"changed={','.join(value['changed_fields'][:4])}")
    if value["meta"]:
        bits.append("meta=" + ",".join(m["key"] for m in value["meta"]))
    terms = value["terms"]
    if terms["added"] or terms["removed"]:
        bits.append("terms=" + " ".join([f"+{t['slug']}" for t in terms["added"]] + [f"-{t['slug']}" for t in terms["removed"]]))
    return f"  {key:>8}  " + "  ".join(bits)


async def wait_for_topic(bootstrap: str, topic: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until the connector has created its topic: a consumer started earlier fills the screen with
    "topic not found" warnings that a newcomer reads as errors."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while topic not in await admin.list_topics():
            if proc.poll() is not None or asyncio.get_running_loop().time() > deadline:
                return  # the caller reports the connector's exit
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def consume(bootstrap: str, topic: str, stop: asyncio.Event) -> None:
    import orjson
    from aiokafka import AIOKafkaConsumer

    # No consumer group: the demo reads the whole topic itself (and needs no group coordinator).
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, isolation_level="read_committed",
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                for m in messages:
                    value = orjson.loads(m.value) if m.value is not None else None
                    print(describe(m.key.decode(), value), flush=True)
    finally:
        await consumer.stop()


async def main() -> int:
    ports = stack.up()
    env = {**os.environ, **stack.env(ports)}
    wp = WordPress.multisite()
    print("WordPress: seeding 3 sample posts", flush=True)
    wp.seed(3)
    name = f"demo-{uuid.uuid4().hex[:6]}"
    topic = f"wpcdc.{name}.posts"
    log = stack.STATE / f"{name}.log"
    cmd = [sys.executable, "-m", "cdc", "--log-format", "text", "stream", "--name", name,
           "--window", "1", "--snapshot", "initial"]
    print(f"wpcdc:     {' '.join(cmd[2:])}   (log: {log})", flush=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out)
    stop = asyncio.Event()
    await wait_for_topic(env["WPCDC_KAFKA_BOOTSTRAP"], topic, proc)
    consumer = asyncio.create_task(consume(env["WPCDC_KAFKA_BOOTSTRAP"], topic, stop))
    try:
        print(f"Kafka:     reading {topic} (read_committed); first the snapshot of existing posts\n", flush=True)
        await asyncio.sleep(8)
        state: dict[str, int] = {}
        for what, action in STEPS:
            if proc.poll() is not None:
                print(f"wpcdc exited with {proc.returncode}; see {log}")
                return 1
            print(f"\nWordPress: {what}", flush=True)
            await asyncio.to_thread(action, wp, state)
            await asyncio.sleep(3)
        print("\nDone. The connector keeps running until Ctrl-C; edit more with deploy/local/wordpress.py.")
        loop = asyncio.get_running_loop()
        waiter = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, waiter.set)
        if sys.stdin.isatty():
            await waiter.wait()
    finally:
        stop.set()
        await consumer
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        print(f"wpcdc stopped (exit {proc.returncode}); `make down` stops the stack.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(130)
