#!/usr/bin/env python3
"""The local stack: a user-space MariaDB, a single-node Kafka (KRaft) and a WordPress install.

There is no container engine on our machines, so the project runs real servers from packages:
MariaDB from Debian's ``mariadb-server``, Kafka from the jars Maven resolves out of Maven Central,
WordPress from Debian's ``wordpress`` with PHP CLI. Everything listens on 127.0.0.1 only, on ports
picked free at first start (and kept while they stay free), with data and logs under one state
directory (``.stack/`` at the repository root unless ``WPCDC_STACK_DIR`` says otherwise).

Usage::

    python deploy/local/stack.py up [mariadb|kafka|wordpress|wordpress-http ...]   # start (idempotent)
    python deploy/local/stack.py up cluster                          # a 3-broker Kafka too (cluster.py)
    python deploy/local/stack.py down                                # stop everything
    python deploy/local/stack.py status                              # what runs where
    python deploy/local/stack.py env                                 # shell exports for the CLI

Tests import this module and call :func:`up` from a session fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
STATE = Path(os.environ.get("WPCDC_STACK_DIR", REPO / ".stack")).resolve()
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wpcdc"
KAFKA_VERSION = "4.1.1"

ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-pw"
# The connector's least-privilege account (see docs/operations.md for the grants).
CDC_USER, CDC_PASSWORD = "wpcdc", "wpcdc-pw"
CDC_GRANTS = "REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, SELECT ON *.*"
# The same grants for a user that must also show a client certificate from the local CA (REQUIRE
# X509): what a connector configured for mutual TLS logs in as.
CDC_X509_USER, CDC_X509_PASSWORD = "wpcdc_x509", "wpcdc-x509-pw"
WP_USER, WP_PASSWORD = "wordpress", "wordpress-pw"
WP_DATABASE = "wordpress"


class StackError(RuntimeError):
    """A server of the local stack could not be started; the message names its log."""


@dataclass
class Ports:
    mysql: int = 0
    kafka: int = 0
    kafka_controller: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _load_ports() -> Ports:
    path = STATE / "ports.json"
    if path.exists():
        return Ports(**json.loads(path.read_text()))
    return Ports()


def _save_ports(ports: Ports) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "ports.json").write_text(json.dumps(asdict(ports), indent=2))


def _pid_alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    # A server this process started (a test that restarts Kafka) stays a zombie until it is
    # reaped, and a zombie still answers kill(0): reap it if it is ours, read its state if not.
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return None
    except ChildProcessError:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return None
        except (OSError, IndexError):
            pass
    return pid


def _choose(ports: Ports, name: str, owner_alive: bool) -> int:
    current = getattr(ports, name)
    if current and (owner_alive or _port_free(current)):
        return int(current)
    port = _free_port()
    setattr(ports, name, port)
    return port


def _wait(check, what: str, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise StackError(f"{what} did not come up within {timeout:.0f}s; see {log}\n{tail}")


def _stop_pid(pidfile: Path, timeout: float = 30.0) -> None:
    pid = _pid_alive(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pidfile):
        time.sleep(0.1)
    if _pid_alive(pidfile):
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def _run(cmd: list[str], log: Path, **kw) -> None:
    with open(log, "ab") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise StackError(f"{' '.join(cmd[:3])} failed ({proc.returncode}); see {log}\n{tail}")


# --------------------------------------------------------------------------------------- MariaDB


def mariadb_dir() -> Path:
    return STATE / "mariadb"


def _mysqld() -> str:
    for name in ("mariadbd", "mysqld"):
        for base in ("/usr/sbin", "/usr/bin"):
            if Path(base, name).exists():
                return str(Path(base, name))
    raise StackError("mariadbd not found: install Debian's mariadb-server (make deps does)")


def _mariadb_cnf(d: Path, port: int) -> str:
    return f"""[mysqld]
{"user = root" if os.geteuid() == 0 else ""}
datadir = {d}/data
socket = {d}/mysqld.sock
pid-file = {d}/mysqld.pid
log-error = {d}/mysqld.log
port = {port}
bind-address = 127.0.0.1
skip-name-resolve
server_id = 1
log_bin = {d}/binlog/mariadb-bin
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
expire_logs_days = 2
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
max_allowed_packet = 256M
innodb_buffer_pool_size = 256M
innodb_log_file_size = 256M
innodb_flush_log_at_trx_commit = 2
sync_binlog = 0
max_connections = 300
"""


def mariadb_up(ports: Ports) -> None:
    d = mariadb_dir()
    pidfile = d / "mysqld.pid"
    alive = _pid_alive(pidfile) is not None
    port = _choose(ports, "mysql", alive)
    cnf = d / "my.cnf"
    if alive and _port_open(port):
        if _mariadb_tls_configured(cnf):
            _mariadb_x509_user(d)
            return
        mariadb_down()  # started by an older stack.py, without TLS: restart with it
    (d / "binlog").mkdir(parents=True, exist_ok=True)
    cnf.write_text(_mariadb_cnf(d, port) + _mariadb_tls_cnf())
    log = d / "mysqld.log"
    fresh = not (d / "data" / "mysql").exists()
    if fresh:
        shutil.rmtree(d / "data", ignore_errors=True)
        installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if not installer:
            raise StackError("mariadb-install-db not found: install Debian's mariadb-server")
        _run(
            [installer, f"--defaults-file={cnf}", "--auth-root-authentication-method=normal",
             "--skip-test-db"],
            d / "install.log",
        )
    with open(d / "mysqld.stdout", "ab") as out:
        subprocess.Popen([_mysqld(), f"--defaults-file={cnf}"], stdout=out, stderr=out,
                         start_new_session=True)
    _wait(lambda: _port_open(port) and (d / "mysqld.sock").exists(), "MariaDB", log)
    if fresh:
        sql = f"""
