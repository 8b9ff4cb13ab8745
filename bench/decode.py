"""Decode-only throughput: wpcdc's binlog source (reader thread + normalisation) over a range,
without the assembler or Kafka. This is the "relevant rows/s decoded on one core" figure.

    python -m bench.decode FILE:POS FILE:POS [--database bench_bulk] [--profile out.prof] [--generic]
"""

from __future__ import annotations

import argparse
import os
import queue
import time
from typing import Any

from bench.common import Pos, Stack
from bench.common import stack as stackmod


def _hwm_mb() -> float:
    """Peak RSS of this process (VmHWM; ru_maxrss would include the parent's, kept across exec)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def decode_range(st: Stack, database: str, start: Pos, end: Pos, *, fastpath: bool = True) -> dict[str, Any]:
    from cdc.config import MysqlSettings
    from cdc.model import Commit, RowsBatch
    from cdc.position import Position
    from cdc.source.binlog import BinlogSource, SourceFailed
    from cdc.wordpress import TableNames

    env = stackmod.env()
    settings = MysqlSettings(host="127.0.0.1", port=int(env["WPCDC_MYSQL_PORT"]), user=env["WPCDC_MYSQL_USER"],
                             password=env["WPCDC_MYSQL_PASSWORD"], database=database)
    source = BinlogSource(settings, TableNames("wp_"), server_id=4_000_000 + os.getpid() % 100_000,
                          start=Position(start.file, start.pos), gtid=None)
    if not fastpath:
        source.fastpath = False
    rows = 0
    target = Position(end.file, end.pos)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    source.start()
    try:
        done = False
        while not done:
            chunk = source.queue.get(timeout=60)
            for item in chunk:
                if isinstance(item, RowsBatch):
                    rows += len(item.changes)
                elif isinstance(item, Commit):
                    if not item.end < target:
                        done = True
                elif isinstance(item, SourceFailed):
                    raise item.error
    except queue.Empty:
        raise RuntimeError("decode: the source went quiet before the end position") from None
    finally:
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        source.stop()
    return {"rows": rows, "wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
            "rows_per_second": round(rows / wall), "rows_per_cpu_second": round(rows / cpu) if cpu else None,
            "peak_rss_mb": _hwm_mb(),
            "fastpath": fastpath}


def _source(st: Stack, database: str, start: Pos, fastpath: bool) -> Any:
    from cdc.config import MysqlSettings
    from cdc.position import Position
    from cdc.source.binlog import BinlogSource
    from cdc.wordpress import TableNames

    env = stackmod.env()
    settings = MysqlSettings(host="127.0.0.1", port=int(env["WPCDC_MYSQL_PORT"]), user=env["WPCDC_MYSQL_USER"],
                             password=env["WPCDC_MYSQL_PASSWORD"], database=database)
    source = BinlogSource(settings, TableNames("wp_"), server_id=4_000_000 + os.getpid() % 100_000 + fastpath,
                          start=Position(start.file, start.pos), gtid=None)
    source.fastpath = fastpath
    return source


def _items(source: Any, end: Pos) -> Any:
    from cdc.model import Commit, RowsBatch
    from cdc.position import Position
    from cdc.source.binlog import SourceFailed

    target = Position(end.file, end.pos)
    while True:
        for item in source.queue.get(timeout=60):
            if isinstance(item, SourceFailed):
                raise item.error
            if isinstance(item, RowsBatch):
                yield item
            elif isinstance(item, Commit) and not item.end < target:
                return


def verify_range(st: Stack, database: str, start: Pos, end: Pos) -> dict[str, Any]:
    """Decode the range with the fast path and with the library's decoder; every row must match
    (values and their Python types). Returns counts; raises AssertionError on the first mismatch."""
    fast, slow = _source(st, database, start, True), _source(st, database, start, False)
    fast.start()
    slow.start()
    rows = 0
    try:
        for a, b in zip(_items(fast, end), _items(slow, end), strict=True):
            assert len(a.changes) == len(b.changes), (a.position, len(a.changes), len(b.changes))
            for x, y in zip(a.changes, b.changes):
                for side in ("before", "after"):
                    u, v = getattr(x, side), getattr(y, side)
                    same = u == v and (u is None or all(type(u[k]) is type(v[k]) for k in v))
                    assert same, f"row differs at {a.position} ({side}): {u!r} != {v!r}"
                assert (x.table, x.op, x.position, x.txn, x.ts) == (y.table, y.op, y.position, y.txn, y.ts)
            rows += len(a.changes)
    finally:
        fast.stop()
        slow.stop()
    return {"rows_compared": rows, "identical": True}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("start")
    ap.add_argument("end")
    ap.add_argument("--database", default="bench_bulk")
    ap.add_argument("--profile")
    ap.add_argument("--generic", action="store_true", help="the library's generic decoder (no fast path)")
    ap.add_argument("--verify", action="store_true", help="compare the fast path with the library, row by row")
    a = ap.parse_args()
    st = Stack.load()
    s, e = (Pos.of(*x.rsplit(":", 1)) for x in (a.start, a.end))
    if a.verify:
        print(verify_range(st, a.database, s, e))
        return
    if a.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        out = decode_range(st, a.database, s, e, fastpath=not a.generic)
        prof.disable()
        prof.dump_stats(a.profile)
    else:
        out = decode_range(st, a.database, s, e, fastpath=not a.generic)
    print(out)


if __name__ == "__main__":
    main()
