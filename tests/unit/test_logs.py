"""Log format (JSON lines off a terminal, text on one) and the masking of secrets."""

from __future__ import annotations

import io
import json
import logging
import re
import sys

import pytest

from cdc import logs
from cdc.config import KafkaSettings, MysqlSettings
from cdc.position import Position

SECRET = "Zq8-very-secret-pw"


@pytest.fixture(autouse=True)
def clean_logging():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    secrets, position = set(logs._secrets), logs._position
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logs._secrets.clear()
    logs._secrets.update(secrets)
    logs.set_position(position)


def lines(err: str) -> list[dict]:
    out = []
    for line in err.splitlines():
        out.append(json.loads(line))  # every line is one whole JSON object
    return out


def test_json_lines_carry_ts_level_message_connector_position(capsys: pytest.CaptureFixture[str]) -> None:
    logs.set_position(None)
    logs.setup("debug", "json", "site-a")
    log = logging.getLogger("cdc.test")
    log.info("before any position")
    log.warning("about %s", "a place", extra={"position": "mariadb-bin.000003:120"})
    logs.set_position(Position("mariadb-bin.000004", 4))
    log.debug("multi\nline message")
    first, second, third = lines(capsys.readouterr().err)
    assert set(first) >= {"ts", "level", "message", "connector", "position", "logger"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert (first["level"], first["message"], first["connector"], first["position"]) == (
        "INFO", "before any position", "site-a", None)
    assert first["logger"] == "cdc.test"
    assert (second["level"], second["position"]) == ("WARNING", "mariadb-bin.000003:120")
    assert third["message"] == "multi\nline message"
    assert third["position"] == "mariadb-bin.000004:4"  # the stream's place when none is given


def test_auto_is_json_off_a_terminal_and_text_on_one(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    logs.setup("info", "auto", "c")
    logging.getLogger("x").info("hello")
    assert json.loads(pipe.getvalue())["message"] == "hello"

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    logs.set_position(Position("mariadb-bin.000001", 99))
    logs.setup("info", "auto", "c")
    logging.getLogger("x").info("hello")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO    c \[mariadb-bin.000001:99\]: hello\n",
                        tty.getvalue())


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_registered_secrets_never_reach_a_log_line(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    logs.register_secret(SECRET)
    logs.register_secret('quo"te\\pw')
    logs.setup("debug", fmt, "c")
    log = logging.getLogger("cdc.test")
    log.info("connecting with %s", SECRET)
    log.error("dsn mysql://wpcdc:%s@db/wordpress", 'quo"te\\pw')
    try:
        raise RuntimeError(f"driver said: bad password {SECRET!r}")
    except RuntimeError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert SECRET not in err and "quo" not in err
    assert err.count(logs.MASK) == 3
    if fmt == "json":
        assert len(lines(err)) == 3


def test_redact_and_short_values() -> None:
    logs.register_secret(SECRET)
    logs.register_secret("pw")  # too short to mask without mangling words
    logs.register_secret(None)
    assert logs.redact(f"a {SECRET} b") == f"a {logs.MASK} b"
    assert logs.redact("pw stays") == "pw stays"


def test_settings_repr_hides_passwords() -> None:
    text = repr(MysqlSettings(password=SECRET)) + repr(KafkaSettings(sasl_password=SECRET))
    assert SECRET not in text


def test_throttled_library_noise_still_goes_through_redaction(capsys: pytest.CaptureFixture[str]) -> None:
    logs.register_secret(SECRET)
    logs.setup("info", "json", "c")
    logging.getLogger("aiokafka.conn").error("auth failed for %s", SECRET)
    logging.getLogger("aiokafka.conn").error("auth failed for %s", SECRET)  # throttled
    err = capsys.readouterr().err
    assert len(lines(err)) == 1 and SECRET not in err


def test_a_bug_is_one_json_record_with_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from cdc.cli import run_command

    logs.register_secret(SECRET)
    logs.setup("info", "json", "c")

    @run_command
    def broken() -> int:
        raise RuntimeError(f"unexpected {SECRET}")

    with pytest.raises(SystemExit) as exited:
        broken()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    record = json.loads(err.splitlines()[0])
    assert record["level"] == "CRITICAL" and "Traceback" in record["exc_info"]
    assert err.splitlines()[1].startswith("wpcdc: unexpected error: RuntimeError(")
    assert SECRET not in err
