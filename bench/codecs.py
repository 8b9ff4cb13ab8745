"""CPU cost and compression ratio of each Kafka codec on wpcdc-shaped record batches.

The codec is a trade between the connector's CPU (it compresses every batch in the event loop),
the bytes Kafka stores and sends, and which consumers can read the topic (KafkaJS decodes only
gzip: tests/integration/test_clients.py). This measures the first two through aiokafka's own
code, so the numbers are what the producer pays:

- ``encode``/``decode``: ``aiokafka.codec``'s functions on the records part of a batch, CPU
  milliseconds per MB of uncompressed input;
- ``build``: ``DefaultRecordBatchBuilder`` with that codec (framing, CRC and codec; what
  ``send()`` costs per batch minus the network), to compare with ``none``;
- ``ratio``: uncompressed / compressed bytes.

Two batch shapes: ``single`` (one event per batch: a live site, one save per transaction) and
``catch-up`` (batches filled to 512 KiB, wpcdc's ``max_batch_size``: a backlog or a backfill).

The events are synthetic but shaped like wpcdc's (docs/events.md): full ``wp_posts`` rows with
block-editor content in prose drawn from a real English text, 1-20 KB; updates carry the row
before and after (the content differs by a paragraph), creates only after, snapshots after plus
meta. Prose of words drawn at random compresses a little worse than real writing, so the ratios
are, if anything, low.

    python -m bench.codecs [--events 600] [--seed 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import time
from collections.abc import Callable
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson
from aiokafka import codec
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

PROSE = Path("/usr/share/common-licenses/GPL-3")  # Debian's base-files: on every machine
BATCH_HEADER = 61  # DefaultRecordBatch's header; the codec compresses what follows
CATCH_UP_BYTES = 512 << 10
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

# name -> (encode, decode, the builder's codec id or None when the producer cannot choose it)
Codec = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes], int | None]
CODECS: dict[str, Codec] = {
    "none": (bytes, bytes, 0),
    "gzip": (codec.gzip_encode, codec.gzip_decode, 1),  # aiokafka: always level 9
    "gzip-6": (lambda b: codec.gzip_encode(b, compresslevel=6), codec.gzip_decode, None),
    "gzip-1": (lambda b: codec.gzip_encode(b, compresslevel=1), codec.gzip_decode, None),
    "snappy": (codec.snappy_encode, codec.snappy_decode, 2),
    "lz4": (codec.lz4_encode, codec.lz4_decode, 3),  # aiokafka: level 9
    "zstd": (codec.zstd_encode, codec.zstd_decode, 4),  # aiokafka: level 3
}


# ----------------------------------------------------------------------------------- the events


def _words() -> list[str]:
    if PROSE.exists():
        return re.findall(r"[A-Za-z][A-Za-z'-]*", PROSE.read_text())
    return ("the post editor saves a draft then publishes it to the site where readers comment on "
            "every paragraph and image of the page").split()


def _paragraph(rng: random.Random, words: list[str]) -> str:
    text = " ".join(rng.choice(words) for _ in range(rng.randint(25, 90)))
    return f"<!-- wp:paragraph -->\n<p>{text[0].upper()}{text[1:]}.</p>\n<!-- /wp:paragraph -->"


def _block(rng: random.Random, words: list[str]) -> str:
    kind = rng.random()
    if kind < 0.1:
        title = " ".join(rng.choice(words) for _ in range(rng.randint(3, 8)))
        return f'<!-- wp:heading -->\n<h2 class="wp-block-heading">{title}</h2>\n<!-- /wp:heading -->'
    if kind < 0.16:
        n = rng.randint(1000, 9999)
        return (f'<!-- wp:image {{"id":{n},"sizeSlug":"large"}} -->\n<figure class="wp-block-image size-large">'
                f'<img src="https://example.com/wp-content/uploads/2026/11/photo-{n}-1024x683.jpg" alt="" '
                f'class="wp-image-{n}"/></figure>\n<!-- /wp:image -->')
    return _paragraph(rng, words)


def _content(rng: random.Random, words: list[str], size: int) -> list[str]:
    blocks: list[str] = []
    while sum(map(len, blocks)) < size:
        blocks.append(_block(rng, words))
    return blocks


def _row(post_id: int, title: str, content: str, status: str, modified: str) -> dict[str, Any]:
    return {
        "ID": post_id, "post_author": 1, "post_date": "2026-11-27T19:57:19", "post_date_gmt": "2026-11-27T18:57:19",
        "post_content": content, "post_title": title, "post_excerpt": "", "post_status": status,
        "comment_status": "open", "ping_status": "open", "post_password": "",
        "post_name": re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-"), "to_ping": "", "pinged": "",
        "post_modified": modified, "post_modified_gmt": modified, "post_content_filtered": "", "post_parent": 0,
        "guid": f"https://example.com/?p={post_id}", "menu_order": 0, "post_type": "post",
        "post_mime_type": "", "comment_count": 0,
    }


def event(rng: random.Random, words: list[str], n: int) -> tuple[bytes, bytes]:
    """(key, value) of one event: an update (60 %), a create (20 %) or a snapshot (20 %)."""
    post_id, seq = 1000 + n, (12 << 32) + 67_000_000 + n * 4321
    op = rng.choices(["update", "create", "snapshot"], [6, 2, 2])[0]
    # Content from ~0.4 to ~9 KB, log-uniform: an update carries it twice, so events of 1-20 KB.
    blocks = _content(rng, words, int(math.exp(rng.uniform(math.log(400), math.log(9000)))))
    title = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9))).capitalize()
    after = _row(post_id, title, "\n\n".join(blocks), "publish", "2026-11-28T10:11:12")
    before = None
    if op == "update":
        edited = list(blocks)
        edited[rng.randrange(len(edited))] = _paragraph(rng, words)
        before = _row(post_id, title, "\n\n".join(edited), "publish", "2026-11-27T19:57:19")
    meta = []
    if op != "update":
        meta = [{"meta_id": 5000 + n * 10 + i, "key": k, "op": "add", "before": None, "after": v}
                for i, (k, v) in enumerate([("_thumbnail_id", str(rng.randint(1000, 9999))),
                                            ("_wp_page_template", "default"),
                                            ("footnotes", ""), ("_yoast_wpseo_metadesc", title)])]
    doc = {
        "schema_version": 1, "event_id": f"1-{post_id}-{seq}", "op": op,
        "action": {"update": "updated", "create": "published", "snapshot": "snapshot"}[op],
        "blog_id": 1, "post_id": post_id, "post_type": "post", "seq": seq, "ts_ms": 1795805840583 + n,
        "source": {"connector": "bench", "db": "wordpress", "server_id": 681143783, "file": "mariadb-bin.000012",
                   "pos": 67196922 + n, "gtid": f"0-1-{3082 + n}", "ts_ms": 1795805839000 + n,
                   "first": {"file": "mariadb-bin.000012", "pos": 67192038 + n}, "rows": 3,
                   "snapshot": op == "snapshot"},
        "status": {"before": before and "publish", "after": "publish"},
        "changed_fields": (["post_content", "post_modified", "post_modified_gmt"] if before else list(after)),
        "before": before, "after": after, "meta": meta,
        "terms": {"added": [{"term_taxonomy_id": 1, "taxonomy": "category", "term_id": 1, "slug": "news",
                             "name": "News"}] if op != "update" else [], "removed": []},
        "revisions": [{"revision_id": post_id + 100_000, "autosave": False}] if op == "update" else [],
    }
    return f"1:{post_id}".encode(), orjson.dumps(doc)


# ---------------------------------------------------------------------------------- the batches


def _builder(codec_id: int) -> DefaultRecordBatchBuilder:
    return DefaultRecordBatchBuilder(magic=2, compression_type=codec_id, is_transactional=1, producer_id=7,
                                     producer_epoch=0, base_sequence=0, batch_size=2 * CATCH_UP_BYTES)


def batches(records: list[tuple[bytes, bytes]], fill: int) -> list[list[tuple[bytes, bytes]]]:
    """Records grouped as the producer would: one per batch (fill 0), or up to ``fill`` bytes."""
    if fill == 0:
        return [[r] for r in records]
    out: list[list[tuple[bytes, bytes]]] = [[]]
    size = 0
    for r in records:
        if out[-1] and size + len(r[1]) > fill:
            out.append([])
            size = 0
        out[-1].append(r)
        size += len(r[1])
    return out


def build(group: list[tuple[bytes, bytes]], codec_id: int) -> bytes:
    b = _builder(codec_id)
    for i, (key, value) in enumerate(group):
        b.append(i, 1795805840583, key, value, [])
    return bytes(b.build())


def _each(fn: Callable[[bytes], bytes], items: list[bytes]) -> None:
    for item in items:
        fn(item)


def _build_all(groups: list[list[tuple[bytes, bytes]]], codec_id: int) -> None:
    for group in groups:
        build(group, codec_id)


def _cpu(fn: Callable[[], object], min_seconds: float) -> float:
    """CPU seconds of one call of ``fn``, over as many calls as ``min_seconds`` takes."""
    calls, start = 0, time.process_time()
    while True:
        fn()
        calls += 1
        spent = time.process_time() - start
        if spent >= min_seconds:
            return spent / calls


def measure(groups: list[list[tuple[bytes, bytes]]], rounds: int = 3,
            min_seconds: float = 0.25) -> dict[str, dict[str, float]]:
    """Every codec's numbers on these batches; each time is the best of ``rounds``.

    The rounds go through all the codecs in turn, so a neighbour's load on the shared cores
    weighs on every codec alike instead of on whichever ran while it lasted.
    """
    payloads = [build(g, 0)[BATCH_HEADER:] for g in groups]
    mb = sum(map(len, payloads)) / 1e6
    results: dict[str, dict[str, float]] = {}
    jobs: dict[tuple[str, str], Callable[[], object]] = {}
    for name, (encode, decode, codec_id) in CODECS.items():
        compressed = [encode(p) for p in payloads]
        assert all(decode(c) == p for c, p in zip(compressed, payloads)), name
        results[name] = {"ratio": sum(map(len, payloads)) / sum(map(len, compressed))}
        jobs[name, "encode"] = partial(_each, encode, payloads)
        jobs[name, "decode"] = partial(_each, decode, compressed)
        if codec_id is not None:
            built = [build(g, codec_id) for g in groups]
            assert [len(list(DefaultRecordBatch(b))) for b in built] == [len(g) for g in groups], name
            jobs[name, "build"] = partial(_build_all, groups, codec_id)
    for _ in range(rounds):
        for (name, what), job in jobs.items():
            ms = 1000 * _cpu(job, min_seconds) / mb
            key = f"{what}_ms_per_mb"
            results[name][key] = min(results[name].get(key, math.inf), ms)
    return results


def _table(shape: str, results: dict[str, dict[str, float]]) -> str:
    zstd = results["zstd"]["encode_ms_per_mb"]
    lines = [f"{shape}: {'codec':<7} {'ratio':>6} {'encode ms/MB':>13} {'x zstd':>7} {'decode ms/MB':>13} "
             f"{'build ms/MB':>12} {'x none':>7}"]
    none_build = results["none"]["build_ms_per_mb"]
    for name, r in results.items():
        build_ms = r.get("build_ms_per_mb")
        lines.append(
            f"{'':<{len(shape)}}  {name:<7} {r['ratio']:>6.2f} {r['encode_ms_per_mb']:>13.2f} "
            f"{r['encode_ms_per_mb'] / zstd:>7.2f} {r['decode_ms_per_mb']:>13.2f} "
            + (f"{build_ms:>12.2f} {build_ms / none_build:>7.2f}" if build_ms is not None else f"{'-':>12} {'-':>7}"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)

    rng, words = random.Random(args.seed), _words()
    records = [event(rng, words, n) for n in range(args.events)]
    sizes = sorted(len(v) for _, v in records)
    machine = {
        "cpu": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), platform.processor()),
        "cores": os.cpu_count(), "load_average": [round(x, 1) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(),
        "aiokafka": version("aiokafka"), "cramjam": version("cramjam"),
    }
    print(f"machine: {machine}")
    print(f"events: {len(records)}, {sum(sizes) / 1e6:.1f} MB, bytes min {sizes[0]} median "
          f"{sizes[len(sizes) // 2]} max {sizes[-1]}")
    report: dict[str, Any] = {"machine": machine, "events": len(records), "sizes": [sizes[0], sizes[-1]]}
    for shape, fill in (("single", 0), ("catch-up", CATCH_UP_BYTES)):
        groups = batches(records, fill)
        results = measure(groups)
        report[shape] = {"batches": len(groups), **results}
        print(f"\n{len(groups)} batches")
        print(_table(shape, results))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
