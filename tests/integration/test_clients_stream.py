"""Every mainstream client reads what the connector writes, not only what a test producer writes.

tests/integration/test_clients.py shows the four clients (aiokafka, kcat, KafkaJS, the Java
client) read each codec of a hand-made transactional topic. Here a real ``wpcdc stream`` writes
the topic from real WordPress saves: posts created (with tags and meta, on two blogs), edited,
retagged, trashed and deleted, so the topic holds updates, deletes and their tombstones inside
the connector's own transactions, beside the checkpoint records of the same transactions.

With the default ``--compression none`` every client returns exactly aiokafka's records (key,
value, headers, tombstones, offsets). With ``--compression zstd`` KafkaJS fails: it decodes only
gzip without plugins, which is why the default is none.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.clients import READERS, ClientError, log_codecs, read_all_clients
from tests.integration.harness import Connector, wait_until

pytestmark = pytest.mark.integration

BODY = " ".join(f"<!-- wp:paragraph --><p>Paragraph {i}: Ünïcode ✓ and plain words to compress.</p>"
                "<!-- /wp:paragraph -->" for i in range(30))


def _edit(wordpress) -> dict[str, list[tuple[int, int]]]:  # type: ignore[no-untyped-def]
    """The editors' session: which (blog, post) keys end alive and which deleted."""
    kept = wordpress.create_post("Clients: kept ✓", BODY, status="publish", tags=["clients-a"],
                                 meta={"mood": "happy"})
    trashed = wordpress.create_post("Clients: trashed", BODY, status="draft", tags=["clients-b"])
    deleted = wordpress.create_post("Clients: deleted on blog 2", BODY, status="publish", blog=2)
    gone = wordpress.create_post("Clients: trashed, then deleted", "short", status="publish")
    time.sleep(1.0)  # past the window: the creates are events of their own
    wordpress.update_post(kept, title="Clients: kept, edited ✓", content=BODY + " edited")
    wordpress.run("update_meta", post_id=kept, key="mood", value="edited")
    wordpress.run("set_tags", post_id=trashed, tags=["clients-c"], append=False)
    wordpress.trash(trashed)
    wordpress.trash(gone)
    time.sleep(1.0)
    wordpress.delete(deleted, blog=2)
    wordpress.delete(gone)
    return {"alive": [(1, kept), (1, trashed)], "deleted": [(2, deleted), (1, gone)]}


def _settled(c: Connector, posts: dict[str, list[tuple[int, int]]]) -> None:
    """Until the topic ends with a tombstone for each deleted post and holds the alive ones,
    then until it stops growing."""
    def complete() -> bool:
        messages = c.messages()
        last = {m.post: m for m in messages}
        return (all(k in last and last[k].value is None for k in posts["deleted"])
                and all(k in last and last[k].value is not None for k in posts["alive"]))

    wait_until(complete, 60, 0.5, f"the events of {c.name}")
    before = -1
    while (now := len(c.messages())) != before:
        before = now
        time.sleep(c.window + 1.0)


def test_every_client_reads_the_connectors_stream(connectors, wordpress) -> None:  # type: ignore[no-untyped-def]
    plain: Connector = connectors(window=0.4)
    zstd: Connector = connectors(window=0.4, extra=["--compression", "zstd"])
    plain.start()
    zstd.start()
    posts = _edit(wordpress)
    for c in (plain, zstd):
        _settled(c, posts)
        assert c.stop() == 0, c.log()[-3000:]

    seen = read_all_clients(plain.topic, plain.bootstrap)
    reference = seen["aiokafka"]
    for client, records in seen.items():
        assert records == reference, f"{client} read another topic than aiokafka"
    # aiokafka's read is the harness's: the events the other tests check, tombstones included.
    assert [(r.key, r.value is None) for r in reference] == [(m.key, m.value is None) for m in plain.messages()]
    tombstones = {r.key for r in reference if r.value is None}
    assert tombstones == {f"{b}:{p}" for b, p in posts["deleted"]}
    assert {r.key for r in reference} >= {f"{b}:{p}" for b, p in posts["alive"] + posts["deleted"]}
    assert log_codecs(plain.topic) == {"none"}
    print(f"{len(reference)} records, {len(tombstones)} tombstones, read alike by {sorted(seen)}")

    # zstd: the batches really are zstd; KafkaJS says so, the others read what aiokafka reads.
    assert log_codecs(zstd.topic) == {"zstd"}
    compressed = READERS["aiokafka"](zstd.topic, zstd.bootstrap)
    assert [(r.key, r.value is None) for r in compressed] == [(m.key, m.value is None) for m in zstd.messages()]
    for client, read in READERS.items():
        if client == "kafkajs":
            with pytest.raises(ClientError) as failure:
                read(zstd.topic, zstd.bootstrap)
            assert "zstd" in failure.value.message.lower(), failure.value.message
        else:
            assert read(zstd.topic, zstd.bootstrap) == compressed, client
