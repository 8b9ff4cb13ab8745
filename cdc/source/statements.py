"""What a binlog QUERY event means for wpcdc: a transaction boundary, or rows we cannot see.

With row-based logging the rows of WordPress's tables arrive as rows events; query events carry
transaction control (``BEGIN``, ``COMMIT``, ``SAVEPOINT``) and DDL. Two kinds of query event
change captured rows without any rows event, and must never pass in silence:

* a DML statement (``UPDATE wp_posts …``) logged as a statement: the writing session ran with
  ``binlog_format=STATEMENT`` (or ``MIXED`` chose a statement);
* DDL that removes or replaces a captured table's rows: ``TRUNCATE``, ``DROP TABLE``,
  ``RENAME TABLE`` (either side), ``ALTER TABLE … RENAME``, ``CREATE OR REPLACE TABLE``,
  ``DROP DATABASE``.

Everything else (``ALTER TABLE … ADD COLUMN``, ``CREATE TABLE`` for a new blog, DDL elsewhere)
is harmless: the next table map describes the new layout.

Pure functions: the reader (source/binlog.py) decides what to do with the answer.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from cdc.wordpress import TableNames


class QueryKind(enum.Enum):
    BEGIN = "begin"  # a transaction starts
    COMMIT = "commit"  # a transaction ends (COMMIT, or a full ROLLBACK of non-transactional rows)
    INSIDE = "inside"  # inside a transaction, no boundary: SAVEPOINT, ROLLBACK TO, RELEASE, XA END
    XA_START = "xa_start"  # an XA transaction starts (its rows are logged before it commits)
    DML = "dml"  # a row change logged as a statement
    DDL = "ddl"  # anything else: implicitly commits, so it is a boundary


@dataclass(frozen=True, slots=True)
class QueryMeaning:
    kind: QueryKind
    captured: tuple[str, ...] = ()  # captured tables whose rows this statement changes unseen
    verb: str = ""  # TRUNCATE, DROP TABLE, UPDATE, … (for messages)


_COMMENTS = re.compile(r"/\*(?!!).*?\*/|#[^\n]*|--[ \t][^\n]*", re.DOTALL)
_VERSIONED = re.compile(r"/\*!\d*|\*/")  # /*!50001 … */: executable comments, their text counts
_IDENT = r"(?:`(?:[^`]|``)+`|[A-Za-z0-9_$]+)"
_NAME = re.compile(rf"({_IDENT})(?:\s*\.\s*({_IDENT}))?")
_DML = ("INSERT", "REPLACE", "UPDATE", "DELETE", "LOAD")


def _unquote(ident: str) -> str:
    return ident[1:-1].replace("``", "`") if ident.startswith("`") else ident


def normalize(query: str) -> str:
    """The statement without comments and surrounding blanks (versioned comments unwrapped)."""
    text = _COMMENTS.sub(" ", query)
    return _VERSIONED.sub(" ", text).strip()


def _tables(text: str) -> list[tuple[str | None, str]]:
    """Every ``[schema.]name`` that appears in ``text`` (an over-approximation, on purpose)."""
    found: list[tuple[str | None, str]] = []
    for m in _NAME.finditer(text):
        first, second = m.group(1), m.group(2)
        if second is not None:
            found.append((_unquote(first), _unquote(second)))
        else:
            found.append((None, _unquote(first)))
    return found


def _captured(text: str, default_schema: str | None, database: str, tables: TableNames) -> tuple[str, ...]:
    out: list[str] = []
    for schema, name in _tables(text):
        if (schema or default_schema) != database:
            continue
        if tables.parse(name) is not None and name not in out:
            out.append(name)
    return tuple(out)


def _dml_target(verb: str, text: str) -> str:
    """The part of a DML statement that names the tables it writes (reads are left out where the
    grammar makes that easy; where it does not, a table only read is counted too: a false stop is
    loud and harmless, a missed write would be silent)."""
    upper = text.upper()
    if verb in ("INSERT", "REPLACE"):
        m = re.match(r"(?:INSERT|REPLACE)(?:\s+(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE))*(?:\s+INTO)?\s+",
                     upper)
        rest = text[m.end():] if m else text
        name = _NAME.match(rest)
        return name.group(0) if name else rest
    if verb == "UPDATE":
        cut = re.search(r"\sSET\s", upper)
        return text[len("UPDATE"):cut.start()] if cut else text
    if verb == "DELETE":
        cut = re.search(r"\sWHERE\s", upper)
        return text[len("DELETE"):cut.start()] if cut else text
    # LOAD DATA … INTO TABLE t
    m = re.search(r"\sINTO\s+TABLE\s+", upper)
    if m:
        name = _NAME.match(text[m.end():])
        return name.group(0) if name else text
    return text


def classify(query: str, default_schema: str | None, database: str, tables: TableNames) -> QueryMeaning:
    """What a query event means, given the session's default schema and the captured database."""
    text = normalize(query)
    upper = text.upper()
    words = upper.split(None, 3)
    first = words[0] if words else ""
    second = words[1] if len(words) > 1 else ""
    if first == "BEGIN" or (first == "START" and second == "TRANSACTION"):
        return QueryMeaning(QueryKind.BEGIN)
    if first == "COMMIT":
        return QueryMeaning(QueryKind.COMMIT)
    if first == "ROLLBACK":
        # ROLLBACK TO [SAVEPOINT] x stays inside the transaction; a plain ROLLBACK ends it.
        return QueryMeaning(QueryKind.INSIDE if second == "TO" else QueryKind.COMMIT)
    if first == "SAVEPOINT" or (first == "RELEASE" and second == "SAVEPOINT"):
        return QueryMeaning(QueryKind.INSIDE)
    if first == "XA":
        if second in ("START", "BEGIN"):
            return QueryMeaning(QueryKind.XA_START)
        if second == "END":
            return QueryMeaning(QueryKind.INSIDE)
        return QueryMeaning(QueryKind.COMMIT)  # XA PREPARE / COMMIT / ROLLBACK: the group ends
    if first in _DML:
        verb = first
        captured = _captured(_dml_target(verb, text), default_schema, database, tables)
        return QueryMeaning(QueryKind.DML, captured, f"{verb} (logged as a statement)")
    return _ddl(text, upper, default_schema, database, tables)


