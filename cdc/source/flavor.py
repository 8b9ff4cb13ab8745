"""What differs between MariaDB and MySQL 8.0/8.4: the SQL that differs (:class:`Flavor`) and
the two forms of GTID state (:class:`GtidState`).

Only MariaDB runs in our test stack, so this is the one place with MySQL-specific code, and it is
unit-tested against recorded answers (tests/unit/test_flavor.py). What stays outside: the binlog
event types themselves (MariaDB's GTID and compressed events, MySQL's GTID and transaction
payload events), which the reader (cdc/source/binlog.py) names side by side, and the backfill's
consistent-snapshot position, read per flavour in cdc/source/snapshot.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DAY = 86_400.0


@dataclass(frozen=True)
class Flavor:
    name: str  # "mariadb" | "mysql"
    version: tuple[int, int, int]

    @classmethod
    def from_version(cls, version: str) -> Flavor:
        """From ``SELECT VERSION()``: ``10.11.6-MariaDB-0+deb12u1`` or ``8.4.0``."""
        numbers = version.split("-")[0].split(".")
        parsed = tuple(int("".join(c for c in n if c.isdigit()) or 0) for n in (numbers + ["0", "0"])[:3])
        name = "mariadb" if "mariadb" in version.lower() else "mysql"
        return cls(name, parsed)  # type: ignore[arg-type]

    @property
    def is_mariadb(self) -> bool:
        return self.name == "mariadb"

    @property
    def binlog_status_sql(self) -> str:
        """The current binlog file and position. MySQL 8.4 removed SHOW MASTER STATUS."""
        if self.is_mariadb:
            return "SHOW MASTER STATUS"
        return "SHOW BINARY LOG STATUS" if self.version >= (8, 2, 0) else "SHOW MASTER STATUS"

    @property
    def gtid_position_sql(self) -> str:
        return "SELECT @@GLOBAL.gtid_binlog_pos" if self.is_mariadb else "SELECT @@GLOBAL.gtid_executed"

    @property
    def supports_row_metadata(self) -> bool:
        return self.version >= ((10, 5, 0) if self.is_mariadb else (8, 0, 14))

    @property
    def compression_variable(self) -> str:
        """The setting that makes the server write compressed binlog events, which wpcdc does not
        decode: MariaDB's log_bin_compress (compressed query and rows events), MySQL's
        binlog_transaction_compression (a transaction in one zstd payload, MySQL >= 8.0.20)."""
        return "log_bin_compress" if self.is_mariadb else "binlog_transaction_compression"

    @property
    def reads_compression(self) -> bool:
        """MariaDB's compressed events are inflated (cdc/source/compressed.py); MySQL's zstd
        transaction payloads are not read: the setting must be off."""
        return self.is_mariadb

    @property
    def partial_json_variable(self) -> str | None:
        """MySQL's binlog_row_value_options=PARTIAL_JSON logs JSON updates as diffs, not rows."""
        return None if self.is_mariadb else "binlog_row_value_options"

    @property
    def expiry_variables(self) -> tuple[str, ...]:
        """The settings that decide when the server deletes old binlogs by age (see binlog_expiry)."""
        if self.is_mariadb:
            return ("binlog_expire_logs_seconds", "expire_logs_days")
        return ("binlog_expire_logs_seconds", "expire_logs_days", "binlog_expire_logs_auto_purge")

    def binlog_expiry(self, values: Mapping[str, str | None]) -> float | None:
        """Seconds after which the server purges a closed binlog file, or None when it never does.

        ``binlog_expire_logs_seconds`` (MySQL 8, MariaDB 10.6+) wins when it is not 0; else
        ``expire_logs_days`` (MariaDB before 10.6; MySQL 8.0 still reads it; a fraction of a day
        in MariaDB); both 0 means no expiry. MySQL 8.0.29+ also stops purging by age when
        ``binlog_expire_logs_auto_purge`` is OFF. A missing variable counts as 0.
        """
        if str(values.get("binlog_expire_logs_auto_purge") or "ON").upper() in ("OFF", "0"):
            return None
        seconds = _number(values.get("binlog_expire_logs_seconds"))
        if seconds > 0:
            return seconds
        days = _number(values.get("expire_logs_days"))
        return days * DAY if days > 0 else None

    def monitor_grant_names(self) -> tuple[str, ...]:
        # MariaDB 10.5 split REPLICATION CLIENT into BINLOG MONITOR (the old name is an alias).
        return ("REPLICATION CLIENT", "BINLOG MONITOR") if self.is_mariadb else ("REPLICATION CLIENT",)


def _number(text: str | None) -> float:
    try:
        return float(text or 0)
    except ValueError:
        return 0.0


class GtidState:
    """The server's GTID state after the last transaction read, in the server's own notation.

    MariaDB: the last GTID per replication domain, ``domain-server-seq`` joined by commas (what
    ``@@gtid_binlog_pos`` says). MySQL: a GTID *set*, ``uuid:1-100:105,uuid2:1-7`` (what
    ``@@gtid_executed`` says), to which each transaction's ``uuid:n`` is added. The form is told
    from the text, so one reader serves both servers. The binlog position, not this, is where the
    connector resumes; the state travels in the checkpoint and the events for operators.
    """

    def __init__(self, text: str | None = None) -> None:
        self._mariadb: dict[str, str] = {}
        self._mysql: dict[str, list[list[int]]] = {}
        self._text: str | None = None
        for part in (text or "").replace("\n", "").split(","):
            part = part.strip()
            if not part:
                continue
            if ":" in part:
                uuid, *ranges = part.split(":")
                for r in ranges:
                    low, _, high = r.partition("-")
                    self._add(uuid.lower(), int(low), int(high or low))
            else:
                self._mariadb[part.split("-")[0]] = part

    def _add(self, uuid: str, low: int, high: int) -> None:
        intervals = self._mysql.setdefault(uuid, [])
        intervals.append([low, high])
        intervals.sort()
        merged: list[list[int]] = []
        for a, b in intervals:
            if merged and a <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self._mysql[uuid] = merged

    def apply(self, gtid: str) -> None:
        """Add one transaction's GTID: MariaDB ``0-1-42`` or MySQL ``uuid:42``."""
        if ":" in gtid:
            uuid, _, seq = gtid.rpartition(":")
            n = int(seq)
            intervals = self._mysql.get(uuid.lower())
            if intervals and intervals[-1][1] + 1 == n:
                intervals[-1][1] = n  # the usual case: the next transaction of the same server
            else:
                self._add(uuid.lower(), n, n)
        else:
            domains = self._mariadb
            domains[gtid.split("-")[0]] = gtid
            if len(domains) == 1 and not self._mysql:
                self._text = gtid  # one domain (nearly every site): the state is this GTID
                return
        self._text = None

    def __str__(self) -> str:
        mariadb = [self._mariadb[d] for d in sorted(self._mariadb)]
        mysql = [uuid + "".join(f":{a}" if a == b else f":{a}-{b}" for a, b in ranges)
                 for uuid, ranges in sorted(self._mysql.items())]
        return ",".join(mariadb + mysql)

    def text(self) -> str | None:
        # Asked for at every transaction boundary (3 times per autocommit row): built once per GTID.
        if self._text is None:
            self._text = str(self)
        return self._text or None
