"""Operating wpcdc against the real stack: metrics after a real stream, health when a server stops
or hangs, TLS and SASL to Kafka, TLS to MariaDB, grants `wpcdc check` reports, `wpcdc status`, and
that no password ever shows up in a log, an error message or a metric.

The connector runs as `python -m cdc stream` (tests/integration/harness.py) with --metrics-port;
the tests read its /metrics, /healthz and /readyz like Prometheus and the kubelet would.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymysql
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cdc import errors
from tests.integration.harness import REPO, Connector, wait_until
from tests.unit import test_dashboard as dashboard

import stack as local_stack

pytestmark = pytest.mark.integration

DOCS = REPO / "docs" / "operations.md"


# ------------------------------------------------------------------------------------ helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Endpoint:
    """The connector's metrics port, read the way Prometheus and the kubelet read it."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError as e:
            return 0, repr(e)

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = self.get("/metrics")
        assert status == 200, body
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(body) for s in f.samples}

    def value(self, name: str, **labels: str) -> float:
        return self.samples().get((name, tuple(sorted(labels.items()))), 0.0)

    def wait(self, path: str, status: int, timeout: float = 60.0, contains: str = "") -> str:
        def check() -> str | None:
            code, body = self.get(path)
            return body if code == status and contains in body else None

        return wait_until(check, timeout, 0.5, f"{path} to answer {status} {contains!r}")


def metered(env: dict[str, str], *extra: str, **kw: Any) -> tuple[Connector, Endpoint]:
    port = free_port()
    c = Connector(env, extra=["--metrics-port", str(port), "--metrics-host", "127.0.0.1", *extra], **kw)
    return c, Endpoint(port)


@contextmanager
def running(c: Connector) -> Iterator[Connector]:
    try:
        c.start()  # inside: a start that times out (a server away) must not leave the process behind
        yield c
    finally:
        if c.running:
            c.kill()


