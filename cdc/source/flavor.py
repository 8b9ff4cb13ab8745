"""What differs between MariaDB and MySQL 8.0/8.4, behind one small interface.

Only MariaDB runs in our test stack, so this is the one place with MySQL-specific SQL, and it is
unit-tested against recorded answers (tests/unit/test_flavor.py).
"""

from __future__ import annotations

from dataclasses import dataclass


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

    def monitor_grant_names(self) -> tuple[str, ...]:
        # MariaDB 10.5 split REPLICATION CLIENT into BINLOG MONITOR (the old name is an alias).
        return ("REPLICATION CLIENT", "BINLOG MONITOR") if self.is_mariadb else ("REPLICATION CLIENT",)