CREATE USER '{ADMIN_USER}'@'127.0.0.1' IDENTIFIED BY '{ADMIN_PASSWORD}';
GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER '{CDC_USER}'@'127.0.0.1' IDENTIFIED BY '{CDC_PASSWORD}';
GRANT {CDC_GRANTS} TO '{CDC_USER}'@'127.0.0.1';
CREATE USER '{WP_USER}'@'127.0.0.1' IDENTIFIED BY '{WP_PASSWORD}';
CREATE USER '{WP_USER}'@'localhost' IDENTIFIED BY '{WP_PASSWORD}';
CREATE DATABASE IF NOT EXISTS {WP_DATABASE} CHARACTER SET utf8mb4;
GRANT ALL PRIVILEGES ON *.* TO '{WP_USER}'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO '{WP_USER}'@'localhost';
FLUSH PRIVILEGES;
"""
        mysql_client(sql, socket_path=d / "mysqld.sock")
    _mariadb_x509_user(d)


def mysql_client(sql: str, socket_path: Path | None = None, database: str | None = None) -> str:
    """Run SQL as root over the socket with Debian's client; returns stdout."""
    client = shutil.which("mariadb") or shutil.which("mysql")
    if not client:
        raise StackError("mariadb client not found: install Debian's mariadb-client")
    sock = socket_path or mariadb_dir() / "mysqld.sock"
    cmd = [client, "--no-defaults", "-uroot", f"--socket={sock}", "-N", "-B"]
    if database:
        cmd.append(database)
    proc = subprocess.run(cmd, input=sql.encode(), capture_output=True)
    if proc.returncode != 0:
        raise StackError(f"mariadb client failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


def mariadb_down() -> None:
    _stop_pid(mariadb_dir() / "mysqld.pid", timeout=60)


# TLS for MariaDB (so that `--mysql-ssl-ca` is tested against the real server): a certificate from
# a local CA (make_tls, below), added to my.cnf. Plain connections keep working.


def mariadb_tls_dir() -> Path:
    return mariadb_dir() / "tls"


def _mariadb_tls_cnf() -> str:
    tls = make_tls(mariadb_tls_dir(), "MariaDB")
    return f"ssl_ca = {tls}/ca.crt\nssl_cert = {tls}/server.crt\nssl_key = {tls}/server.key\n"


def _mariadb_tls_configured(cnf: Path) -> bool:
    return cnf.exists() and "ssl_cert" in cnf.read_text()


def _mariadb_x509_user(d: Path) -> None:
    """The CDC user's twin that needs a client certificate; made on every start (idempotent), so
    that data directories created before it existed get it too. ``ssl_ca`` (the local CA) is what
    the server checks the client's certificate against."""
    make_client_cert(mariadb_tls_dir(), CDC_X509_USER)
    account = f"'{CDC_X509_USER}'@'127.0.0.1'"
    mysql_client(f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{CDC_X509_PASSWORD}' REQUIRE X509;\n"
                 f"GRANT {CDC_GRANTS} TO {account};\n", socket_path=d / "mysqld.sock")


def mariadb_security(ports: Ports | None = None) -> dict[str, str]:
    """How to reach MariaDB over TLS, and as the X509 user with its client certificate (for tests)."""
    ports = ports or _load_ports()
    tls = mariadb_tls_dir()
    return {
        "host": "127.0.0.1",
        "port": str(ports.mysql),
        "ca": str(tls / "ca.crt"),
        "client_cert": str(tls / "client.crt"),
        "client_key": str(tls / "client.key"),
        "x509_user": CDC_X509_USER,
        "x509_password": CDC_X509_PASSWORD,
    }


# ------------------------------------------------------------------------------ TLS (a local CA)

# Password of the PKCS#12 keystores the local servers read; it protects nothing (the files lie
# next to it), Java just insists on one.
TLS_STORE_PASSWORD = "wpcdc-local-tls"


def make_tls(d: Path, name: str) -> Path:
    """A private CA and a server certificate for 127.0.0.1 / localhost in ``d``, made once.

    ``ca.crt`` is what clients trust (``--kafka-ssl-ca``, ``--mysql-ssl-ca``), ``server.crt`` and
    ``server.key`` are PEM for MariaDB, ``server.p12`` the same pair as PKCS#12 for Java.
    """
    if (d / "server.p12").exists():
        return d
    openssl = shutil.which("openssl")
    if not openssl:
        raise StackError("openssl not found: install Debian's openssl")
    d.mkdir(parents=True, exist_ok=True)
    log = d / "openssl.log"
    (d / "server.ext").write_text(
        "basicConstraints = CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid, issuer\n"
    )
    _run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
          "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"), "-subj", f"/CN=wpcdc local {name} CA",
          "-addext", "basicConstraints = critical, CA:TRUE",
          "-addext", "keyUsage = critical, keyCertSign, cRLSign"], log)
    _run([openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "server.key"),
          "-out", str(d / "server.csr"), "-subj", "/CN=localhost"], log)
    _run([openssl, "x509", "-req", "-days", "3650", "-in", str(d / "server.csr"), "-CA", str(d / "ca.crt"),
          "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "server.crt"),
          "-extfile", str(d / "server.ext")], log)
    _run([openssl, "pkcs12", "-export", "-name", "server", "-in", str(d / "server.crt"),
          "-inkey", str(d / "server.key"), "-certfile", str(d / "ca.crt"),
          "-out", str(d / "server.p12.tmp"), "-passout", f"pass:{TLS_STORE_PASSWORD}"], log)
    (d / "server.p12.tmp").rename(d / "server.p12")  # last: its presence means "complete"
    return d