def cli(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cdc", "--log-format", "json", *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def admin_sql(port: int, *statements: str) -> None:
    conn = pymysql.connect(host="127.0.0.1", port=port, user=local_stack.ADMIN_USER,
                           password=local_stack.ADMIN_PASSWORD, autocommit=True)
    with conn, conn.cursor() as cur:
        for s in statements:
            cur.execute(s)


@contextmanager
def mysql_user(port: int, grants: list[str], *, require_ssl: bool = False) -> Iterator[tuple[str, str]]:
    """A throwaway MySQL account with exactly ``grants`` and a recognisable password."""
    user = f"ops_{uuid.uuid4().hex[:8]}"
    password = f"mysql-secret-{uuid.uuid4().hex}"
    account = f"'{user}'@'127.0.0.1'"
    admin_sql(port, f"CREATE USER {account} IDENTIFIED BY '{password}'"
              + (" REQUIRE SSL" if require_ssl else ""),
              *(f"GRANT {g} TO {account}" for g in grants))
    try:
        yield user, password
    finally:
        admin_sql(port, f"DROP USER IF EXISTS {account}")


LEAST_PRIVILEGE = ["REPLICATION SLAVE, REPLICATION CLIENT ON *.*", "SELECT ON `wordpress`.*"]


def kafka_flags(protocol: str, mechanism: str | None = None, *, ca: bool = True) -> list[str]:
    sec = local_stack.kafka_security()
    address = {"SSL": sec["ssl"], "SASL_PLAINTEXT": sec["sasl_plaintext"], "SASL_SSL": sec["sasl_ssl"]}[protocol]
    flags = ["--kafka-bootstrap", address, "--kafka-security-protocol", protocol]
    if mechanism:
        flags += ["--kafka-sasl-mechanism", mechanism, "--kafka-sasl-username", sec["user"]]
    if ca and protocol.endswith("SSL"):
        flags += ["--kafka-ssl-ca", sec["ca"]]
    return flags


# ------------------------------------------------------------------------------------ metrics


def test_metrics_after_a_real_stream(cdc_env, wordpress) -> None:  # type: ignore[no-untyped-def]
    # Blog 1 only: the stack is shared, and writes to other blogs would keep posts pending.
    c, m = metered(cdc_env, "--stall-timeout", "30", "--blogs", "1")
    with running(c):
        m.wait("/readyz", 200)
        assert m.get("/healthz")[0] == 200
        pid = wordpress.editor_new()  # an auto-draft and its _edit_lock meta (ignored: filtered)
        wordpress.rest_save(pid, title="Metered", content="<p>one</p>", status="publish", tags=["ops"])
        c.wait_events((1, pid), count=1, timeout=60)
        wordpress.update_post(pid, title="Metered, again")
        c.wait_events((1, pid), count=2, timeout=60)
        wordpress.delete(pid)
        events = c.wait_events((1, pid), count=3, timeout=60)

        by_op = Counter(e["op"] for e in c.events())
        assert [e["op"] for e in events] == ["create", "update", "delete"]

        def settled() -> dict | None:
            s = m.samples()
            v = lambda name, **lb: s.get((name, tuple(sorted(lb.items()))), 0.0)  # noqa: E731
            done = (all(v("wpcdc_events_total", op=op) == by_op[op] for op in ("create", "update", "delete"))
                    and v("wpcdc_source_lag_seconds") < 3 and v("wpcdc_assembler_pending_posts") == 0)
            return s if done else None

        s = wait_until(settled, 30, 0.5, "metrics to match the topic and the source to be idle")
        v = lambda name, **lb: s.get((name, tuple(sorted(lb.items()))), 0.0)  # noqa: E731

        assert v("wpcdc_info", connector=c.name, version="0.1.0") == 1
        # Every metric the alerting rules and the Grafana dashboard query is served by this process.
        served = set()
        for family in text_string_to_metric_families(m.get("/metrics")[1]):
            suffixes = {"counter": ["_total"], "info": ["_info"], "histogram": ["_bucket", "_sum", "_count"]}
            served |= {family.name + x for x in suffixes.get(family.type, [""])}
        queried = {n for n in dashboard.used() if n.startswith("wpcdc_")}
        assert len(queried) >= 15 and queried <= served, sorted(queried - served)
        assert v("wpcdc_binlog_rows_total", table="posts") >= 3
        assert v("wpcdc_binlog_rows_total", table="postmeta") >= 1
        assert v("wpcdc_binlog_rows_filtered_total", table="postmeta") >= 1  # _edit_lock
        assert v("wpcdc_binlog_rows_total", table="term_relationships") >= 1
        assert v("wpcdc_assembler_pending_bytes") == 0
        assert v("wpcdc_kafka_transactions_committed_total") >= 3
        assert v("wpcdc_kafka_transactions_aborted_total") == 0
        assert v("wpcdc_kafka_write_seconds_count") >= 3
        assert 0 < v("wpcdc_kafka_write_seconds_sum") < 30
        assert sum(v("wpcdc_kafka_errors_total", operation=o) for o in ("write", "start", "topics", "checkpoint")) == 0
        assert sum(v("wpcdc_reconnects_total", cause=x) for x in ("mysql", "kafka", "other")) == 0
        assert v("wpcdc_checkpoints_total") >= 3
        assert v("wpcdc_checkpoint_age_seconds") < 20  # rewritten every few seconds while idle
        assert (v("wpcdc_ready"), v("wpcdc_stalled")) == (1, 0)
        assert (v("wpcdc_source_connected"), v("wpcdc_sink_connected")) == (1, 1)
        assert v("wpcdc_seconds_behind_source") < 3  # the deprecated alias
        assert v("wpcdc_source_transactions_total") >= 3
        # The reader process (the default) keeps half of the 4 MiB on each side of its pipe; the
        # gauges are the connector's half.
        assert v("wpcdc_reader_queue_capacity_bytes") == 2 << 20 and 0 <= v("wpcdc_reader_queue_bytes") <= 2 << 20
        # One observation per stream event, from its last row's binlog time to the commit: the
        # window (0.4 s) plus a flush, counted in whole binlog seconds.
        assert v("wpcdc_delivery_age_seconds_count") == sum(by_op.values())
        assert 0 < v("wpcdc_delivery_age_seconds_sum") < 10 * v("wpcdc_delivery_age_seconds_count")
        assert v("wpcdc_forced_emits_total") == 0 and v("wpcdc_truncated_events_total") == 0
        assert sum(v("wpcdc_statement_writes_total", table=t) for t in ("posts", "postmeta")) == 0
        assert v("wpcdc_binlog_file_number") >= 1 and v("wpcdc_binlog_position_bytes") > 0
        last = events[-1]["source"]
        assert (v("wpcdc_binlog_file_number"), v("wpcdc_binlog_position_bytes")) >= (
            int(last["file"].rsplit(".", 1)[1]), last["pos"])

        # The checkpoint gauges show what is in Kafka.
        def same_checkpoint() -> bool:
            cp = c.checkpoint()
            assert cp is not None
            return (m.value("wpcdc_checkpoint_binlog_file_number"), m.value("wpcdc_checkpoint_binlog_position_bytes")) == (
                int(cp.resume.file.rsplit(".", 1)[1]), cp.resume.pos)

        wait_until(same_checkpoint, 20, 0.5, "checkpoint gauges to match the checkpoint topic")
        assert c.stop() == 0


# ------------------------------------------------------------------------------------- health


def test_health_when_kafka_stops_and_comes_back(cdc_env, stack) -> None:  # type: ignore[no-untyped-def]
    c, m = metered(cdc_env, "--stall-timeout", "5")
    with running(c):
        m.wait("/readyz", 200)
        written = m.value("wpcdc_checkpoints_total")
        local_stack.kafka_down()
        try:
            why = m.wait("/readyz", 503, timeout=90)
            assert "Kafka" in why, why
            assert m.get("/healthz")[0] == 200  # waiting for Kafka is not dead
            assert m.value("wpcdc_ready") == 0
            lag = m.value("wpcdc_source_lag_seconds")
            time.sleep(3)
            assert m.value("wpcdc_source_lag_seconds") >= lag + 2.5  # an idle site behind a lost Kafka: not 0
        finally:
            local_stack.up(["kafka"])
        m.wait("/readyz", 200, timeout=120)
        # Ready again means writing again: the idle connector's checkpoint keepalive goes through.
        wait_until(lambda: m.value("wpcdc_checkpoints_total") > written, 30, 0.5, "a checkpoint after Kafka returned")
        assert c.stop() == 0


def mysql_answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_health_and_lag_when_mariadb_stops_and_comes_back(cdc_env, stack) -> None:  # type: ignore[no-untyped-def]
    """MySQL stopped on an idle site: the connector's lag grows from the last heartbeat (it used to
    read 0 throughout), it is alive and not ready, and it catches up when MySQL is back.

    The stack is shared: another session's test may start MariaDB again during the outage. The
    lag is only judged over a window in which MariaDB stayed down, once more if it did not."""
    c, m = metered(cdc_env, "--stall-timeout", "5")
    with running(c):
        m.wait("/readyz", 200)
        for _ in range(3):
            wait_until(lambda: m.value("wpcdc_source_connected") == 1 and m.value("wpcdc_source_lag_seconds") < 3,
                       60, 0.5, "a caught-up connector")
            local_stack.mariadb_down()
            down = time.monotonic()
            try:
                why = m.wait("/readyz", 503, timeout=60)
                assert re.search(r"MySQL|binlog", why), why
                assert m.get("/healthz")[0] == 200
                first = m.value("wpcdc_source_lag_seconds")
                time.sleep(3)
                lag, sampled = m.value("wpcdc_source_lag_seconds"), time.monotonic()
                connected = m.value("wpcdc_source_connected")
                stayed_down = not mysql_answers(stack.mysql)
            finally:
                local_stack.up(["mariadb"])
            if stayed_down:
                break
        else:
            pytest.fail("MariaDB was started again within 3 s of each stop, by another test on the shared stack")
        assert connected == 0
        assert lag >= first + 2.5 and lag >= sampled - down - 1, (first, lag)  # since the last heartbeat
        m.wait("/readyz", 200, timeout=120)
        wait_until(lambda: m.value("wpcdc_source_lag_seconds") < 3, 30, 0.5, "the lag to fall back")
        assert m.value("wpcdc_source_connected") == 1
        assert m.value("wpcdc_reconnects_total", cause="mysql") >= 1
        assert c.stop() == 0


@contextmanager
def forwarder(listen: int, target: int) -> Iterator[None]:
    """127.0.0.1:listen forwarded to 127.0.0.1:target: a MySQL server that appears at an address."""
    server = socket.create_server(("127.0.0.1", listen))

    def pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            a.close()
            b.close()

    def accept() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target))
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield
    finally:
        server.close()


