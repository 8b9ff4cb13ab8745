"""The one place wpcdc reaches into mysql-replication's internals: every patch, every private field.

mysql-replication has no API for four things wpcdc needs, so wpcdc patches it:

* it retries "server has gone away" and "lost connection" by itself, from wherever it was (which
  would resume mid-transaction): ``binlogstream.MYSQL_EXPECTED_ERROR_CODES`` is emptied, so the
  error reaches cdc/source/binlog.py and recovery goes through the checkpoint;
* it loses or raises on values real sites hold: ``RowsEvent.__read_values_name`` and
  ``__read_string`` (name-mangled) are replaced by readers around cdc/source/decoding.py's;
* it skips MariaDB's compressed events: ``BinLogPacketWrapper.__init__`` inflates them first
  (cdc/source/compressed.py), keeping the size as written for :func:`written_size`;
* it re-parses every table map (0.3 ms for wp_posts, most of an editor workload's CPU):
  ``TableMapEvent.__init__`` gets a cache in front (see :func:`_cache_table_maps`).

And :func:`fast_rows` reads a rows event's row images straight out of the packet (the wrapper's
``__data_buffer``, pymysql's ``_data`` and ``_position``) for cdc/source/fastpath.py's decoders.

Private and name-mangled names change between releases without notice, and a patch that misses
fails quietly: an assignment to a module global the library no longer reads, a method nobody calls
any more. So they are all here, and :func:`install` first checks the installed release against the
range they were written for (:data:`SUPPORTED`, pyproject.toml's pin) and that every name and
signature it touches is there; on a mismatch nothing is patched and wpcdc stops with what to
install. The range matters beyond the names: the table-map cache copies the attributes a 1.0.x
parse sets, which no attribute check can prove complete.

Speed: the patches are plain functions installed once; the per-row work stays in the decoders of
fastpath.py and decoding.py, and :func:`fast_rows` does per rows event what fastpath.py did.
"""

from __future__ import annotations

import inspect
import logging
import re
from importlib import metadata
from typing import Any

from pymysql.connections import Connection
from pymysql.protocol import MysqlPacket
from pymysqlreplication import binlogstream
from pymysqlreplication.binlogstream import BinLogStreamReader
from pymysqlreplication.bitmap import BitGet
from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.event import BinLogEvent
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    RowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from cdc.errors import LibraryVersionError
from cdc.source import compressed, decoding, fastpath, framing
from cdc.source.decoding import decode_text, json_text

log = logging.getLogger(__name__)

DISTRIBUTION = "mysql-replication"
SUPPORTED = ">=1.0.17,<1.1"
"""The releases this module was written for: pyproject.toml's pin, checked by :func:`check`."""
_LOWEST, _BELOW = (1, 0, 17), (1, 1)
TESTED = ("1.0.17",)
"""The releases wpcdc's tests ran against (tests/integration/test_fastpath.py compares the fast
path with the library's own decoder, row by row)."""
REMEDY = f"pip install '{DISTRIBUTION}{SUPPORTED}'"


# ------------------------------------------------------------------------------ what we need

# (owner, attribute, the leading parameters it must take): what we replace or call. A function we
# replace is called by the library with exactly these parameters, so its list must match whole.
_FUNCTIONS: tuple[tuple[Any, str, tuple[str, ...], bool], ...] = (
    (RowsEvent, "_RowsEvent__read_values_name",
     ("self", "column", "null_bitmap", "null_bitmap_index", "is_partial", "cols_bitmap", "unsigned", "i"), True),
    (RowsEvent, "_RowsEvent__read_string", ("self", "size", "column"), True),
    (RowsEvent, "_is_null", ("null_bitmap", "position"), False),
    (TableMapEvent, "__init__", ("self", "from_packet", "event_size", "table_map", "ctl_connection"), False),
    (BinLogEvent, "__init__", ("self", "from_packet", "event_size", "table_map", "ctl_connection"), False),
    (BinLogPacketWrapper, "__init__", ("self", "from_packet"), False),
)