def make_client_cert(d: Path, subject: str) -> Path:
    """A client certificate (``client.crt``, ``client.key``, PEM) from the CA in ``d``, made once.

    For mutual TLS: servers that trust the local CA (Kafka's MTLS listener, MariaDB's REQUIRE X509)
    accept it; ``subject`` becomes its CN, which is the principal Kafka sees.
    """
    if (d / "client.crt").exists():
        return d
    openssl = shutil.which("openssl")
    if not openssl:
        raise StackError("openssl not found: install Debian's openssl")
    log = d / "openssl.log"
    (d / "client.ext").write_text(
        "basicConstraints = CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = clientAuth\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid, issuer\n"
    )
    _run([openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "client.key"),
          "-out", str(d / "client.csr"), "-subj", f"/CN={subject}"], log)
    (d / "client.key").chmod(0o600)
    _run([openssl, "x509", "-req", "-days", "3650", "-in", str(d / "client.csr"), "-CA", str(d / "ca.crt"),
          "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "client.crt.tmp"),
          "-extfile", str(d / "client.ext")], log)
    (d / "client.crt.tmp").rename(d / "client.crt")  # last: its presence means "complete"
    return d


# ----------------------------------------------------------------------------------------- Kafka

# The broker has a listener per way of logging in, so that TLS and SASL are tested against the
# real thing (tests/integration/test_operations.py, test_kafka_auth.py):
#   listener (protocol)              port                                 how a client gets in
#   PLAINTEXT                        ports.kafka                          what everything else uses
#   SSL                              ports.extra["kafka_ssl"]             server certificate from the local CA
#   SASL_PLAINTEXT                   ports.extra["kafka_sasl"]            PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
#   SASL_SSL                         ports.extra["kafka_sasl_ssl"]        the same over TLS
#   MTLS (SSL)                       ports.extra["kafka_mtls"]            a client certificate from the local CA
#   OAUTH_UNSECURED (SASL_PLAINTEXT) ports.extra["kafka_oauth_unsecured"] OAUTHBEARER, any unsigned JWT with sub/exp
#   OAUTH (SASL_PLAINTEXT)           ports.extra["kafka_oauth"]           OAUTHBEARER, an RS256 JWT from oauth.py
# One SASL user, KAFKA_SASL_USER: its SCRAM credentials are written into the cluster metadata when
# the storage is formatted, its PLAIN password sits in the listener's JAAS line. The OAUTH listener
# checks tokens against the JWKS of the loopback OAuth server (deploy/local/oauth.py, started and
# stopped with the broker, HTTP on ports.extra["oauth"] and HTTPS on ports.extra["oauth_tls"]),
# whose token endpoint gives one client, OAUTH_CLIENT_ID, tokens for OAUTH_AUDIENCE.
KAFKA_SASL_USER, KAFKA_SASL_PASSWORD = "wpcdc", "wpcdc-kafka-pw"