def test_a_connector_started_while_mysql_is_unreachable_waits_for_it(cdc_env, stack) -> None:  # type: ignore[no-untyped-def]
    """Started while MySQL does not answer (its address has no server yet): the startup checks are
    retried with backoff instead of exiting into a crash loop; /metrics and /healthz answer from
    the start, /readyz says what it waits for, the lag counts from the start. Then MySQL appears
    at that address and the connector streams."""
    port = free_port()
    c, m = metered({**cdc_env, "WPCDC_MYSQL_PORT": str(port)})
    c.start(wait=False)
    try:
        m.wait("/healthz", 200, timeout=60)
        why = m.wait("/readyz", 503, timeout=60, contains="cannot connect to MySQL")
        assert why.startswith("reconnecting after:"), why
        assert m.value("wpcdc_ready") == 0 and m.value("wpcdc_source_lag_seconds") > 0
        wait_until(lambda: m.value("wpcdc_reconnects_total", cause="mysql") >= 2, 30, 0.5, "retries")
        assert c.running
        with forwarder(port, stack.mysql):
            m.wait("/readyz", 200, timeout=120)  # the startup checks passed, the session streams
            # the reader thread reports its own connection a moment after the session starts
            wait_until(lambda: m.value("wpcdc_source_connected") == 1, 30, 0.2, "the source connected")
            assert c.stop() == 0
    finally:
        if c.running:
            c.kill()


