"""cdc/source/library.py refuses a mysql-replication its patches were not written for (no server).

Another release is simulated by answering the package-metadata lookup with another version; a
modified copy by removing or changing one of the private names the module patches or reads.
"""

from __future__ import annotations

import inspect
import logging
from importlib import metadata
from typing import Any

import pytest
from pymysqlreplication import binlogstream
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import RowsEvent, TableMapEvent

from cdc.errors import ConfigError, LibraryVersionError
from cdc.source import library

REMEDY = "pip install 'mysql-replication>=1.0.17,<1.1'"


def installed(monkeypatch: pytest.MonkeyPatch, version: str | None) -> None:
    """Make the metadata lookup say ``version`` is installed (None: not installed)."""
    real = metadata.version

    def fake(name: str) -> str:
        if name != library.DISTRIBUTION:
            return real(name)
        if version is None:
            raise metadata.PackageNotFoundError(name)
        return version

    monkeypatch.setattr(metadata, "version", fake)


def test_the_installed_release_passes() -> None:
    assert library.installed_version() in library.TESTED
    assert library.check() == library.installed_version()


@pytest.mark.parametrize("version", ["1.1.0", "1.0.16", "0.45.1", "2.0.0", "1.1.0rc1", "unknown"])
def test_another_release_is_refused_with_the_remedy(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    installed(monkeypatch, version)
    with pytest.raises(LibraryVersionError) as err:
        library.check()
    message = str(err.value)
    assert f"mysql-replication {version} is installed" in message
    assert ">=1.0.17,<1.1" in message and "tested with 1.0.17" in message
    assert REMEDY in message
    assert isinstance(err.value, ConfigError) and not getattr(err.value, "retriable", False)


def test_a_missing_library_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    installed(monkeypatch, None)
    with pytest.raises(LibraryVersionError, match="mysql-replication is not installed") as err:
        library.check()
    assert REMEDY in str(err.value)


def test_an_untested_release_in_range_passes_with_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    installed(monkeypatch, "1.0.18")
    with caplog.at_level(logging.WARNING, logger=library.__name__):
        assert library.check() == "1.0.18"
    assert "untested" in caplog.text and "1.0.17" in caplog.text


def test_a_missing_private_method_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(RowsEvent, "_RowsEvent__read_string")
    with pytest.raises(LibraryVersionError) as err:
        library.check()
    message = str(err.value)
    assert "pymysqlreplication.row_event.RowsEvent.__read_string is missing" in message
    assert "mysql-replication 1.0.17 is installed" in message
    assert "pip install --force-reinstall 'mysql-replication>=1.0.17,<1.1'" in message


def test_a_changed_signature_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def read_values_name(self: Any, column: Any, null_bitmap: Any, null_bitmap_index: int, is_partial: bool,
                         cols_bitmap: Any, unsigned: bool, i: int, row_image_type: Any = None) -> Any:
        return None

    monkeypatch.setattr(RowsEvent, "_RowsEvent__read_values_name", read_values_name)
    with pytest.raises(LibraryVersionError, match=r"RowsEvent.__read_values_name takes \(.*row_image_type\)"):
        library.check()


def test_a_private_field_no_longer_set_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def __init__(self: Any, from_packet: Any, *args: Any, **kwargs: Any) -> None:
        self.packet = from_packet  # and a buffer under another name than __data_buffer
        self.read_bytes = self.event_size = self.log_pos = 0

    monkeypatch.setattr(BinLogPacketWrapper, "__init__", __init__)
    with pytest.raises(LibraryVersionError, match="BinLogPacketWrapper.__init__ no longer sets __data_buffer"):
        library.check()


def test_a_missing_module_global_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(binlogstream, "MYSQL_EXPECTED_ERROR_CODES")
    with pytest.raises(LibraryVersionError, match="MYSQL_EXPECTED_ERROR_CODES is missing"):
        library.check()


def test_install_refuses_before_patching_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(library, "_installed", False)
    before = (TableMapEvent.__init__, BinLogPacketWrapper.__init__, RowsEvent.__dict__["_RowsEvent__read_string"],
              binlogstream.MYSQL_EXPECTED_ERROR_CODES)
    installed(monkeypatch, "1.1.0")
    with pytest.raises(LibraryVersionError):
        library.install()
    after = (TableMapEvent.__init__, BinLogPacketWrapper.__init__, RowsEvent.__dict__["_RowsEvent__read_string"],
             binlogstream.MYSQL_EXPECTED_ERROR_CODES)
    assert after == before and library._installed is False


def test_install_patches_once_and_the_check_still_passes() -> None:
    library.install()
    library.install()
    assert binlogstream.MYSQL_EXPECTED_ERROR_CODES == []
    assert RowsEvent.__dict__["_RowsEvent__read_string"] is library._read_string
    for cls in (TableMapEvent, BinLogPacketWrapper):
        wrapped = cls.__init__.__wrapped__  # type: ignore[misc]
        assert not hasattr(wrapped, "__wrapped__")  # one layer, not one per install()
        assert inspect.unwrap(cls.__init__) is wrapped  # type: ignore[misc]
    assert library.check() == library.installed_version()  # the originals behind our wrappers


def test_a_stream_reader_that_no_longer_keeps_what_framing_reads_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """library.Framing reads the stream reader's checksum and post-header lengths: a release
    keeping them under other names is refused, not read as "no checksum"."""
    original = binlogstream.BinLogStreamReader._BinLogStreamReader__connect_to_stream  # type: ignore[attr-defined]

    def connect(self: Any) -> None:
        self._checksum = True  # not __use_checksum

    monkeypatch.setattr(binlogstream.BinLogStreamReader, "_BinLogStreamReader__connect_to_stream", connect)
    with pytest.raises(LibraryVersionError, match="BinLogStreamReader.__connect_to_stream no longer sets _stream_connection, __use_checksum"):
        library.check()
    monkeypatch.setattr(binlogstream.BinLogStreamReader, "_BinLogStreamReader__connect_to_stream", original)
    library.check()


def test_a_fetchone_that_reads_packets_another_way_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Framing pushes a packet back through the connection's _read_packet, which fetchone must use."""
    def fetchone(self: Any) -> Any:
        return self._stream_connection.read_packet(), self.table_map, self.log_pos

    monkeypatch.setattr(binlogstream.BinLogStreamReader, "fetchone", fetchone)
    with pytest.raises(LibraryVersionError, match="fetchone no longer uses _read_packet"):
        library.check()
