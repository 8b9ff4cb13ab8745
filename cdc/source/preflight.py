"""Preflight: is this server set up for wpcdc? One line per failure, with the fix and an exit code.

Run by ``wpcdc check`` and at the start of ``wpcdc stream``. Each check is a function so the
checks read as a list; the first failing one raises PreflightError (exit codes in
docs/operations.md).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import pymysql

from cdc.errors import Exit, PreflightError, SourceError, SourceUnreachableError
from cdc.position import Position
from cdc.source import boundary
from cdc.source.database import Database
from cdc.wordpress import SettingsKind, TableKind, TableNames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def _expect(db: Database, variable: str, wanted: str, exit_code: Exit, fix: str) -> CheckResult:
    value = db.variable(variable)
    if value is None or value.upper() != wanted:
        raise PreflightError(
            f"{variable} is {value!r}, wpcdc needs {wanted}: {fix}", check=variable, exit_code=exit_code
        )
    return CheckResult(variable, True, value)


def check_connect(db: Database) -> CheckResult:
    """Connect and read the version. A server that does not answer (yet) is a retriable failure:
    ``stream`` waits for it like for a server lost mid-stream; a refused login is not."""
    try:
        flavor = db.flavor
    except SourceError as exc:
        raise PreflightError(str(exc), check="connect", exit_code=Exit.MYSQL_CONNECT,
                             retriable=isinstance(exc, SourceUnreachableError)) from None
    return CheckResult("connect", True, f"{flavor.name} {'.'.join(map(str, flavor.version))}")


def check_binlog_settings(db: Database) -> list[CheckResult]:
    results = [
        _expect(db, "log_bin", "ON", Exit.LOG_BIN,
                "start the server with log_bin (e.g. log_bin=mysql-bin in my.cnf) and a server_id"),
        _expect(db, "binlog_format", "ROW", Exit.BINLOG_FORMAT,
                "set binlog_format=ROW in my.cnf (SET GLOBAL affects new sessions only)"),
        _expect(db, "binlog_row_image", "FULL", Exit.ROW_IMAGE, "set binlog_row_image=FULL in my.cnf"),
    ]
    if db.flavor.supports_row_metadata:
        results.append(_expect(db, "binlog_row_metadata", "FULL", Exit.ROW_METADATA,
                               "set binlog_row_metadata=FULL in my.cnf (column names in the binlog)"))
    else:
        raise PreflightError(
            "this server is too old for binlog_row_metadata (MariaDB >= 10.5 or MySQL >= 8.0.14 needed)",
            check="binlog_row_metadata", exit_code=Exit.ROW_METADATA,
        )
    var = db.flavor.compression_variable
    value = db.variable(var)
    if value is not None and value.upper() in ("ON", "1") and not db.flavor.reads_compression:
        raise PreflightError(
            f"{var}=ON: wpcdc does not decode compressed binlog events and would stop at the first "
            f"one; set {var}=OFF (SET GLOBAL {var}=OFF, and in my.cnf)", check=var, exit_code=Exit.COMPRESSION,
        )
    on = value is not None and value.upper() in ("ON", "1")
    results.append(CheckResult(var, True, "ON (compressed events are inflated)" if on else value or "OFF"))
    partial = db.flavor.partial_json_variable
    if partial:
        value = db.variable(partial) or ""
        if "PARTIAL_JSON" in value.upper():
            raise PreflightError(
                f"{partial}={value}: JSON updates would be logged as diffs wpcdc cannot apply; set "
                f"{partial}='' in my.cnf", check=partial, exit_code=Exit.BINLOG_FORMAT,
            )
        results.append(CheckResult(partial, True, value or "''"))
    # Any checksum works (the reader negotiates it); a change rotates the binlog and the stream
    # reconnects by itself. Shown so an operator sees what the stream negotiates.
    checksum = db.variable("binlog_checksum")
    if checksum is not None:
        results.append(CheckResult("binlog_checksum", True, f"{checksum} (a change makes wpcdc reconnect)"))
    return results


_GRANT = re.compile(r"GRANT (.+?) ON (\S+) TO", re.IGNORECASE)


def check_privileges(db: Database, tables: TableNames | None = None) -> CheckResult:
    """The least-privilege grants: REPLICATION SLAVE and REPLICATION CLIENT on *.*, SELECT on the
    WordPress tables (tried for real on blog 1's, so grants through roles count too).

    Reports every missing one at once, with the GRANT statements that fix them.
    """
    grants = [next(iter(r.values())) for r in db.query("SHOW GRANTS")]
    global_privs: set[str] = set()
    for g in grants:
        m = _GRANT.match(g)
        if m and m.group(2) in ("*.*", "`*`.`*`"):
            global_privs |= {p.strip().upper() for p in m.group(1).split(",")}
    if "ALL PRIVILEGES" in global_privs:
        return CheckResult("privileges", True, "ALL PRIVILEGES")
    missing = []
    if "REPLICATION SLAVE" not in global_privs and "REPLICATION REPLICA" not in global_privs:
        missing.append("REPLICATION SLAVE")
    if not global_privs & set(db.flavor.monitor_grant_names()):
        missing.append("REPLICATION CLIENT")
    unreadable = _unreadable_tables(db, tables) if tables is not None else []
    if missing or unreadable:
        account = _account(db)
        fixes = [f"GRANT {', '.join(missing)} ON *.* TO {account}"] if missing else []
        lacks = [", ".join(missing)] if missing else []
        if unreadable:
            database = db.settings.database
            lacks.append(f"SELECT on {', '.join(f'{database}.{t}' for t in unreadable)}")
            fixes.append(f"GRANT SELECT ON `{database}`.* TO {account}")
        raise PreflightError(
            f"{account} lacks {'; '.join(lacks)}: run {'; '.join(fixes)} "
            "(docs/operations.md lists the least-privilege grants)",
            check="privileges", exit_code=Exit.PRIVILEGES,
        )
    detail = ", ".join(sorted(global_privs))
    return CheckResult("privileges", True, f"{detail}; SELECT on the WordPress tables" if tables else detail)


def _account(db: Database) -> str:
    """The account as GRANT wants it ('user'@'host'), from the server's own CURRENT_USER()."""
    try:
        user, _, host = str(db.query("SELECT CURRENT_USER() AS u")[0]["u"]).rpartition("@")
    except SourceError:
        user, host = db.settings.user, "<host>"
    return f"'{user}'@'{host}'"


def _unreadable_tables(db: Database, tables: TableNames) -> list[str]:
    """Blog 1's WordPress tables this user may not SELECT from (a missing table is not reported
    here but by check_tables; MySQL says "denied" for both when the user has no grant at all)."""
    denied = []
    # The options and users tables too: a post's link reads them (cdc/links.py).
    names = [tables.name(1, kind) for kind in TableKind] + [tables.settings_name(k) for k in SettingsKind]
    for table in names:
        try:
            db.query(f"SELECT 1 FROM `{db.settings.database}`.`{table}` LIMIT 0")
        except SourceError as exc:
            if "denied" in str(exc).lower():
                denied.append(table)
        except pymysql.err.MySQLError:
            pass  # no such table (a ProgrammingError): check_tables says so
    return denied


def check_tables(db: Database, tables: TableNames) -> CheckResult:
    database = db.settings.database
    names = {r["t"] for r in db.query(
        "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (database,))}
    wanted = [tables.name(1, kind) for kind in TableKind]
    missing = [t for t in wanted if t not in names]
    if missing:
        raise PreflightError(
            f"database {database!r} has no {', '.join(missing)}: check --mysql-database and "
            f"--table-prefix ({tables.prefix!r}), and that the user may SELECT there",
            check="tables", exit_code=Exit.TABLES,
        )
    try:
        db.query(f"SELECT 1 FROM `{database}`.`{wanted[0]}` LIMIT 1")
    except SourceError:
        raise PreflightError(
            f"user {db.settings.user!r} cannot SELECT from {database}.{wanted[0]}: GRANT SELECT ON "
            f"`{database}`.* TO the wpcdc user", check="tables", exit_code=Exit.PRIVILEGES,
        ) from None
    blogs = sorted({p.blog_id for t in names if (p := tables.parse(t)) and p.kind is TableKind.POSTS})
    return CheckResult("tables", True, f"blogs {blogs}")


def check_position(db: Database, position: Position | None, logs: dict[str, int] | None = None) -> CheckResult:
    """``position`` is on the server (``logs``: its binlogs and their sizes, when already read)."""
    if position is None:
        return CheckResult("position", True, "no saved position")
    logs = db.binlogs() if logs is None else logs
    if position.file not in logs:
        oldest = min(logs, default="(none)")
        raise PreflightError(
            f"saved position {position} is gone: {position.file} was purged (oldest binlog on the "
            f"server is {oldest}). Run `wpcdc backfill` to take a new snapshot, or "
            "`wpcdc offsets reset` to start from the current end and accept the gap",
            check="position", exit_code=Exit.BINLOG_PURGED,
        )
    if position.pos > logs[position.file]:
        raise PreflightError(
            f"saved position {position} is past the end of {position.file} ({logs[position.file]} "
            "bytes): the checkpoint belongs to another server; check --mysql-host or reset offsets",
            check="position", exit_code=Exit.BINLOG_PURGED,
        )
    return CheckResult("position", True, str(position))


def transaction_start(db: Database, position: Position) -> Position:
    """A position given by hand, checked: on the server, the start of an event, and moved back to
    the start of its transaction when it lies inside one (see cdc/source/boundary.py)."""
    logs = db.binlogs()
    check_position(db, position, logs)
    # Two cheap answers before the walk over the file: the position is the end of what was
    # written (the file's size in SHOW BINARY LOGS, taken under the server's binlog lock: the
    # binlog only ever holds whole transactions, so it stays a boundary whatever comes after), or
    # a transaction's GTID event is there.
    if logs[position.file] == position.pos or boundary.opens_transaction(db.binlog_events_at(position), position):
        return position
    found = boundary.transaction_start(db.binlog_events(position.file), position)
    if found.moved:
        log.warning("binlog position %s is inside a transaction: moved to its start %s, so none of its "
                    "rows is lost", position, found.position)
    return found.position


def run_all(db: Database, tables: TableNames, position: Position | None) -> list[CheckResult]:
    results = [check_connect(db)]
    results += check_binlog_settings(db)
    results.append(check_privileges(db, tables))
    results.append(check_tables(db, tables))
    results.append(check_position(db, position))
    return results