def test_a_refused_login_still_stops_the_stream(cdc_env) -> None:  # type: ignore[no-untyped-def]
    refused = cli({**cdc_env, "WPCDC_MYSQL_PASSWORD": f"wrong-{uuid.uuid4().hex}"}, "stream", "--name",
                  f"refused-{uuid.uuid4().hex[:6]}", timeout=60)
    assert refused.returncode == errors.Exit.MYSQL_CONNECT, refused.stderr[-2000:]
    assert "refused the login" in refused.stderr


# ---------------------------------------------------------------------------- binlog retention


def admin_rows(port: int, statement: str) -> list[dict[str, Any]]:
    conn = pymysql.connect(host="127.0.0.1", port=port, user=local_stack.ADMIN_USER,
                           password=local_stack.ADMIN_PASSWORD, autocommit=True,
                           cursorclass=pymysql.cursors.DictCursor)
    with conn, conn.cursor() as cur:
        cur.execute(statement)
        return list(cur.fetchall())


def test_binlog_retention_gauges_follow_the_server(cdc_env, stack, wordpress) -> None:  # type: ignore[no-untyped-def]
    """The polled SHOW BINARY LOGS against FLUSH BINARY LOGS: files and distances move, and a
    checkpoint held back in a closed file (a post pending in a long window) gets a time left
    counted from that file's close."""
    [expiry] = admin_rows(stack.mysql, "SELECT @@GLOBAL.binlog_expire_logs_seconds AS s")
    expire = float(expiry["s"])
    assert expire > 0  # the local stack keeps binlogs 2 days
    c, m = metered(cdc_env, "--binlog-poll-interval", "1", window=15)
    with running(c):
        m.wait("/readyz", 200)

        def server() -> tuple[int, int]:
            """(files on the server, the current file's number), read now: other tests flush too."""
            names = [r["Log_name"] for r in admin_rows(stack.mysql, "SHOW BINARY LOGS")]
            return len(names), max(int(n.rsplit(".", 1)[1]) for n in names)

        def gauge(name: str) -> float:
            return m.value(f"wpcdc_binlog_{name}")

        def in_newest_file() -> bool:
            files, current = server()
            return (gauge("server_files"), gauge("server_current_file_number"), gauge("checkpoint_files_behind"),
                    gauge("retention_seconds_left")) == (files, current, files - 1, expire)

        admin_sql(stack.mysql, "FLUSH BINARY LOGS")
        # Idle: the checkpoint follows the reader into the new file, the one the server writes.
        wait_until(in_newest_file, 30, 0.5, "the gauges to show the checkpoint in the newest file")
        assert gauge("expire_seconds") == expire
        assert gauge("checkpoint_bytes_behind_end") < 1000
        assert time.time() - gauge("poll_timestamp_seconds") < 10
        behind = gauge("checkpoint_files_behind")

        wordpress.create_post("held in its window", status="publish")  # pending for 15 s
        time.sleep(2)  # checkpoints with the post's rows pending: they stay in this file
        admin_sql(stack.mysql, "FLUSH BINARY LOGS")
        closed = time.time()
        wait_until(lambda: gauge("server_current_file_number") == server()[1]
                   and gauge("checkpoint_files_behind") == behind, 10, 0.3,
                   "the poll to see the new file while the checkpoint stays in the old one")
        left = gauge("retention_seconds_left")
        assert expire - (time.time() - closed) - 5 <= left < expire, (left, expire)  # counted from the close
        assert gauge("checkpoint_bytes_behind_end") > 0

        # The window ends, the post goes out, the checkpoint moves on to the newest file.
        wait_until(in_newest_file, 40, 0.5, "the checkpoint to follow into the newest file")
        assert gauge("checkpoint_files_behind") >= behind + 1
        assert c.stop() == 0