def _ddl(text: str, upper: str, default_schema: str | None, database: str, tables: TableNames) -> QueryMeaning:
    def names(part: str) -> tuple[str, ...]:
        return _captured(part, default_schema, database, tables)

    if m := re.match(r"TRUNCATE(?:\s+TABLE)?\s+", upper):
        return QueryMeaning(QueryKind.DDL, names(text[m.end():]), "TRUNCATE TABLE")
    if m := re.match(r"DROP\s+(?:TEMPORARY\s+)?TABLES?\s+(?:IF\s+EXISTS\s+)?", upper):
        if "TEMPORARY" in upper[:m.end()]:
            return QueryMeaning(QueryKind.DDL)  # a temporary table shadows, never removes, rows
        return QueryMeaning(QueryKind.DDL, names(text[m.end():]), "DROP TABLE")
    if m := re.match(r"RENAME\s+TABLES?\s+", upper):
        return QueryMeaning(QueryKind.DDL, names(text[m.end():]), "RENAME TABLE")
    if m := re.match(r"ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+", upper):
        rest = text[m.end():]
        if re.search(r"\sRENAME(?:\s+(?:TO|AS))?\s", " " + rest.upper() + " ") and not re.search(
                r"\sRENAME\s+(?:COLUMN|INDEX|KEY)\s", " " + rest.upper()):
            return QueryMeaning(QueryKind.DDL, names(rest), "ALTER TABLE … RENAME")
        return QueryMeaning(QueryKind.DDL)
    if m := re.match(r"CREATE\s+OR\s+REPLACE\s+(?:TEMPORARY\s+)?TABLE\s+", upper):
        if "TEMPORARY" in upper[:m.end()]:
            return QueryMeaning(QueryKind.DDL)
        target = _NAME.match(text[m.end():])
        return QueryMeaning(QueryKind.DDL, names(target.group(0)) if target else (), "CREATE OR REPLACE TABLE")
    if m := re.match(r"DROP\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+EXISTS\s+)?", upper):
        dropped = _NAME.match(text[m.end():])
        if dropped and _unquote(dropped.group(1)) == database:
            return QueryMeaning(QueryKind.DDL, (f"{database}.*",), "DROP DATABASE")
    return QueryMeaning(QueryKind.DDL)
