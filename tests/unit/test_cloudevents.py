"""Records carry CloudEvents attributes (Kafka binding, binary mode): read back with the SDK."""

from __future__ import annotations

import dataclasses

import orjson
from cloudevents.kafka import KafkaMessage, from_binary

from cdc.encode import encode
from cdc.events import Origin, build
from cdc.wordpress import Capture

from .rows import Binlog, post_row
from .test_assemble import run


def _events():  # type: ignore[no-untyped-def]
    b = Binlog()
    row = post_row(7, post_status="publish", post_type="page")
    changes = run(b.insert_post(row))[0].close_all() + run(b.delete_post(row))[0].close_all()
    built = [build(c, Capture(), Origin("site-a", "wordpress", 1), 1) for c in changes]
    assert all(built)
    return built


def _message(record) -> KafkaMessage:  # type: ignore[no-untyped-def]
    return KafkaMessage(headers=dict(record.headers), key=record.topic_key, value=record.value)


def test_the_sdk_reads_each_event_with_its_json_as_data() -> None:
    created, deleted = _events()
    [record] = encode(created)
    ce = from_binary(_message(record), data_unmarshaller=orjson.loads)
    assert ce["specversion"] == "1.0"
    assert ce["id"] == created.event_id
    assert ce["type"] == "org.wordpress.post.published" == f"org.wordpress.post.{created.action}"
    assert ce["source"] == "/wpcdc/site-a/wordpress/blogs/1"
    assert ce["subject"] == "posts/7"
    assert ce["time"].endswith("Z") and ce["time"][:4].isdigit()
    assert ce.data == orjson.loads(record.value)  # the value stays the documented JSON
    assert dict(record.headers)["content-type"] == b"application/json"


def test_routing_headers_name_blog_type_op_and_action_without_parsing() -> None:
    created, deleted = _events()
    event_record, tombstone = encode(deleted)
    headers = dict(event_record.headers)
    assert headers["wpcdc_blog_id"] == b"1" and headers["wpcdc_post_type"] == b"page"
    assert headers["wpcdc_op"] == b"delete" and headers["wpcdc_action"] == deleted.action.encode()
    assert orjson.loads(event_record.value)["action"] == deleted.action
    # the tombstone is compaction's record: routing headers, no CloudEvents attributes
    assert tombstone.value is None
    assert dict(tombstone.headers) == {"wpcdc_blog_id": b"1", "wpcdc_post_type": b"page", "wpcdc_op": b"tombstone"}


def test_ids_are_unique_per_source_and_time_is_the_binlog_time() -> None:
    created, deleted = _events()
    ids = {dict(encode(e)[0].headers)["ce_id"] for e in (created, deleted)}
    assert len(ids) == 2
    later = dataclasses.replace(created, source=dataclasses.replace(created.source, ts_ms=1_700_000_000_123))
    assert dict(encode(later)[0].headers)["ce_time"] == b"2023-11-14T22:13:20.123Z"