class Listener(NamedTuple):
    protocol: str  # the security protocol it speaks
    port: str  # its key in Ports.extra


KAFKA_LISTENERS = {
    "SSL": Listener("SSL", "kafka_ssl"),
    "SASL_PLAINTEXT": Listener("SASL_PLAINTEXT", "kafka_sasl"),
    "SASL_SSL": Listener("SASL_SSL", "kafka_sasl_ssl"),
    "MTLS": Listener("SSL", "kafka_mtls"),
    "OAUTH_UNSECURED": Listener("SASL_PLAINTEXT", "kafka_oauth_unsecured"),
    "OAUTH": Listener("SASL_PLAINTEXT", "kafka_oauth"),
}
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
KAFKA_CLIENT_SUBJECT = "wpcdc"  # CN of the MTLS client certificate: the principal the broker sees
OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET = "wpcdc", "wpcdc-oauth-secret"
OAUTH_AUDIENCE, OAUTH_ISSUER = "wpcdc-kafka", "wpcdc-local-oauth"
# What the data directory was formatted for. Storage formatted by an older stack.py lacks a later
# listener or the SCRAM users: it is formatted again (the local Kafka's data is disposable) and the
# broker restarted.
KAFKA_LAYOUT = "3: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, MTLS, OAUTH_UNSECURED, OAUTH; SCRAM users"


def kafka_dir() -> Path:
    return STATE / "kafka"


def kafka_tls_dir() -> Path:
    return kafka_dir() / "tls"


def kafka_lib() -> Path:
    """The broker's jars, resolved once by Maven into the user cache and reused after."""
    lib = CACHE / f"kafka-{KAFKA_VERSION}" / "lib"
    marker = lib / ".complete"
    if marker.exists():
        return lib
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError("mvn not found: install Maven (make deps does)")
    lib.mkdir(parents=True, exist_ok=True)
    log = CACHE / f"kafka-{KAFKA_VERSION}" / "mvn.log"
    _run(
        [mvn, "-B", "-q", "-f", str(HERE / "kafka" / "pom.xml"), "dependency:copy-dependencies",
         f"-Dkafka.version={KAFKA_VERSION}", f"-DoutputDirectory={lib}", "-DincludeScope=runtime"],
        log,
    )
    marker.write_text(KAFKA_VERSION)
    return lib


def kafka_topic_defaults(replicas: int, min_isr: int) -> str:
    """Broker settings shared by the single node and the cluster (deploy/local/cluster.py): the
    replication of internal topics follows the number of brokers, the rest is the same."""
    return f"""num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=4
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
log.retention.hours=48
log.cleaner.backoff.ms=1000
transaction.abort.timed.out.transaction.cleanup.interval.ms=5000
"""


def _kafka_properties(d: Path, ports: Ports) -> str:
    addresses = {"PLAINTEXT": ports.kafka, **{n: ports.extra[x.port] for n, x in KAFKA_LISTENERS.items()}}
    listeners = ",".join(f"{n}://127.0.0.1:{p}" for n, p in addresses.items())
    protocols = ",".join(f"{n}:{KAFKA_LISTENERS[n].protocol if n in KAFKA_LISTENERS else n}" for n in addresses)
    tls = kafka_tls_dir()
    jaas = []
    for listener in ("sasl_plaintext", "sasl_ssl"):
        jaas.append(f"listener.name.{listener}.plain.sasl.jaas.config="
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    f'user_{KAFKA_SASL_USER}="{KAFKA_SASL_PASSWORD}";')
        for mechanism in ("scram-sha-256", "scram-sha-512"):
            jaas.append(f"listener.name.{listener}.{mechanism}.sasl.jaas.config="
                        "org.apache.kafka.common.security.scram.ScramLoginModule required;")
    jaas_lines = "\n".join(jaas + _kafka_mtls_properties(tls) + _kafka_oauth_properties(ports))
    return f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{ports.kafka_controller}
