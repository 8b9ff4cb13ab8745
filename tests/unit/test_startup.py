"""Starting while a server is away: an unreachable MySQL is waited for (the preflight is retried
with the stream's backoff), a refused login or a failed check still ends the process."""

from __future__ import annotations

import asyncio
from typing import Any

import pymysql
import pytest

from cdc import metrics, pipeline
from cdc.config import KafkaSettings, MysqlSettings, StreamSettings
from cdc.errors import Exit, PreflightError, SourceError, SourceUnreachableError
from cdc.source import database, preflight


def refused(code: int, message: str) -> Any:
    def connect(**kw: Any) -> Any:
        raise pymysql.err.OperationalError(code, message)

    return connect


@pytest.mark.parametrize(("code", "message", "unreachable"), [
    (2003, "Can't connect to MySQL server on 'db' ([Errno 111] Connection refused)", True),
    (2003, "Can't connect to MySQL server on 'db' ([Errno -2] Name or service not known)", True),
    (2013, "Lost connection to MySQL server during query", True),
    (1040, "Too many connections", True),
    (1045, "Access denied for user 'wpcdc'@'10.0.0.1' (using password: YES)", False),
    (1130, "Host '10.0.0.1' is not allowed to connect to this MariaDB server", False),
    (2003, "Can't connect to MySQL server on 'db' ([SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed)", False),
])
def test_connection_failures_are_told_apart(monkeypatch: pytest.MonkeyPatch, code: int, message: str,
                                            unreachable: bool) -> None:
    monkeypatch.setattr(database.pymysql, "connect", refused(code, message))
    db = database.Database(MysqlSettings(host="db"))
    with pytest.raises(SourceError) as raised:
        db.flavor  # noqa: B018 - the first query connects
    assert isinstance(raised.value, SourceUnreachableError) == unreachable
    with pytest.raises(PreflightError) as failed:
        preflight.check_connect(db)
    assert failed.value.exit_code == Exit.MYSQL_CONNECT and failed.value.check == "connect"
    assert failed.value.retriable == unreachable


def settings() -> StreamSettings:
    return StreamSettings(name="startup", mysql=MysqlSettings(host="db"), kafka=KafkaSettings(), server_id=7)


def test_stream_waits_for_an_unreachable_server_then_stops_on_a_failed_check(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics.reset()
    calls: list[int] = []

    def run_all(db: Any, tables: Any, position: Any) -> list[Any]:
        calls.append(1)
        if len(calls) < 3:
            raise PreflightError("cannot connect to MySQL at db:3306: Connection refused", check="connect",
                                 retriable=True)
        raise PreflightError("binlog_format is 'STATEMENT', wpcdc needs ROW", check="binlog_format",
                             exit_code=Exit.BINLOG_FORMAT)

    monkeypatch.setattr(pipeline.preflight, "run_all", run_all)
    before = metrics.RECONNECTS.labels("mysql")._value.get()  # noqa: SLF001
    with pytest.raises(PreflightError) as failed:
        asyncio.run(pipeline.run_stream(settings(), asyncio.Event()))
    assert failed.value.exit_code == Exit.BINLOG_FORMAT
    assert len(calls) == 3  # two waits for the server, then the answer that stops
    assert metrics.RECONNECTS.labels("mysql")._value.get() == before + 2  # noqa: SLF001
    assert metrics.readiness() == (False, "reconnecting after: cannot connect to MySQL at db:3306: Connection refused")


def test_stream_stops_at_once_on_a_refused_login(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def run_all(db: Any, tables: Any, position: Any) -> list[Any]:
        calls.append(1)
        raise PreflightError("MySQL refused the login wpcdc@db:3306", check="connect")

    monkeypatch.setattr(pipeline.preflight, "run_all", run_all)
    with pytest.raises(PreflightError) as failed:
        asyncio.run(pipeline.run_stream(settings(), asyncio.Event()))
    assert failed.value.exit_code == Exit.MYSQL_CONNECT and len(calls) == 1


def test_a_stop_cuts_the_backoff_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM while waiting for MySQL at startup: the process stops now, not after the backoff."""

    def run_all(db: Any, tables: Any, position: Any) -> list[Any]:
        raise PreflightError("cannot connect to MySQL at db:3306", check="connect", retriable=True)

    monkeypatch.setattr(pipeline.preflight, "run_all", run_all)

    async def main() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(pipeline.run_stream(settings(), stop))
        await asyncio.sleep(2.0)  # 0.5 + 1.0 s of backoff, then the third wait (2 s) starts
        loop = asyncio.get_running_loop()
        started = loop.time()
        stop.set()
        await asyncio.wait_for(task, 5)
        return loop.time() - started

    assert asyncio.run(main()) < 0.5