# ------------------------------------------------------------------------------- server_id


def test_a_shared_server_id_stops_the_older_reader_with_its_own_message(cdc_env, stack) -> None:  # type: ignore[no-untyped-def]
    """Two connectors (different names, so Kafka does not fence either) with one server_id: the
    server keeps the newer binlog reader; the older exits 31 naming the server_id and the causes,
    and SHOW SLAVE HOSTS names the reader that holds it."""
    server_id = random.randint(3_000_000_000, 4_000_000_000)
    first = Connector(cdc_env, extra=["--server-id", str(server_id)])
    second = Connector(cdc_env, extra=["--server-id", str(server_id)])

    def registered() -> str | None:
        hosts = [r["Host"] for r in admin_rows(stack.mysql, "SHOW SLAVE HOSTS") if int(r["Server_id"]) == server_id]
        return hosts[0] if hosts else None

    with running(first):
        assert wait_until(registered, 30, 0.5, "the reader to register").startswith(f"wpcdc {first.name} on ")
        with running(second):
            code = first.proc.wait(60)  # type: ignore[union-attr]
            assert code == errors.Exit.FENCED, first.log()[-3000:]
            assert f"server_id {server_id}" in first.log() and "SHOW SLAVE HOSTS" in first.log()
            assert wait_until(lambda: (h := registered()) and h.startswith(f"wpcdc {second.name} on ") and h,
                              30, 0.5, "the newer reader to hold the server_id")
            assert second.stop() == 0