listeners={listeners},CONTROLLER://127.0.0.1:{ports.kafka_controller}
advertised.listeners={listeners}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map={protocols},CONTROLLER:PLAINTEXT
ssl.keystore.type=PKCS12
ssl.keystore.location={tls}/server.p12
ssl.keystore.password={TLS_STORE_PASSWORD}
ssl.key.password={TLS_STORE_PASSWORD}
ssl.client.auth=none
sasl.enabled.mechanisms={",".join(SASL_MECHANISMS)}
{jaas_lines}
log.dirs={d}/data
{kafka_topic_defaults(replicas=1, min_isr=1)}"""


_LOG4J = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.kafka.additivity = false
logger.kafka.appenderRef.file.ref = file
"""


def _kafka_mtls_properties(tls: Path) -> list[str]:
    """MTLS: the SSL listener's certificate, and a client's checked against the local CA."""
    return ["listener.name.mtls.ssl.client.auth=required",
            "listener.name.mtls.ssl.truststore.type=PEM",
            f"listener.name.mtls.ssl.truststore.location={tls}/ca.crt"]


def _kafka_oauth_properties(ports: Ports) -> list[str]:
    """OAUTHBEARER twice: with Kafka's default validator, which checks an unsigned JWT's claims and
    nothing else (development only), and with the JWKS-checking one a production cluster uses.

    The broker's own JAAS line names a subject because its login module logs in at start even
    where it never acts as a client (the unsecured login handler needs a ``sub``).

    A trap of Kafka 4.1 (caught by tests/integration/test_kafka_auth.py): the
    ``OAuthBearerValidatorCallbackHandler`` builds its default ``DefaultJwtValidator`` without a key
    resolver, and that then picks the *client's* validator, which checks expiry but not the
    signature, the audience or the issuer, whatever the JWKS URL. So ``BrokerJwtValidator`` is
    named, under the listener's prefix only: the handler reads that setting without the mechanism's.
    """
    login = ("org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
             'unsecuredLoginStringClaim_sub="broker";')
    validated = "listener.name.oauth"
    return [
        "listener.name.oauth_unsecured.sasl.enabled.mechanisms=OAUTHBEARER",
        f"listener.name.oauth_unsecured.oauthbearer.sasl.jaas.config={login}",
        f"{validated}.sasl.enabled.mechanisms=OAUTHBEARER",
        f"{validated}.oauthbearer.sasl.jaas.config={login}",
        f"{validated}.oauthbearer.sasl.server.callback.handler.class="
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
        f"{validated}.sasl.oauthbearer.jwt.validator.class="
        "org.apache.kafka.common.security.oauthbearer.BrokerJwtValidator",
        f"{validated}.sasl.oauthbearer.jwks.endpoint.url={_oauth_urls(ports)['jwks']}",
        f"{validated}.sasl.oauthbearer.expected.audience={OAUTH_AUDIENCE}",
        f"{validated}.sasl.oauthbearer.expected.issuer={OAUTH_ISSUER}",
    ]


def _choose_extra(ports: Ports, name: str, owner_alive: bool) -> int:
    current = ports.extra.get(name)
    if current and (owner_alive or _port_free(current)):
        return int(current)
    ports.extra[name] = port = _free_port()
    return port


def _kafka_layout_current(d: Path) -> bool:
    marker = d / "data.layout"
    return (d / "data" / "meta.properties").exists() and marker.exists() and marker.read_text() == KAFKA_LAYOUT


def _kafka_listening(ports: Ports) -> bool:
    return _port_open(ports.kafka) and all(_port_open(ports.extra[x.port]) for x in KAFKA_LISTENERS.values())


