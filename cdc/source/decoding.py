"""Lossless text decoding for binlog rows.

mysql-replication decodes UTF-8 columns strictly: one invalid byte sequence in a meta value
(plugins write such bytes) would stop the stream. We register a codec that decodes UTF-8 with
``surrogateescape``, so such bytes survive as lone surrogates, and point the library's UTF-8
charsets at it. encode.py turns those strings back into the exact bytes (base64, marked).
"""

from __future__ import annotations

import codecs

CODEC = "wpcdc_utf8"
_UTF8_NAMES = {"utf8", "utf-8", "utf8mb3", "utf8mb4"}


def _search(name: str) -> codecs.CodecInfo | None:
    if name != CODEC:
        return None

    def decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
        return codecs.utf_8_decode(data, "surrogateescape", True)

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return codecs.utf_8_encode(text, "surrogateescape")

    return codecs.CodecInfo(encode, decode, name=CODEC)  # type: ignore[arg-type]


_installed = False


def install() -> None:
    """Make mysql-replication decode UTF-8 columns losslessly (idempotent)."""
    global _installed
    if _installed:
        return
    codecs.register(_search)
    from pymysqlreplication import row_event

    original = row_event.RowsEvent.charset_to_encoding

    def charset_to_encoding(name: str) -> str:
        encoding = original(name)
        return CODEC if str(encoding).lower() in _UTF8_NAMES else encoding

    row_event.RowsEvent.charset_to_encoding = staticmethod(charset_to_encoding)  # type: ignore[method-assign]
    _installed = True