def test_a_stalled_stream_turns_unready_with_a_reason(cdc_env, wordpress) -> None:  # type: ignore[no-untyped-def]
    """Kafka hangs (SIGSTOP) while WordPress keeps writing: the connector reads the change, its
    write to Kafka does not return, and /readyz says so; once Kafka resumes, the event arrives."""
    c, m = metered(cdc_env, "--stall-timeout", "3")
    with running(c):
        m.wait("/readyz", 200)
        kafka = local_stack._pid_alive(local_stack.kafka_dir() / "kafka.pid")
        assert kafka
        os.kill(kafka, signal.SIGSTOP)
        try:
            pid = wordpress.create_post("written while Kafka hangs", status="publish")
            why = m.wait("/readyz", 503, timeout=60, contains="stalled")
            assert "write to Kafka" in why, why
            assert m.value("wpcdc_stalled") == 1
            assert m.get("/healthz")[0] == 200
        finally:
            os.kill(kafka, signal.SIGCONT)
        m.wait("/readyz", 200, timeout=120)
        [event] = c.wait_events((1, pid), count=1, timeout=120)
        assert event["op"] == "create"
        assert c.stop() == 0


# -------------------------------------------------------------------------------- TLS / SASL


@pytest.mark.parametrize("protocol,mechanism", [
    ("SSL", None),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
    ("SASL_SSL", "SCRAM-SHA-512"),
    ("SASL_SSL", "PLAIN"),
])
def test_kafka_over_tls_and_sasl(cdc_env, wordpress, protocol: str, mechanism: str | None) -> None:  # type: ignore[no-untyped-def]
    env = {**cdc_env, "WPCDC_KAFKA_SASL_PASSWORD": local_stack.KAFKA_SASL_PASSWORD}
    c, m = metered(env, *kafka_flags(protocol, mechanism))
    with running(c):
        m.wait("/readyz", 200)
        pid = wordpress.create_post(f"over {protocol} {mechanism}", status="publish")
        [event] = c.wait_events((1, pid), count=1, timeout=60)
        assert event["op"] == "create"
        assert c.stop() == 0
    checked = cli(env, "check", "--name", c.name, *kafka_flags(protocol, mechanism))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"ok    kafka: {kafka_flags(protocol)[1]}" in checked.stdout


def test_kafka_tls_and_sasl_failures_are_reported(cdc_env) -> None:  # type: ignore[no-untyped-def]
    # No CA: the broker's certificate is not trusted.
    untrusted = cli(cdc_env, "check", *kafka_flags("SSL", ca=False))
    assert untrusted.returncode == 18, untrusted.stdout + untrusted.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    # A wrong SCRAM password.
    wrong = f"wrong-kafka-{uuid.uuid4().hex}"
    refused = cli({**cdc_env, "WPCDC_KAFKA_SASL_PASSWORD": wrong}, "check",
                  *kafka_flags("SASL_SSL", "SCRAM-SHA-256"))
    assert refused.returncode == 18, refused.stdout + refused.stderr
    assert "Authentication failed" in refused.stderr
    assert wrong not in refused.stdout + refused.stderr
    # SASL without a mechanism is a configuration error, named before anything connects.
    incomplete = cli(cdc_env, "check", "--kafka-security-protocol", "SASL_SSL")
    assert incomplete.returncode == 2 and "--kafka-sasl-mechanism" in incomplete.stderr


def test_mysql_over_tls(cdc_env, stack, wordpress) -> None:  # type: ignore[no-untyped-def]
    ca = str(local_stack.mariadb_tls_dir() / "ca.crt")
    with mysql_user(stack.mysql, LEAST_PRIVILEGE, require_ssl=True) as (user, password):
        env = {**cdc_env, "WPCDC_MYSQL_USER": user, "WPCDC_MYSQL_PASSWORD": password}
        # With a CA the server's certificate is verified: the wrong CA fails, naming the cause.
        wrong_ca = cli({**env, "WPCDC_MYSQL_SSL_CA": local_stack.kafka_security()["ca"]}, "check")
        assert wrong_ca.returncode == errors.Exit.MYSQL_CONNECT, wrong_ca.stdout
        assert "CERTIFICATE_VERIFY_FAILED" in wrong_ca.stdout
        assert password not in wrong_ca.stdout + wrong_ca.stderr
        env["WPCDC_MYSQL_SSL_CA"] = ca
        checked = cli(env, "check")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        c = Connector(env)
        with running(c):
            pid = wordpress.create_post("read over TLS", status="publish")
            c.wait_events((1, pid), count=1, timeout=60)
            assert c.stop() == 0