_TM_KEEP = ("table_id", "flags", "schema_length", "schema", "table_length", "table", "column_count",
            "columns", "dbms", "null_bitmask", "table_obj", "optional_metadata")
"""What a table map's parse leaves on the event, copied on a cache hit."""

# (constructor, the instance attributes it must set that we read, copy or rely on)
_SETS: tuple[tuple[Any, str, tuple[str, ...]], ...] = (
    (BinLogPacketWrapper, "__init__", ("_BinLogPacketWrapper__data_buffer", "read_bytes", "packet",
                                       "event_size", "log_pos")),
    (BinLogEvent, "__init__", ("_processed", "complete", "packet", "table_map", "event_size")),
    (TableMapEvent, "__init__", _TM_KEEP),
    (RowsEvent, "__init__", ("table_id", "number_of_columns", "table")),
    (WriteRowsEvent, "__init__", ("columns_present_bitmap",)),
    (DeleteRowsEvent, "__init__", ("columns_present_bitmap",)),
    (UpdateRowsEvent, "__init__", ("columns_present_bitmap", "columns_present_bitmap2")),
)

# pymysql's packet, reached through the wrapper: its slots (pymysql is pinned >=1.1,<2).
_SLOTS = (MysqlPacket, ("_data", "_position"))

# What :class:`Framing` reads of the stream reader, by the method that must set it; and what
# fetchone must use the way Framing relies on (it reads packets with the connection's
# _read_packet, keeps the table map in table_map, takes the post-header lengths from the format
# description, and sets log_pos).
_READER_SETS = (
    ("__init__", ("_BinLogStreamReader__connected_stream", "_BinLogStreamReader__connected_ctl",
                  "_BinLogStreamReader__only_tables", "_BinLogStreamReader__only_schemas",
                  "_BinLogStreamReader__freeze_schema", "_BinLogStreamReader__optional_meta_data",
                  "_BinLogStreamReader__use_column_name_cache",
                  "table_map", "end_log_pos", "skip_to_timestamp", "log_pos")),
    ("_BinLogStreamReader__connect_to_stream", ("_stream_connection", "_BinLogStreamReader__use_checksum",
                                                "_BinLogStreamReader__connected_stream")),
    ("_BinLogStreamReader__connect_to_ctl", ("_ctl_connection", "_BinLogStreamReader__connected_ctl")),
)
_FETCHONE_USES = ("_stream_connection", "_read_packet", "table_map", "log_pos", "get_table",
                  "_BinLogStreamReader__connected_stream", "_BinLogStreamReader__post_header_lengths")


def _numbers(version: str) -> tuple[int, ...] | None:
    m = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(x) for x in m[0].split(".")) if m else None


