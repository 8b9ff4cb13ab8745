"""Table ids are reused across a server restart: a stale table map must never decode rows.

MariaDB numbers tables in the binlog's TABLE_MAP events from a counter that starts again at every
server start, so the id one binlog file gave ``wp_term_taxonomy`` can be ``wp_options``'s in the
next. mysql-replication forgets its table maps only on a rotate event with a timestamp, which a
restart does not send, and it keeps no map for a table it filters out: without wpcdc's fix, the
rows of the uncaptured table were decoded with the captured table's layout (a crash at best, wrong
data at worst). Each scenario here makes the first table opened after a restart a captured one,
restarts, opens an uncaptured one first, and streams across both files.
"""

from __future__ import annotations

import sys
import time

import pymysql
import pytest

from tests.conftest import LOCAL
from tests.integration.harness import Connector, wait_until

sys.path.insert(0, str(LOCAL))
import stack as local_stack  # noqa: E402

pytestmark = pytest.mark.integration


def _admin(port: int, *statements: str) -> list[tuple]:
    conn = pymysql.connect(host="127.0.0.1", port=port, user=local_stack.ADMIN_USER,
                           password=local_stack.ADMIN_PASSWORD, database="wordpress", autocommit=True)
    rows: list[tuple] = []
    with conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
            rows = list(cur.fetchall())
    return rows


def _restart(port: int) -> None:
    local_stack.mariadb_down()
    local_stack.up(["mariadb"])
    wait_until(lambda: _admin(port, "SELECT 1"), timeout=60, what="MariaDB back")


def test_rows_of_a_reused_table_id_are_never_decoded_with_the_old_map(cdc_env, stack, wordpress) -> None:  # type: ignore[no-untyped-def]
    port = stack.mysql
    post = wordpress.create_post("table ids", status="publish", meta={"tid": "before"})
    try:
        _restart(port)
        [(file, pos, *_)] = _admin(port, "SHOW MASTER STATUS")
        # The first user table opened since the start: it takes the counter's first id.
        _admin(port, f"UPDATE wp_postmeta SET meta_value = 'after restart' WHERE post_id = {post} AND meta_key = 'tid'")
        _restart(port)
        # Now an uncaptured table is opened first and gets that same id; then captured rows again.
        _admin(port, "UPDATE wp_options SET option_value = option_value WHERE option_name = 'blogname'",
               "INSERT INTO wp_options (option_name, option_value, autoload) VALUES "
               f"('wpcdc_tid_{int(time.time() * 1000)}', REPEAT('x', 300), 'no')")
        _admin(port, f"UPDATE wp_postmeta SET meta_value = 'second restart' WHERE post_id = {post} AND meta_key = 'tid'")
    finally:
        local_stack.up(["mariadb"])
    c = Connector(cdc_env, window=0, extra=["--start", f"{file}:{pos}", "--blogs", "1", "--max-delay", "1"])
    c.start()
    try:
        def meta_values() -> list[str]:
            values = []
            for e in c.events((1, post)):
                values += [m["after"] for m in e["meta"] if m["key"] == "tid"]
            return values

        assert wait_until(lambda: meta_values() == ["after restart", "second restart"] or None, timeout=60,
                          what="both meta updates, decoded as postmeta")
        assert c.proc is not None and c.proc.poll() is None, c.log()
        # nothing else: the uncaptured table's rows were not taken for a captured table's
        time.sleep(4.0)  # past --max-delay: a change of a post that is not there would be out by now
        assert {m.key for m in c.messages()} == {f"1:{post}"}, c.log()[-3000:]
    finally:
        c.stop()
