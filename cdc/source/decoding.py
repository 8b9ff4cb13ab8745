"""Lossless value decoding for binlog rows: what mysql-replication gets wrong, decoded our way.

The library decodes most column types well; where it loses or mangles a value, or raises on one
a real site holds, we decode it here (the values are listed in docs/events.md, "Values"), and
cdc/source/library.py puts these readers into the library's row decoder (:func:`readers`,
:func:`decode_text`, :func:`json_text`):

* UTF-8 text is decoded with ``surrogateescape``: one invalid byte sequence in a meta value
  (plugins write such bytes) would otherwise stop the stream. encode.py turns such strings back
  into the exact bytes (base64, marked).
* latin1 is MariaDB's latin1 (cp1252 whose five undefined bytes are the C1 controls), not
  Python's strict cp1252, which raises on them; text a charset cannot decode stays bytes
  (base64 in the event) instead of raising; the UTF-16/32 charsets are big-endian, as MySQL's.
* Zero dates are None, as before; dates Python cannot hold (``2024-02-30``, ``2024-00-00``,
  year 0) are their text (``"2024-02-30T10:11:12"``), where the library said None (lost) or
  raised (DATE, old DATETIME); a zero TIMESTAMP is None, not 1970-01-01.
* YEAR ``0000`` is 0 (the library said 1900), BIT is an integer (a string of digits), SET is
  its members as MySQL prints them, ``"a,c"`` (the library's Python set has no JSON form and
  its empty set was None, the same as NULL).

:func:`sql_conversions` makes rows read with SQL (the post row of a meta-only change, a backfill)
come out the same way as rows from the binlog.
"""

from __future__ import annotations

import codecs
import datetime
import re
from collections.abc import Callable
from typing import Any

CODEC = "wpcdc_utf8"
LATIN1 = "wpcdc_latin1"
_UTF8_NAMES = {"utf8", "utf-8", "utf8mb3", "utf8mb4"}
# MySQL's charsets whose Python codec differs from pymysql's idea of it, or that pymysql does not
# know. The library names a column's charset by its Python encoding when it knows one, so latin1
# arrives as "cp1252" (MySQL has no charset of that name).
_ENCODINGS = {"latin1": LATIN1, "cp1252": LATIN1, "utf16": "utf-16-be", "ucs2": "utf-16-be",
              "utf32": "utf-32-be", "utf16le": "utf-16-le"}

# MariaDB's latin1 is cp1252 with 0x81, 0x8D, 0x8F, 0x90 and 0x9D as the C1 controls U+0081 …:
# every byte is a character, so no latin1 value can fail to decode.
_LATIN1_TABLE = "".join(
    bytes([b]).decode("cp1252") if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else chr(b) for b in range(256)
)
_LATIN1_ENCODE = codecs.charmap_build(_LATIN1_TABLE)


def _search(name: str) -> codecs.CodecInfo | None:
    if name == CODEC:
        def decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
            return codecs.utf_8_decode(data, "surrogateescape", True)

        def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
            return codecs.utf_8_encode(text, "surrogateescape")

        return codecs.CodecInfo(encode, decode, name=CODEC)  # type: ignore[arg-type]
    if name == LATIN1:
        def decode_latin1(data: bytes, errors: str = "strict") -> tuple[str, int]:
            return codecs.charmap_decode(data, errors, _LATIN1_TABLE)

        def encode_latin1(text: str, errors: str = "strict") -> tuple[bytes, int]:
            return codecs.charmap_encode(text, errors, _LATIN1_ENCODE)

        return codecs.CodecInfo(encode_latin1, decode_latin1, name=LATIN1)  # type: ignore[arg-type]
    return None


codecs.register(_search)