def kafka_up(ports: Ports) -> None:
    d = kafka_dir()
    pidfile = d / "kafka.pid"
    alive = _pid_alive(pidfile) is not None
    current = _kafka_layout_current(d)
    _choose(ports, "kafka", alive)
    _choose(ports, "kafka_controller", alive)
    for listener in KAFKA_LISTENERS.values():
        _choose_extra(ports, listener.port, alive and current)
    d.mkdir(parents=True, exist_ok=True)
    password_file = d / "sasl-password"  # for trying SASL by hand: WPCDC_KAFKA_SASL_PASSWORD_FILE
    password_file.write_text(KAFKA_SASL_PASSWORD)
    password_file.chmod(0o600)
    make_client_cert(make_tls(kafka_tls_dir(), "Kafka"), KAFKA_CLIENT_SUBJECT)
    oauth_up(ports)  # before the broker, which fetches its JWKS at start
    props = d / "server.properties"
    properties = _kafka_properties(d, ports)
    if alive and current and _kafka_listening(ports) and props.exists() and props.read_text() == properties:
        return
    if alive:  # started by an older stack.py (other listeners, another OAuth port): restart
        _stop_pid(pidfile, timeout=60)
    lib = kafka_lib()
    props.write_text(properties)
    log = d / "server.log"
    (d / "log4j2.properties").write_text(_LOG4J.format(log=log))
    java = shutil.which("java")
    if not java:
        raise StackError("java not found: install a Java 17 runtime (make deps does)")
    # Kafka 4 fetches OAuth URLs only from an allow-list given as a system property (CVE-2025-27817).
    allowed = ",".join(_oauth_urls(ports)[k] for k in ("jwks", "token", "token_tls"))
    base = [java, "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={allowed}",
            f"-Dlog4j2.configurationFile={d / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={d}", "-cp", f"{lib}/*"]
    if not current:
        shutil.rmtree(d / "data", ignore_errors=True)
        (d / "data.layout").unlink(missing_ok=True)
        cluster_id = uuid.uuid4().bytes
        import base64

        cid = base64.urlsafe_b64encode(cluster_id).decode().rstrip("=")
        scram = [f"--add-scram={m}=[name={KAFKA_SASL_USER},password={KAFKA_SASL_PASSWORD}]"
                 for m in SASL_MECHANISMS if m.startswith("SCRAM")]
        _run(base + ["kafka.tools.StorageTool", "format", f"--cluster-id={cid}", "-c", str(props), *scram],
             d / "format.log")
        (d / "data.layout").write_text(KAFKA_LAYOUT)
    with open(d / "kafka.stdout", "ab") as out:
        proc = subprocess.Popen(base + ["kafka.Kafka", str(props)], stdout=out, stderr=out,
                                start_new_session=True)
    pidfile.write_text(str(proc.pid))
    _wait(lambda: _kafka_listening(ports) or proc.poll() is not None, "Kafka", log, timeout=120)
    if proc.poll() is not None:
        raise StackError(f"Kafka exited with {proc.returncode}; see {d / 'kafka.stdout'} and {log}")


def kafka_down() -> None:
    _stop_pid(kafka_dir() / "kafka.pid", timeout=60)
    oauth_down()


def kafka_security(ports: Ports | None = None) -> dict[str, str]:
    """Where the TLS, SASL and OAuth listeners are and how to log in (for tests and the docs' examples)."""
    ports = ports or _load_ports()
    tls, oauth = kafka_tls_dir(), oauth_dir()
    urls = _oauth_urls(ports)
    return {
        "ssl": f"127.0.0.1:{ports.extra['kafka_ssl']}",
        "sasl_plaintext": f"127.0.0.1:{ports.extra['kafka_sasl']}",
        "sasl_ssl": f"127.0.0.1:{ports.extra['kafka_sasl_ssl']}",
        "ca": str(tls / "ca.crt"),
        "user": KAFKA_SASL_USER,
        "password": KAFKA_SASL_PASSWORD,
        "password_file": str(kafka_dir() / "sasl-password"),
        "mtls": f"127.0.0.1:{ports.extra['kafka_mtls']}",
        "client_cert": str(tls / "client.crt"),
        "client_key": str(tls / "client.key"),
        "oauth_unsecured": f"127.0.0.1:{ports.extra['kafka_oauth_unsecured']}",
        "oauth": f"127.0.0.1:{ports.extra['kafka_oauth']}",
        "oauth_token_url": urls["token"],
        "oauth_token_url_tls": urls["token_tls"],  # the same endpoint over HTTPS; trust "ca"
        "oauth_jwks_url": urls["jwks"],
        "oauth_client_id": OAUTH_CLIENT_ID,
        "oauth_client_secret": OAUTH_CLIENT_SECRET,
        "oauth_client_secret_file": str(oauth / "client-secret"),
        "oauth_audience": OAUTH_AUDIENCE,
        "oauth_issuer": OAUTH_ISSUER,
        "oauth_signing_key": str(oauth / "signing.key"),  # to mint tokens the broker must refuse
    }


# The loopback OAuth server (deploy/local/oauth.py) the OAUTH listener trusts. It runs under the
# python running this script (it needs only the standard library and openssl).


def oauth_dir() -> Path:
    return kafka_dir() / "oauth"


def _oauth_urls(ports: Ports) -> dict[str, str]:
    http, https = ports.extra.get("oauth"), ports.extra.get("oauth_tls")
    return {"jwks": f"http://127.0.0.1:{http}/jwks.json", "token": f"http://127.0.0.1:{http}/token",
            "token_tls": f"https://127.0.0.1:{https}/token"}


