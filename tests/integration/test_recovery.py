"""Crash and restart: every committed change arrives once, in order, whatever kills the connector.

A WordPress workload runs while the connector is killed with SIGKILL at random moments and
restarted from its checkpoint. Afterwards, read ``read_committed``:

* no event twice (event ids unique) and each post's ``seq`` strictly increasing;
* every binlog row in exactly one event: per post, the rows the events cover add up to what an
  uninterrupted connector reading the same binlog range counts;
* the state folded from the events equals the database (post row, meta, terms).
"""

from __future__ import annotations

import random
import re
import time

import pytest

from tests.integration.harness import Connector, Workload, check_stream, database_state, fold, wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_kill_9_cycles_lose_nothing_and_repeat_nothing(connectors, wordpress, stack, delivery: str) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(20261127)
    # A window long against the workload's pace keeps several posts pending at once, so kills land
    # while some posts are already in Kafka past the resume point: the case the marks exist for.
    crashy: Connector = connectors(window=1.5, extra=["--delivery", delivery])
    crashy.start()
    start = crashy.checkpoint()
    assert start is not None
    workload = Workload(wordpress, seed=7)
    workload.start()
    kills = 0
    try:
        for cycle in range(6):
            if cycle % 2:
                time.sleep(rng.uniform(0.5, 3.0))
            else:  # aim: kill right after a checkpoint that has posts emitted past its resume point
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not (crashy.checkpoint() or start).emitted:
                    time.sleep(0.05)
            crashy.kill()
            kills += 1
            time.sleep(rng.uniform(0.0, 0.5))
            crashy.start()
    finally:
        workload.stop.set()
        workload.join(30)
    assert workload.error is None, workload.error
    assert workload.actions > 20 and kills == 6
    time.sleep(2.0)
    assert crashy.stop() == 0, crashy.log()[-3000:]
    restarts_with_marks = re.findall(r"streaming from \S+ \(([1-9][0-9]*) posts already emitted", crashy.log())
    assert restarts_with_marks, "no kill landed while posts past the resume point were in Kafka"

    # The reference: one uninterrupted connector over the same binlog range.
    reference: Connector = connectors(window=1.5)
    reference.start("--start", str(start.resume))
    keys = {(1, pid) for pid in workload.post_ids}
    wait_until(lambda: fold(reference.events(*keys)).keys() >= keys, 60, what="reference caught up")
    time.sleep(3.0)
    assert reference.stop() == 0

    got, want = crashy.events(*keys), reference.events(*keys)
    check_stream(want)
    folded, folded_ref = fold(got), fold(want)
    rows, rows_ref = ({k: s["rows"] for k, s in f.items()} for f in (folded, folded_ref))
    if delivery == "exactly-once":
        check_stream(got)
        assert rows == rows_ref
    else:  # a crash may repeat the last flush, never skip a row
        assert rows.keys() == rows_ref.keys() and all(rows[k] >= rows_ref[k] for k in rows)

    db = database_state(stack.mysql)
    for pid in workload.post_ids:
        s = folded[(1, pid)]
        d = db[(1, pid)]
        assert s["row"] is not None and d["row"] is not None
        for field in ("post_title", "post_status", "post_content"):
            assert s["row"][field] == d["row"][field], f"post {pid} {field}"
        assert s["meta"] == d["meta"], f"post {pid} meta"
        assert s["terms"] == d["terms"], f"post {pid} terms"