def decode_text(raw: bytes, charset: str | None) -> str | bytes:
    """A text column's bytes as str, or the bytes themselves when they are not text in
    ``charset`` (``binary`` columns; a value its charset cannot decode): never an exception."""
    if charset is None or charset in _UTF8_NAMES:
        return codecs.utf_8_decode(raw, "surrogateescape", True)[0]
    if charset == "binary":
        return raw
    encoding = _ENCODINGS.get(charset)
    if encoding is None:
        from pymysql.charset import charset_by_name

        known = charset_by_name(charset)
        encoding = known.encoding if known else charset
    try:
        return raw.decode(encoding)
    except (LookupError, UnicodeDecodeError):
        return raw


# ------------------------------------------------------------------------------------- dates


def odd_datetime(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
                 micro: int = 0) -> str | None:
    """A DATETIME Python cannot hold: None for the zero date, else its text, ISO-shaped like the
    datetimes orjson writes (``2024-02-30T10:11:12``, ``.ffffff`` when there is a fraction)."""
    if not (year or month or day or hour or minute or second or micro):
        return None
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{micro:06d}" if micro else text


def datetime_value(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
                   micro: int = 0) -> datetime.datetime | str | None:
    try:
        return datetime.datetime(year, month, day, hour, minute, second, micro)
    except ValueError:
        return odd_datetime(year, month, day, hour, minute, second, micro)


def date_value(year: int, month: int, day: int) -> datetime.date | str | None:
    """A DATE: None for 0000-00-00, its text when Python cannot hold it (2024-02-30)."""
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return f"{year:04d}-{month:02d}-{day:02d}" if (year or month or day) else None


def _fsp(packet: Any, fsp: int) -> int:
    """Microseconds of a DATETIME2/TIMESTAMP2 (stored big-endian in 0-3 bytes by precision)."""
    size = (fsp + 1) // 2
    if not size:
        return 0
    value = int.from_bytes(packet.read(size), "big")
    if fsp % 2:
        value //= 10
    return int(value * 10 ** (6 - fsp))