def oauth_up(ports: Ports) -> None:
    d = oauth_dir()
    pidfile = d / "oauth.pid"
    alive = _pid_alive(pidfile) is not None
    port = _choose_extra(ports, "oauth", alive)
    tls_port = _choose_extra(ports, "oauth_tls", alive)
    if alive and _port_open(port) and _port_open(tls_port):
        return
    if alive:
        oauth_down()
    d.mkdir(parents=True, exist_ok=True)
    secret_file = d / "client-secret"
    secret_file.write_text(OAUTH_CLIENT_SECRET)
    secret_file.chmod(0o600)
    tls = kafka_tls_dir()
    config = d / "config.json"
    config.write_text(json.dumps({
        "port": port, "tls_port": tls_port, "cert": str(tls / "server.crt"), "cert_key": str(tls / "server.key"),
        "signing_key": str(d / "signing.key"), "issuer": OAUTH_ISSUER, "audience": OAUTH_AUDIENCE,
        "scope": "kafka", "lifetime": 3600, "clients": {OAUTH_CLIENT_ID: OAUTH_CLIENT_SECRET},
    }, indent=2))
    config.chmod(0o600)
    log = d / "oauth.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, str(HERE / "oauth.py"), "serve", str(config)],
                                stdout=out, stderr=out, start_new_session=True)
    pidfile.write_text(str(proc.pid))
    _wait(lambda: (_port_open(port) and _port_open(tls_port)) or proc.poll() is not None, "OAuth server", log,
          timeout=30)
    if proc.poll() is not None:
        raise StackError(f"the OAuth server exited with {proc.returncode}; see {log}")


def oauth_down() -> None:
    _stop_pid(oauth_dir() / "oauth.pid", timeout=10)


# ------------------------------------------------------------------------------------- WordPress


def wordpress_up(ports: Ports) -> None:
    """Install WordPress (single site and a multisite network) through PHP CLI, once."""
    from wordpress import install  # deploy/local/wordpress.py

    install(STATE / "wordpress", ports.mysql)


# The headless site served over HTTP (examples/nextjs renders from its REST API): PHP's built-in
# server on loopback, with several workers, deploy/local/wp/router.php in front of WordPress.

WORDPRESS_HTTP_WORKERS = 4


def wordpress_http_dir() -> Path:
    return STATE / "wordpress-http"


def wordpress_http_url(ports: Ports | None = None) -> str:
    """The headless site's home: where its pages and /wp-json/ answer."""
    ports = ports or _load_ports()
    return f"http://127.0.0.1:{ports.extra.get('wordpress_http')}"


def wordpress_http_up(ports: Ports) -> None:
    """Install the headless site (database ``wpheadless``) and serve it on 127.0.0.1 (idempotent)."""
    from wordpress import ABSPATH, ROUTER, install_headless

    d = wordpress_http_dir()
    d.mkdir(parents=True, exist_ok=True)
    pidfile = d / "php.pid"
    alive = _pid_alive(pidfile) is not None
    port = _choose_extra(ports, "wordpress_http", alive)
    _save_ports(ports)
    config = install_headless(STATE / "wordpress", ports.mysql, port)
    php = shutil.which("php")
    if not php:
        raise StackError("php not found: install Debian's php-cli and php-mysql (make deps does)")
    # The built-in server is not the "cli" SAPI: opcache.enable (not enable_cli) turns its shared
    # memory cache on, which the forked workers share.
    cmd = [php, "-d", "memory_limit=512M", "-d", "opcache.enable=1", "-d", "opcache.validate_timestamps=1",
           "-d", "display_errors=stderr",
           "-S", f"127.0.0.1:{port}", "-t", str(ABSPATH), str(ROUTER)]
    # A server started with another command (another checkout's router.php, other settings) is
    # restarted; the same one is kept.
    started = d / "php.cmd"
    if alive and _port_open(port) and started.exists() and started.read_text() == json.dumps([cmd, str(config)]):
        return
    if alive:
        wordpress_http_down()
    log = d / "php.log"
    env = {**os.environ, "WPCDC_WP_CONFIG": str(config), "PHP_CLI_SERVER_WORKERS": str(WORDPRESS_HTTP_WORKERS)}
    started.write_text(json.dumps([cmd, str(config)]))
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=env, cwd=config.parent, start_new_session=True)
    pidfile.write_text(str(proc.pid))
    _wait(lambda: _port_open(port) or proc.poll() is not None, "WordPress over HTTP", log, timeout=30)
    if proc.poll() is not None:
        raise StackError(f"php -S exited with {proc.returncode}; see {log}")