def installed_version() -> str | None:
    """The installed mysql-replication's version, from its package metadata (None: not found)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def _demangle(attr: str) -> str:
    return re.sub(r"^_[A-Za-z]+(__\w+)$", r"\1", attr)  # _RowsEvent__read_string -> __read_string


def _name(owner: Any, attr: str) -> str:
    return f"{owner.__module__}.{owner.__name__}.{_demangle(attr)}"


def _problems() -> list[str]:
    """Every private name or signature this module needs that the installed library lacks."""
    out = []
    for owner, attr, params, whole in _FUNCTIONS:
        fn = getattr(owner, attr, None)
        if not callable(fn):
            out.append(f"{_name(owner, attr)} is missing")
            continue
        names = tuple(inspect.signature(inspect.unwrap(fn)).parameters)
        if (names != params) if whole else (names[:len(params)] != params):
            out.append(f"{_name(owner, attr)} takes ({', '.join(names)}), not ({', '.join(params)})")
    for owner, attr, attrs in _SETS:
        code = getattr(inspect.unwrap(getattr(owner, attr)), "__code__", None)
        missing = [a for a in attrs if code is None or a not in code.co_names]
        if missing:
            out.append(f"{_name(owner, attr)} no longer sets {', '.join(map(_demangle, missing))}")
    if not hasattr(binlogstream, "MYSQL_EXPECTED_ERROR_CODES"):
        out.append("pymysqlreplication.binlogstream.MYSQL_EXPECTED_ERROR_CODES is missing")
    for fn, attrs in _READER_SETS:
        code = getattr(getattr(BinLogStreamReader, fn, None), "__code__", None)
        missing = [a for a in attrs if code is None or a not in code.co_names]
        if missing:
            out.append(f"pymysqlreplication.binlogstream.BinLogStreamReader.{_demangle(fn)} no longer sets "
                       f"{', '.join(map(_demangle, missing))}")
    code = getattr(getattr(BinLogStreamReader, "fetchone", None), "__code__", None)
    missing = [a for a in _FETCHONE_USES if code is None or a not in code.co_names]
    if missing:
        out.append(f"pymysqlreplication.binlogstream.BinLogStreamReader.fetchone no longer uses "
                   f"{', '.join(map(_demangle, missing))}")
    if not callable(getattr(Connection, "_read_packet", None)):
        out.append("pymysql.connections.Connection._read_packet is missing (PyMySQL)")
    packet, slots = _SLOTS
    for slot in slots:
        if not hasattr(packet, slot):
            out.append(f"{_name(packet, slot)} is missing (PyMySQL)")
    return out


def check() -> str:
    """The installed mysql-replication's version, if this module's patches fit it; else raise
    :class:`LibraryVersionError` (before anything is patched) saying what to install."""
    version = installed_version()
    numbers = _numbers(version) if version else None
    if version is None or numbers is None or not _LOWEST <= numbers < _BELOW:
        found = f"mysql-replication {version} is installed" if version else "mysql-replication is not installed"
        raise LibraryVersionError(
            f"{found}, but wpcdc supports {DISTRIBUTION}{SUPPORTED} only (tested with {', '.join(TESTED)}): "
            "it patches the library's row decoding and reads its packets' private fields, which change "
            f"between releases. Install a supported release: {REMEDY}"
        )
    problems = _problems()
    if problems:
        raise LibraryVersionError(
            f"mysql-replication {version} is installed, but it is not the code wpcdc patches: "
            f"{'; '.join(problems)}. The installed copy is modified, or not the release it says it is "
            f"(wpcdc supports {SUPPORTED}, tested with {', '.join(TESTED)}). Reinstall it: "
            f"pip install --force-reinstall '{DISTRIBUTION}{SUPPORTED}'"
        )
    if version not in TESTED:
        log.warning("mysql-replication %s is in the supported range %s but untested (tested with %s)",
                    version, SUPPORTED, ", ".join(TESTED))
    return version


# --------------------------------------------------------------------------------- patches

_installed = False


def install() -> None:
    """Check the installed library (:func:`check`), then patch it (idempotent). The binlog
    reader calls this before it builds its stream reader."""
    global _installed
    if _installed:
        return
    check()
    # The library would retry 2006/2013 by itself, from where it was: we want the error.
    binlogstream.MYSQL_EXPECTED_ERROR_CODES = []
    _replace_value_readers()
    _inflate_compressed_events()
    _cache_table_maps()
    _installed = True


def _read_string(self: Any, size: int, column: Any) -> str | bytes:
    """RowsEvent.__read_string: text decoded losslessly (cdc/source/decoding.py)."""
    return decode_text(self.packet.read_length_coded_pascal_string(size), column.character_set_name)


def _replace_value_readers() -> None:
    """decoding.py's readers into the library's generic row decoder (the one the fast path falls
    back to, and the only one for layouts it does not take)."""
    readers = decoding.readers()
    original = RowsEvent._RowsEvent__read_values_name  # type: ignore[attr-defined]

    def read_values_name(self: Any, column: Any, null_bitmap: Any, null_bitmap_index: int, is_partial: bool,
                         cols_bitmap: Any, unsigned: bool, i: int) -> Any:
        if column.type == FIELD_TYPE.JSON:
            value = original(self, column, null_bitmap, null_bitmap_index, is_partial, cols_bitmap, unsigned, i)
            return json_text(value)
        read = readers.get(column.type)
        if read is None or not BitGet(cols_bitmap, i) or self._is_null(null_bitmap, null_bitmap_index):
            return original(self, column, null_bitmap, null_bitmap_index, is_partial, cols_bitmap, unsigned, i)
        return read(self.packet, column)

    read_values_name.__wrapped__ = original  # type: ignore[attr-defined]
    _read_string.__wrapped__ = RowsEvent._RowsEvent__read_string  # type: ignore[attr-defined]
    RowsEvent._RowsEvent__read_values_name = read_values_name  # type: ignore[attr-defined]
    RowsEvent._RowsEvent__read_string = _read_string  # type: ignore[attr-defined]


def _inflate_compressed_events() -> None:
    """Every packet inflated (cdc/source/compressed.py) before the library parses it. The wrapper
    keeps the event's size as written: see :func:`written_size`."""
    original = BinLogPacketWrapper.__init__
    types = compressed.TYPES
    inflate = compressed.inflate

    def __init__(self: Any, from_packet: Any, *args: Any, **kwargs: Any) -> None:
        compressed_size = None
        data = from_packet._data  # noqa: SLF001 - pymysql's packet: the whole event, unread
        if len(data) > 5 and data[5] in types:
            inflated = inflate(bytes(data))
            if inflated is not None:
                compressed_size = int.from_bytes(data[10:14], "little")
                from_packet._data = inflated  # noqa: SLF001
        original(self, from_packet, *args, **kwargs)
        self.wpcdc_compressed_size = compressed_size

    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    BinLogPacketWrapper.__init__ = __init__  # type: ignore[method-assign]