def _read_datetime2(packet: Any, column: Any) -> datetime.datetime | str | None:
    """DATETIME2: 1 sign bit, 17 bits year*13+month, 5 day, 5 hour, 6 minute, 6 second."""
    v = int.from_bytes(packet.read(5), "big")
    ym = (v >> 22) & 0x1FFFF
    micro = _fsp(packet, column.fsp or 0)
    return datetime_value(ym // 13, ym % 13, (v >> 17) & 31, (v >> 12) & 31, (v >> 6) & 63, v & 63, micro)


def _read_datetime(packet: Any, column: Any) -> datetime.datetime | str | None:
    """The DATETIME of MySQL before 5.6 (tables never rebuilt since): YYYYMMDDhhmmss as a number."""
    v = packet.read_uint64()
    d, t = divmod(v, 1_000_000)
    return datetime_value(d // 10000, d // 100 % 100, d % 100, t // 10000, t // 100 % 100, t % 100)


def _read_date(packet: Any, column: Any) -> datetime.date | str | None:
    v = packet.read_uint24()
    return date_value(v >> 9, (v >> 5) & 15, v & 31)


def _read_timestamp2(packet: Any, column: Any) -> datetime.datetime | None:
    """TIMESTAMP2, in UTC; the zero TIMESTAMP is None (not 1970-01-01)."""
    seconds = int.from_bytes(packet.read(4), "big")
    micro = _fsp(packet, column.fsp or 0)
    if not seconds and not micro:
        return None
    epoch = datetime.datetime(1970, 1, 1)
    return epoch + datetime.timedelta(seconds=seconds, microseconds=micro)


def _read_timestamp(packet: Any, column: Any) -> datetime.datetime | None:
    seconds = packet.read_uint32()
    return datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=seconds) if seconds else None


# ------------------------------------------------------------------------------- other types


def _read_year(packet: Any, column: Any) -> int:
    v = packet.read_uint8()
    return 1900 + v if v else 0  # YEAR 0000 is stored as 0


def _read_bit(packet: Any, column: Any) -> int:
    return int.from_bytes(packet.read(column.bytes), "big")


def _read_set(packet: Any, column: Any) -> str | int:
    """The members as MySQL prints them (definition order, comma-separated, "" for none); the
    bitmask itself if the table map did not name the members (binlog_row_metadata not FULL)."""
    mask = packet.read_uint_by_size(column.size)
    names = column.set_values
    if not names:
        return int(mask)
    return ",".join(name for i, name in enumerate(names) if mask >> i & 1)


def readers() -> dict[int, Callable[[Any, Any], Any]]:
    """Our reader for each column type we decode ourselves, by the library's type code.

    A reader takes the library's packet reader (its public ``read*`` methods, positioned at the
    value) and the column, reads the value and returns it. cdc/source/library.py puts them into
    the library's row decoder; strings go through :func:`decode_text` there."""
    from pymysqlreplication.constants import FIELD_TYPE

    return {
        FIELD_TYPE.DATETIME2: _read_datetime2,
        FIELD_TYPE.DATETIME: _read_datetime,
        FIELD_TYPE.DATE: _read_date,
        FIELD_TYPE.TIMESTAMP2: _read_timestamp2,
        FIELD_TYPE.TIMESTAMP: _read_timestamp,
        FIELD_TYPE.YEAR: _read_year,
        FIELD_TYPE.BIT: _read_bit,
        FIELD_TYPE.SET: _read_set,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return decode_text(bytes(value), None)
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def json_text(value: Any) -> Any:
    """A MySQL JSON column (binary JSON, which the library parses into dicts with bytes keys) as
    its JSON text, as MariaDB stores it and SQL reads it: one shape for both flavours, and a
    string the event schema takes. None stays None (SQL NULL)."""
    if value is None or isinstance(value, str):
        return value
    import orjson

    return orjson.dumps(_plain(value)).decode()


# ------------------------------------------------------------------------------------ SQL side

_DATETIME_TEXT = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?)?")


def _sql_temporal(convert: Callable[[Any], Any], date_only: bool = False) -> Callable[[Any], Any]:
    """pymysql's converter, then what it leaves as text (zero and invalid dates) our way."""
    def conv(value: Any) -> Any:
        result = convert(value)
        if not isinstance(result, (str, bytes)):
            return result
        text = result.decode() if isinstance(result, bytes) else result
        m = _DATETIME_TEXT.fullmatch(text)
        if m is None:
            return text
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
        if date_only:
            return date_value(y, mo, d)
        micro = int((m[7] or "0").ljust(6, "0"))
        return datetime_value(y, mo, d, int(m[4] or 0), int(m[5] or 0), int(m[6] or 0), micro)

    return conv


def _plain_datetime(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert``, but an ordinary ``YYYY-MM-DD hh:mm:ss`` (nearly every WordPress date) through
    the C parser first: the same datetime pymysql's regular expression gives, in a fifth of the
    time (a backfill converts four per post). Anything else (zero and invalid dates, years before
    1000, fractions) goes to ``convert`` as before."""
    parse = datetime.datetime.fromisoformat

    def conv(value: Any) -> Any:
        if type(value) is str and len(value) == 19 and value[0] != "0" and value[10] == " ":
            try:
                return parse(value)
            except ValueError:
                pass
        return convert(value)

    return conv


def sql_conversions() -> dict[Any, Any]:
    """pymysql ``conv`` under which SQL reads give the values the binlog decoding gives."""
    from pymysql import converters
    from pymysql.constants import FIELD_TYPE

    conv = dict(converters.conversions)
    conv[FIELD_TYPE.DATETIME] = _plain_datetime(_sql_temporal(converters.convert_datetime))
    conv[FIELD_TYPE.TIMESTAMP] = _plain_datetime(_sql_temporal(converters.convert_datetime))
    conv[FIELD_TYPE.DATE] = _sql_temporal(converters.convert_date, date_only=True)
    conv[FIELD_TYPE.BIT] = lambda value: int.from_bytes(value, "big")
    return conv
