"""Post event → Kafka record (key, JSON value), JSON-safe whatever the database holds.

* datetimes become ISO-8601 (orjson does it natively); MySQL zero dates arrive as None.
* strings that are not valid UTF-8 reach us as surrogate escapes (see source.decoding) and
  become ``{"$base64": "…"}`` holding the exact original bytes, so nothing is lost or mangled.
* a value larger than ``max_bytes`` follows the size policy: the largest text fields are
  replaced by ``{"$truncated": true, "bytes": N, "sha256": "…"}`` until the event fits, and
  the event says which in ``truncated``. The stream never stops on a big row.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import decimal
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from cdc.events import PostEvent

DEFAULT_MAX_BYTES = 900_000  # under Kafka's default message.max.bytes (1 MiB) with headroom


@dataclass(frozen=True, slots=True)
class Record:
    topic_key: bytes
    value: bytes | None  # None: a tombstone


def _default(obj: Any) -> Any:
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"$base64": base64.b64encode(bytes(obj)).decode()}
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _safe(value: Any) -> Any:
    """Replace strings holding surrogate escapes (invalid UTF-8 in the database) by base64."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogateescape")
            return {"$base64": base64.b64encode(raw).decode(), "$invalid_utf8": True}
    if isinstance(value, dict):
        return {k: _safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    return value


def dumps(doc: Any) -> bytes:
    """orjson, with a slow pass only when the fast one meets invalid UTF-8."""
    try:
        return orjson.dumps(doc, default=_default)
    except orjson.JSONEncodeError:
        return orjson.dumps(_safe(doc), default=_default)


def _text_fields(doc: dict[str, Any]) -> list[tuple[int, dict[str, Any], str, str]]:
    """(size, container, key, path) of every text value worth truncating, largest first."""
    found: list[tuple[int, dict[str, Any], str, str]] = []
    for side in ("before", "after"):
        row = doc.get(side)
        if isinstance(row, dict):
            for k, v in row.items():
                if isinstance(v, str) and len(v) > 1024:
                    found.append((len(v), row, k, f"{side}.{k}"))
    for m in doc.get("meta") or ():
        for side in ("before", "after"):
            v = m.get(side)
            if isinstance(v, str) and len(v) > 1024:
                found.append((len(v), m, side, f"meta[{m.get('key')}].{side}"))
    found.sort(key=lambda t: t[0], reverse=True)
    return found


def encode_value(doc: dict[str, Any], max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    value = dumps(doc)
    if len(value) <= max_bytes:
        return value
    doc = copy.deepcopy(doc)  # rows are shared with the assembler's cache: never edit them in place
    truncated = []
    for _, container, k, path in _text_fields(doc):
        text = container[k]
        raw = text.encode("utf-8", "surrogateescape")
        container[k] = {
            "$truncated": True,
            "bytes": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "head": raw[:256].decode("utf-8", "ignore"),
        }
        truncated.append(path)
        doc["truncated"] = truncated
        value = dumps(doc)
        if len(value) <= max_bytes:
            return value
    raise ValueError(f"event {doc.get('event_id')} is {len(value)} bytes even with text truncated")


def encode(event: PostEvent, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Record]:
    """The records for one event: the event itself, then a tombstone after a delete."""
    key = event.key.encode()
    records = [Record(key, encode_value(event.as_dict(), max_bytes))]
    if event.op == "delete":
        records.append(Record(key, None))
    return records