# ----------------------------------------------------------------------------------- secrets


def test_no_secret_in_logs_errors_or_metrics(cdc_env, stack, wordpress, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A connector with recognisable passwords (MySQL over TLS from the environment, Kafka SCRAM
    over TLS from a file), debug logs, every endpoint and command; then the same with wrong
    passwords. None of the passwords appears anywhere an operator or a scraper could see."""
    kafka_secret = local_stack.KAFKA_SASL_PASSWORD
    secret_file = tmp_path / "kafka-sasl-password"
    secret_file.write_text(kafka_secret + "\n")
    ca = str(local_stack.mariadb_tls_dir() / "ca.crt")
    seen: list[str] = []
    with mysql_user(stack.mysql, LEAST_PRIVILEGE, require_ssl=True) as (user, mysql_secret):
        env = {**cdc_env, "WPCDC_MYSQL_USER": user, "WPCDC_MYSQL_PASSWORD": mysql_secret,
               "WPCDC_MYSQL_SSL_CA": ca, "WPCDC_KAFKA_SASL_PASSWORD_FILE": str(secret_file)}
        flags = kafka_flags("SASL_SSL", "SCRAM-SHA-512")
        c, m = metered(env, *flags)
        with running(c):
            m.wait("/readyz", 200)
            pid = wordpress.create_post("secret keeping", status="publish")
            c.wait_events((1, pid), count=1, timeout=60)
            for path in ("/metrics", "/healthz", "/readyz", "/nope"):
                seen.append(m.get(path)[1])
            assert c.stop() == 0
        seen.append(c.log())
        assert '"level": "DEBUG"' in c.log()  # the most talkative level was on
        for args in (["status"], ["status", "--json"], ["check"], ["offsets", "show"]):
            done = cli(env, *args, "--name", c.name, *flags)
            assert done.returncode == 0, done.stdout + done.stderr
            seen += [done.stdout, done.stderr]

        # Wrong passwords: the errors say what failed, never with what.
        wrong_mysql, wrong_kafka = f"wrong-mysql-{uuid.uuid4().hex}", f"wrong-kafka-{uuid.uuid4().hex}"
        refused = cli({**env, "WPCDC_MYSQL_PASSWORD": wrong_mysql}, "check", *flags)
        assert refused.returncode == errors.Exit.MYSQL_CONNECT
        assert "refused the login" in refused.stdout
        seen += [refused.stdout, refused.stderr]
        secret_file.write_text(wrong_kafka)
        bad = Connector(env, extra=flags)
        bad.start(wait=False)
        try:
            wait_until(lambda: "retrying" in bad.log() and "Authentication failed" in bad.log(), 60, 0.5,
                       "the connector to report the refused Kafka login")
        finally:
            assert bad.stop() == 0
        seen.append(bad.log())

        # A password on the command line still never gets printed (and earns a warning).
        secret_file.write_text(kafka_secret)
        argv = cli({k: v for k, v in env.items() if k != "WPCDC_MYSQL_PASSWORD"},
                   "check", "--mysql-password", mysql_secret, *flags)
        assert argv.returncode == 0, argv.stdout + argv.stderr
        assert "visible to every user of this machine" in argv.stderr
        seen += [argv.stdout, argv.stderr]

    text = "\n".join(seen)
    for secret in (mysql_secret, kafka_secret, wrong_mysql, wrong_kafka):
        assert secret not in text, f"a password leaked: {secret[:6]}..."


# ---------------------------------------------------------------------------- check, status


def test_check_reports_missing_grants(cdc_env, stack) -> None:  # type: ignore[no-untyped-def]
    with mysql_user(stack.mysql, ["SELECT ON `wordpress`.*"]) as (user, password):
        r = cli({**cdc_env, "WPCDC_MYSQL_USER": user, "WPCDC_MYSQL_PASSWORD": password}, "check")
        assert r.returncode == errors.Exit.PRIVILEGES, r.stdout + r.stderr
        assert f"FAIL  privileges: '{user}'@'127.0.0.1' lacks REPLICATION SLAVE, REPLICATION CLIENT" in r.stdout
        assert f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'127.0.0.1'" in r.stdout
    with mysql_user(stack.mysql, ["REPLICATION SLAVE, REPLICATION CLIENT ON *.*"]) as (user, password):
        r = cli({**cdc_env, "WPCDC_MYSQL_USER": user, "WPCDC_MYSQL_PASSWORD": password}, "check")
        assert r.returncode == errors.Exit.PRIVILEGES, r.stdout + r.stderr
        assert "lacks SELECT on wordpress.wp_posts, wordpress.wp_postmeta" in r.stdout
        assert f"GRANT SELECT ON `wordpress`.* TO '{user}'@'127.0.0.1'" in r.stdout
    with mysql_user(stack.mysql, LEAST_PRIVILEGE) as (user, password):
        r = cli({**cdc_env, "WPCDC_MYSQL_USER": user, "WPCDC_MYSQL_PASSWORD": password}, "check")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "ok    privileges:" in r.stdout and "FAIL" not in r.stdout


def test_status_shows_checkpoint_lag_and_pending(cdc_env, wordpress) -> None:  # type: ignore[no-untyped-def]
    missing = cli(cdc_env, "status", "--name", f"never-ran-{uuid.uuid4().hex[:6]}")
    assert missing.returncode == 3 and "checkpoint   none" in missing.stdout

    c = Connector(cdc_env, window=15)  # a long window: the posts stay pending while we look
    with running(c):
        pid = wordpress.create_post("status 1", status="publish")
        other = wordpress.create_post("status 2", status="publish")

        def pending() -> dict | None:
            r = cli(cdc_env, "status", "--json", "--name", c.name)
            assert r.returncode == 0, r.stdout + r.stderr
            report = json.loads(r.stdout)
            return report if report["server"]["lag"]["bytes"] > 0 else None

        report = wait_until(pending, 30, 1, "the checkpoint to stay behind the pending posts")
        assert report["checkpoint"]["resume"] == str(c.checkpoint().resume)  # type: ignore[union-attr]
        assert report["checkpoint"]["age_seconds"] < 30
        assert report["server"]["reachable"] and report["server"]["lag"]["purged"] is False
        assert c.stop() == 0  # closes the pending posts: events, then the last checkpoint
    assert {e["post_id"] for e in c.events()} >= {pid, other}
    done = cli(cdc_env, "status", "--json", "--name", c.name)
    report = json.loads(done.stdout)
    assert report["events"]["last_event"]["post"] in (f"1:{pid}", f"1:{other}")
    assert report["events"]["committed_offsets"] >= 2 and report["events"]["open_transaction_offsets"] == 0
    text = cli(cdc_env, "status", "--name", c.name).stdout
    for word in ("checkpoint   resumes at", "  written", "  pending", "  lag", "events       ", "  last"):
        assert word in text, text


# -------------------------------------------------------------------------------------- CLI


def test_help_reads_like_a_unix_tool_and_documents_exit_codes() -> None:
    top = cli({}, "--help")
    assert top.returncode == 0
    for command in ("check", "stream", "status", "offsets"):
        assert re.search(rf"^  {command} +\S", top.stdout, re.M), top.stdout
    assert "Exit status:" in top.stdout and "WPCDC_" in top.stdout
    for code in errors.EXIT_CODES:  # the docs' table is checked against the same list in tests/unit
        assert re.search(rf"^  +{int(code)} ", top.stdout, re.M), f"exit code {int(code)} not in --help"
    stream = cli({}, "stream", "--help").stdout
    for option in ("--metrics-port", "--stall-timeout", "--mysql-password-file", "--kafka-sasl-password-file",
                   "--kafka-security-protocol", "--mysql-ssl-ca", "WPCDC_METRICS_PORT"):
        assert option in stream
    assert cli({}, "stream", "--no-such-option").returncode == 2