_tm_cache: dict[tuple[Any, ...], dict[str, Any]] = {}
_TM_CACHE_MAX = 2048


def _tm_filtered(table: str, schema: str, kw: dict[str, Any]) -> bool:
    """The library's own table/schema filters (TableMapEvent.__init__), on a cache hit."""
    only_tables, ignored_tables = kw.get("only_tables"), kw.get("ignored_tables")
    only_schemas, ignored_schemas = kw.get("only_schemas"), kw.get("ignored_schemas")
    return bool(
        (only_tables is not None and table not in only_tables)
        or (ignored_tables is not None and table in ignored_tables)
        or (only_schemas is not None and schema not in only_schemas)
        or (ignored_schemas is not None and schema in ignored_schemas)
    )


def _cache_table_maps() -> None:
    """A cache in front of ``TableMapEvent.__init__``.

    With row-based logging every statement's rows come after a TABLE_MAP event, and WordPress
    autocommits nearly every query, so an editor's save is a few dozen table maps of the same five
    tables; the library rebuilds its column objects from each one. An event whose bytes (table id,
    names, column types, metadata) equal one already parsed reuses that parse, after the same
    table/schema filters. A changed table (ALTER TABLE, a new table id after a restart) has
    different bytes and is parsed anew."""
    original = TableMapEvent.__init__

    def __init__(self: Any, from_packet: Any, event_size: int, table_map: dict[int, Any], ctl_connection: Any,
                 **kwargs: Any) -> None:
        packet = from_packet.packet
        if from_packet._BinLogPacketWrapper__data_buffer or kwargs.get("freeze_schema"):  # noqa: SLF001
            original(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
            return
        start = packet._position  # noqa: SLF001 - the event body starts here (header read)
        key = (bytes(packet._data[start:start + event_size]), id(ctl_connection),  # noqa: SLF001
               bool(kwargs.get("optional_meta_data")), bool(kwargs.get("use_column_name_cache")))
        hit = _tm_cache.get(key)
        if hit is None:
            original(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
            if self._processed and getattr(self, "table_obj", None) is not None:
                if len(_tm_cache) >= _TM_CACHE_MAX:
                    _tm_cache.clear()
                _tm_cache[key] = {k: self.__dict__[k] for k in _TM_KEEP if k in self.__dict__}
            return
        BinLogEvent.__init__(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
        self.__dict__.update(hit)
        if _tm_filtered(hit["table"], hit["schema"], kwargs):
            self._processed = False

    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    TableMapEvent.__init__ = __init__  # type: ignore[method-assign]


# ------------------------------------------------------------------------------ reads

_DECODER = "_wpcdc_decoder"  # fastpath's decoder, kept on the library's Table (which is unhashable)
_UNSET: Any = object()


def _full(bitmap: bytes, n: int) -> bool:
    return int.from_bytes(bitmap, "little") == (1 << n) - 1


def fast_rows(event: RowsEvent, op: str) -> list[Any] | None:
    """The row images of a rows event, decoded by cdc/source/fastpath.py, or None when the library
    must decode them (a layout or a row image the fast path does not take).

    Returns dicts (insert/delete) or before/after dicts alternating (update). The packet is not
    consumed, so on None the library's own ``event.rows`` still works.
    """
    if not event.complete:
        return None
    try:
        table = event.table_map[event.table_id]
    except KeyError:
        return None
    # Leading "_": outside Table.data, so the table's equality is unchanged.
    memo = table.__dict__
    dec = memo.get(_DECODER, _UNSET)
    if dec is _UNSET:
        dec = memo[_DECODER] = fastpath.decoder(table.columns)
    if dec is None:
        return None
    n = len(table.columns)
    if event.number_of_columns != n or not _full(event.columns_present_bitmap, n):
        return None
    if op == "update" and not _full(event.columns_present_bitmap2, n):
        return None
    wrapper = event.packet
    if wrapper._BinLogPacketWrapper__data_buffer:  # noqa: SLF001 - an unread() is pending: let the library do it
        return None
    packet = wrapper.packet
    start = packet._position  # noqa: SLF001 - the library's own read cursor in this packet
    end = start + event.event_size - wrapper.read_bytes
    data = packet._data  # noqa: SLF001
    if end > len(data):
        return None
    return fastpath.decode(dec, data, start, end, op)


_HEADER = 20  # the OK byte and the 19-byte event header before an event's body in a packet


def event_body(event: Any) -> bytes:
    """An event's body as the server sent it (of an event the library skipped over)."""
    data = event.packet.packet._data  # noqa: SLF001 - pymysql's packet: the whole event
    return bytes(data[_HEADER:_HEADER + event.event_size])


def written_size(event: Any) -> int:
    """An event's size as written in the binlog: an inflated compressed event's own size is not
    (the position of its start is computed from this)."""
    return getattr(event.packet, "wpcdc_compressed_size", None) or int(event.packet.event_size)


# ------------------------------------------------------------------------------ framing

_CAPTURED = "_wpcdc_captured"  # on the library's Table: passes the reader's table/schema filters


class Framing:
    """The stream reader's ``fetchone``, with the small events read from the packet bytes first.

    mysql-replication keeps the connection, the protocol, the format description, rotations,
    heartbeats, table maps it has not parsed yet, and every event this class does not take: it reads
    a packet through pymysql itself, looks at the event type and, for the events of
    cdc/source/framing.py, returns a :class:`framing.Frame` (GTID, XID, BEGIN, the decoded rows of a
    captured table) or skips the event (ANNOTATE_ROWS; a TABLE_MAP of a table the library would
    filter out, after asking the same filter, so the options and users tables are noted as before; a
    rows event whose table id the library has no map for), exactly as the library would. A table map
    of a captured table is taken from the library's own parse of the same bytes (the cache of
    :func:`_cache_table_maps`). Any other packet is pushed back and the library's ``fetchone`` reads
    it as usual: the connection's ``_read_packet`` returns it first.

    The differential check: tests/integration/test_framing.py reads the same binlog with and without
    this class and compares every item the source hands over, positions included.
    """

    def __init__(self, reader: BinLogStreamReader, *, defer: bool = False) -> None:
        self.reader = reader
        # Leave the row images undecoded in the frame (Frame.raw): the reader process's parent
        # decodes them, on the other core (cdc/source/reader_process.py).
        self.defer = defer
        self._conn: Any = None
        self._read: Any = None
        self._pushed: Any = None
        self._lengths: Any = _UNSET
        self._ok: frozenset[int] = frozenset()
        # table id -> (its last TABLE_MAP's body, schema, table, the library's Table or None: filtered)
        self._maps: dict[int, tuple[bytes, str, str, Any]] = {}

    def _hook(self, conn: Any) -> None:
        """Put :meth:`_next_packet` in front of this connection's packet reads."""
        read = conn._read_packet  # noqa: SLF001 - pymysql: the one way the library reads packets

        def next_packet(*args: Any, **kwargs: Any) -> Any:
            pushed = self._pushed
            if pushed is not None and not args and not kwargs:
                self._pushed = None
                return pushed
            return read(*args, **kwargs)

        conn._read_packet = next_packet  # noqa: SLF001
        self._conn, self._read = conn, read

    def _kinds(self, lengths: Any) -> frozenset[int]:
        """The event types whose post-header the server declares as framing.py reads it."""
        if not lengths:
            return frozenset(framing.POST_HEADER)
        ok = set()
        for kind, size in framing.POST_HEADER.items():
            if kind - 1 >= len(lengths) or lengths[kind - 1] == size:
                ok.add(kind)
        return frozenset(ok)

    def fetch(self) -> Any:
        """The next event the reader would return, or a :class:`framing.Frame` in its place."""
        reader = self.reader
        d = reader.__dict__
        if (not d["_BinLogStreamReader__connected_stream"] or not d["_BinLogStreamReader__connected_ctl"]
                or reader.end_log_pos or reader.skip_to_timestamp or d["_BinLogStreamReader__freeze_schema"]):
            return reader.fetchone()  # connects (or a configuration this class does not cover)
        conn = reader._stream_connection  # noqa: SLF001
        if conn is not self._conn:
            self._hook(conn)
        lengths = d["_BinLogStreamReader__post_header_lengths"]
        if lengths is not self._lengths:
            self._ok = self._kinds(lengths)
            self._lengths = lengths
        ok = self._ok
        checksum = 4 if d["_BinLogStreamReader__use_checksum"] else 0
        only_tables = d["_BinLogStreamReader__only_tables"]
        only_schemas = d["_BinLogStreamReader__only_schemas"]
        table_map = reader.table_map
        read = self._read
        header = framing.header
        while True:
            pkt = read()
            data = pkt._data  # noqa: SLF001 - the whole event, unread
            kind = data[5] if len(data) > framing.HEADER and data[0] == 0 else -1
            if kind not in ok:
                self._pushed = pkt
                return reader.fetchone()
            ts, _, server, size, end = header(data, 1)
            body_end = 1 + size - checksum
            if body_end > len(data) or body_end < framing.HEADER:
                self._pushed = pkt
                return reader.fetchone()
            if end:
                reader.log_pos = end
            if kind == framing.MARIADB_GTID:
                frame = framing.Frame(kind, end, size, ts)
                frame.gtid = framing.mariadb_gtid(data, server)
                return frame
            if kind == framing.XID:
                return framing.Frame(kind, end, size, ts)
            if kind == framing.ANNOTATE_ROWS:
                continue
            if kind == framing.QUERY:
                if framing.is_begin(data, body_end):
                    return framing.Frame(kind, end, size, ts)
                self._pushed = pkt
                return reader.fetchone()
            if kind == framing.TABLE_MAP:
                taken = self._table_map(data, body_end, only_tables, only_schemas, table_map)
                if taken:
                    continue
                self._pushed = pkt
                return reader.fetchone()
            # a rows event (v1 or v2)
            table = table_map.get(framing.table_id(data))
            if table is None:
                continue  # its table map was filtered out: the library skips it the same way
            rows = self._rows(kind, data, body_end, table, only_tables, only_schemas, end, size, ts)
            if rows is not None:
                return rows
            self._pushed = pkt
            return reader.fetchone()

    def _table_map(self, data: bytes, body_end: int, only_tables: Any, only_schemas: Any,
                   table_map: dict[int, Any]) -> bool:
        """Skip a TABLE_MAP the library would filter out, or take a captured one from the library's
        parse of the same bytes; False: let the library read it."""
        tid = framing.table_id(data)
        body = data[framing.HEADER:body_end]
        last = self._maps.get(tid)
        if last is not None and last[0] == body:  # the same map as this id's last one: WordPress's usual
            schema, table, obj = last[1], last[2], last[3]
        else:
            names = framing.table_map_names(data)
            if names is None:
                return False
            schema, table = names
            obj = None
        # The library's TableMapEvent filters in this order (the table filter notes settings tables).
        if ((only_tables is not None and table not in only_tables)
                or (only_schemas is not None and schema not in only_schemas)):
            self._maps[tid] = (body, schema, table, None)
            return True
        if obj is None:
            reader = self.reader
            key = (body, id(reader._ctl_connection),  # noqa: SLF001
                   bool(reader.__dict__["_BinLogStreamReader__optional_meta_data"]),
                   bool(reader.__dict__["_BinLogStreamReader__use_column_name_cache"]))
            hit = _tm_cache.get(key)
            if hit is None or hit["table_id"] != tid:
                return False
            obj = hit["table_obj"]
            if len(self._maps) >= _TM_CACHE_MAX:
                self._maps.clear()
            self._maps[tid] = (body, schema, table, obj)
        table_map[tid] = obj
        return True

    def _rows(self, kind: int, data: bytes, body_end: int, table: Any, only_tables: Any, only_schemas: Any,
              end: int, size: int, ts: int) -> framing.Frame | None:
        """A captured table's rows event decoded from the bytes, or None (the library reads it)."""
        memo = table.__dict__
        seen = memo.get(_CAPTURED)
        if seen is not None and seen[0] is only_tables and seen[1] is only_schemas:
            captured = seen[2]
        else:
            # The library's RowsEvent filters: a table in the map may still be filtered out by name
            # (a table id reused) or by schema; those go through the library.
            captured = bool((only_tables is None or table.table in only_tables)
                            and (only_schemas is None or table.schema in only_schemas))
            memo[_CAPTURED] = (only_tables, only_schemas, captured)
        if not captured:
            return None
        dec = memo.get(_DECODER, _UNSET)
        if dec is _UNSET:
            dec = memo[_DECODER] = fastpath.decoder(table.columns)
        if dec is None:
            return None
        op = framing.ROWS_V1.get(kind) or framing.ROWS_V2[kind]
        layout = framing.rows_layout(data, 8 if kind in framing.ROWS_V1 else 10, body_end, op == "update")
        if layout is None:
            return None
        n, present, present2, start = layout
        if n != len(table.columns) or not _full(present, n) or (present2 is not None and not _full(present2, n)):
            return None  # a partial row image: the library's event, and binlog.py says why it stops
        frame = framing.Frame(framing.ROWS_KIND, end, size, ts)
        frame.op = op
        frame.table = table.table
        if self.defer:
            frame.raw = (dec.signature, bytes(data[start:body_end]))  # type: ignore[attr-defined]
            return frame
        rows = fastpath.decode(dec, data, start, body_end, op)
        if rows is None:
            return None
        frame.rows = rows
        return frame
