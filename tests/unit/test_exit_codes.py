"""The exit codes have one table (cdc.errors.EXIT_CODES): --help prints it, the docs must match it."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from cdc import errors
from cdc.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def _docs_table() -> dict[int, str]:
    """code → the "from" column of docs/operations.md's exit-code table."""
    text = DOCS.read_text()
    section = text[text.index("## Exit codes"):]
    rows = re.findall(r"^\| (\d+) \| .* \| ([^|]+) \|$", section, re.M)
    return {int(code): where.strip() for code, where in rows}


def test_docs_list_exactly_the_codes_of_the_table_with_the_same_commands() -> None:
    documented = _docs_table()
    assert sorted(documented) == sorted(int(c) for c in errors.EXIT_CODES)
    for code, (_, where) in errors.EXIT_CODES.items():
        assert documented[int(code)] == where, f"exit {int(code)}: docs say {documented[int(code)]!r}"


def test_every_error_class_exits_with_a_code_of_the_table() -> None:
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.WpcdcError)]
    assert len(classes) >= 10
    for cls in classes:
        assert cls.exit_code in errors.EXIT_CODES, cls


def test_help_prints_the_table() -> None:
    out = CliRunner().invoke(main, ["--help"]).output
    for code, (meaning, _) in errors.EXIT_CODES.items():
        assert re.search(rf"^\s+{int(code)}\s+{re.escape(meaning.split()[0])}", out, re.M), int(code)
    assert "retries 20, 30, 40" in out


def test_the_codes_stream_retries_are_those_of_the_retriable_errors() -> None:
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.WpcdcError)]
    retried = {c.exit_code for c in classes if getattr(c, "retriable", False)}
    assert retried == set(errors.RETRIED_BY_STREAM)