def wordpress_http_down() -> None:
    """Stop the built-in server; its workers are in its process group and go with it."""
    pidfile = wordpress_http_dir() / "php.pid"
    pid = _pid_alive(pidfile)
    if pid is not None:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    _stop_pid(pidfile, timeout=10)


# ------------------------------------------------------------------------------------------ CLI


def up(services: list[str] | None = None) -> Ports:
    services = services or ["mariadb", "kafka", "wordpress", "wordpress-http"]
    STATE.mkdir(parents=True, exist_ok=True)
    ports = _load_ports()
    if "mariadb" in services or "wordpress" in services or "wordpress-http" in services:
        mariadb_up(ports)
        _save_ports(ports)
    if "kafka" in services:
        kafka_up(ports)
        _save_ports(ports)
    if "wordpress" in services:
        wordpress_up(ports)
    if "wordpress-http" in services:
        wordpress_http_up(ports)
        _save_ports(ports)
    if "cluster" in services:  # only when asked: three more JVMs (deploy/local/cluster.py)
        from cluster import cluster_up

        cluster_up()
    return ports


def _search_solr_down() -> None:
    """The search recipe's Solr (examples/search/solr.py), when a test or demo left it up."""
    import importlib.util

    path = REPO / "examples" / "search" / "solr.py"
    spec = importlib.util.spec_from_file_location("search_solr", path) if path.exists() else None
    if spec and spec.loader:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.down()


def down() -> None:
    import postgres  # the recipes' PostgreSQL (deploy/local/postgres.py), when a test or demo left it up
    from cluster import cluster_down

    cluster_down()
    postgres.down()
    _search_solr_down()
    wordpress_http_down()
    kafka_down()
    mariadb_down()


def env(ports: Ports | None = None) -> dict[str, str]:
    """The environment a wpcdc process needs to talk to this stack."""
    ports = ports or _load_ports()
    return {
        "WPCDC_MYSQL_HOST": "127.0.0.1",
        "WPCDC_MYSQL_PORT": str(ports.mysql),
        "WPCDC_MYSQL_USER": CDC_USER,
        "WPCDC_MYSQL_PASSWORD": CDC_PASSWORD,
        "WPCDC_MYSQL_DATABASE": WP_DATABASE,
        "WPCDC_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports.kafka}",
    }


def status() -> dict[str, object]:
    import cluster

    ports = _load_ports()
    return {
        "state_dir": str(STATE),
        "mariadb": {"port": ports.mysql, "up": bool(ports.mysql) and _port_open(ports.mysql),
                    "log": str(mariadb_dir() / "mysqld.log"), "tls_ca": str(mariadb_tls_dir() / "ca.crt"),
                    "x509_user": CDC_X509_USER, "client_cert": str(mariadb_tls_dir() / "client.crt")},
        "kafka": {"port": ports.kafka, "up": bool(ports.kafka) and _port_open(ports.kafka),
                  "log": str(kafka_dir() / "server.log"),
                  **{f"{x.port}_port": ports.extra.get(x.port) for x in KAFKA_LISTENERS.values()},
                  "tls_ca": str(kafka_tls_dir() / "ca.crt"),
                  "client_cert": str(kafka_tls_dir() / "client.crt")},
        "oauth": {"up": _pid_alive(oauth_dir() / "oauth.pid") is not None,
                  "token_url": _oauth_urls(ports)["token"], "token_url_tls": _oauth_urls(ports)["token_tls"],
                  "jwks_url": _oauth_urls(ports)["jwks"], "log": str(oauth_dir() / "oauth.log")},
        "wordpress": {"root": str(STATE / "wordpress")},
        "wordpress_http": {"port": ports.extra.get("wordpress_http"), "url": wordpress_http_url(ports),
                           "up": _pid_alive(wordpress_http_dir() / "php.pid") is not None,
                           "database": "wpheadless", "log": str(wordpress_http_dir() / "php.log")},
        **({"kafka_cluster": cluster.status()} if cluster.cluster_dir().exists() else {}),
    }


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    cmd = argv[1] if len(argv) > 1 else "status"
    try:
        if cmd == "up":
            up(argv[2:] or None)
            print(json.dumps(status(), indent=2))
        elif cmd == "down":
            down()
        elif cmd == "status":
            print(json.dumps(status(), indent=2))
        elif cmd == "env":
            for k, v in env().items():
                print(f"export {k}={v}")
        else:
            print(__doc__)
            return 2
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.modules.setdefault("stack", sys.modules[__name__])  # cluster.py's `import stack` is this module
    sys.exit(main(sys.argv))
