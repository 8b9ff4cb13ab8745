"""Client certificates and OAuth tokens against the real servers: the local stack's MTLS, OAUTH_UNSECURED
and OAUTH listeners (deploy/local/stack.py), its OAuth server (deploy/local/oauth.py) and MariaDB's
REQUIRE X509 user, with aiokafka and PyMySQL directly (and cdc.oauth's token provider); the connector's own
options are tested through `wpcdc` in tests/integration/test_auth_options.py.

A refused login must be refused for the reason the test means, not because something else broke:
each refusal is matched to the broker's own account of it in its log. That matters with aiokafka
and OAUTHBEARER in particular: aiokafka does not read the broker's error challenge (RFC 7628 3.2.2),
so it believes it is logged in and only sees the connection close at its next request.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from cdc.oauth import ClientCredentialsTokenProvider, TokenError
from tests.integration.harness import wait_until

import oauth
import stack as local_stack

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------------------------ helpers


class StaticToken(AbstractTokenProvider):
    """A token provider that always answers the same token (what a test hands the broker)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token


class BrokerLog:
    """The broker's log from a mark on: where it says why it refused a login."""

    def __init__(self) -> None:
        self.path = local_stack.kafka_dir() / "server.log"
        self.mark = self.path.stat().st_size

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        def check() -> str | None:
            with open(self.path, "rb") as f:
                f.seek(self.mark)
                tail = f.read().decode(errors="replace")
            return tail if text in tail else None

        return wait_until(check, timeout, 0.2, f"the broker's log to say {text!r}")


@pytest.fixture(scope="module")
def sec(stack: local_stack.Ports) -> dict[str, str]:
    return local_stack.kafka_security(stack)


@pytest.fixture(scope="module")
def topic(stack: local_stack.Ports) -> Iterator[str]:
    """One topic for the module, made over PLAINTEXT: what is under test is the login, not the admin."""
    name = f"auth_{uuid.uuid4().hex[:10]}"

    async def admin(action: str) -> None:
        client = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{stack.kafka}", request_timeout_ms=30_000)
        await client.start()
        try:
            if action == "create":
                await client.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
            else:
                await client.delete_topics([name])
        finally:
            await client.close()

    asyncio.run(admin("create"))
    yield name
    asyncio.run(admin("delete"))


async def roundtrip(bootstrap: str, topic: str, timeout: float = 30.0, **security: Any) -> None:
    """Produce a record through the listener and read it back through the same listener."""
    value = uuid.uuid4().hex.encode()
    common = {"bootstrap_servers": bootstrap, "request_timeout_ms": 10_000, **security}
    async with asyncio.timeout(timeout):
        producer = AIOKafkaProducer(**common)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, group_id=None, auto_offset_reset="earliest",
                                    enable_auto_commit=False, **common)
        await consumer.start()
        try:
            while (await consumer.getone()).value != value:
                pass
        finally:
            await consumer.stop()


async def refused(bootstrap: str, topic: str, reason: str, **security: Any) -> str:
    """The round trip fails, and the broker's log says ``reason``; returns that log."""
    log = BrokerLog()
    with pytest.raises((KafkaError, TimeoutError)):
        await roundtrip(bootstrap, topic, timeout=20.0, request_timeout_ms=3000, **security)
    return log.wait_for(reason)


def failed_login(address: str) -> str:
    """How the broker logs a refused login on the listener at ``address`` (the channel id names its port)."""
    return f"Failed authentication with /127.0.0.1 (channelId={address}-"


def oauth_security(provider: AbstractTokenProvider) -> dict[str, Any]:
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER",
            "sasl_oauth_token_provider": provider}


def tls_probe(address: str, context: ssl.SSLContext) -> str:
    """Send ApiVersions over raw TLS: ``"answered"``, or how the TLS session ended.

    With TLS 1.3 a client finishes its handshake before the server has looked at its certificate;
    a refusal arrives as an alert at the first read, which is what this reads.
    """
    host, port = address.rsplit(":", 1)
    request = struct.pack(">hhih", 18, 0, 7, -1)  # ApiVersions v0, correlation id 7, no client id
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                tls.sendall(struct.pack(">i", len(request)) + request)
                head = tls.recv(8)
        except ssl.SSLError as exc:
            return f"refused: {exc.reason}"
        except ConnectionError as exc:
            return f"refused: {exc!r}"
    if len(head) == 8 and struct.unpack(">ii", head)[1] == 7:
        return "answered"
    return f"refused: closed ({head!r})"


# ------------------------------------------------------------------------------- mutual TLS


def mtls_context(sec: dict[str, str], cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    return create_ssl_context(cafile=sec["ca"], certfile=cert, keyfile=key)


async def test_mtls_listener_takes_a_client_certificate_from_the_local_ca(sec: dict[str, str], topic: str) -> None:
    context = mtls_context(sec, sec["client_cert"], sec["client_key"])
    assert tls_probe(sec["mtls"], context) == "answered"
    await roundtrip(sec["mtls"], topic, security_protocol="SSL", ssl_context=context)


@pytest.mark.parametrize("client", ["no certificate", "another CA's certificate"])
async def test_mtls_listener_refuses_other_clients(sec: dict[str, str], topic: str, client: str) -> None:
    if client == "no certificate":
        context = mtls_context(sec)
    else:  # MariaDB's client certificate: well-formed, but from a CA this listener does not trust
        maria = local_stack.mariadb_security()
        context = mtls_context(sec, maria["client_cert"], maria["client_key"])
    log = BrokerLog()
    assert tls_probe(sec["mtls"], context).startswith("refused")
    assert "(SSL handshake failed)" in log.wait_for(failed_login(sec["mtls"]))
    await refused(sec["mtls"], topic, failed_login(sec["mtls"]), security_protocol="SSL", ssl_context=context)
    # The plain SSL listener asks for no certificate: the same client gets in there.
    assert tls_probe(sec["ssl"], context) == "answered"


# --------------------------------------------------------------------- OAUTHBEARER, unsecured


async def test_unsecured_oauth_listener_takes_an_unsigned_jwt(sec: dict[str, str], topic: str) -> None:
    token = oauth.unsecured_jwt("wpcdc")
    await roundtrip(sec["oauth_unsecured"], topic, **oauth_security(StaticToken(token)))


async def test_unsecured_oauth_listener_still_checks_expiry(sec: dict[str, str], topic: str) -> None:
    token = oauth.unsecured_jwt("wpcdc", lifetime=60, now=time.time() - 3600)
    # This validator gives its reason only at DEBUG: the refusal is this listener's, and the test
    # above, with the same kind of token made an hour later, is the control.
    await refused(sec["oauth_unsecured"], topic, failed_login(sec["oauth_unsecured"]),
                  **oauth_security(StaticToken(token)))


# --------------------------------------------------------------------- OAUTHBEARER, validated


@pytest.mark.parametrize("endpoint,client_auth", [("oauth_token_url_tls", "basic"), ("oauth_token_url", "post")])
async def test_oauth_listener_takes_a_token_from_the_token_endpoint(
        sec: dict[str, str], topic: str, endpoint: str, client_auth: str) -> None:
    provider = ClientCredentialsTokenProvider(
        sec[endpoint], sec["oauth_client_id"], sec["oauth_client_secret"], scope="kafka",
        ca_file=sec["ca"] if endpoint.endswith("tls") else None, client_auth=client_auth)  # type: ignore[arg-type]
    await roundtrip(sec["oauth"], topic, **oauth_security(provider))
    claims = oauth.decode_jwt(await provider.token())[1]
    assert claims["aud"] == sec["oauth_audience"] and claims["iss"] == sec["oauth_issuer"]


def _claims(sec: dict[str, str], **changes: Any) -> dict[str, Any]:
    claims = oauth.access_token_claims(issuer=sec["oauth_issuer"], subject=sec["oauth_client_id"],
                                       audience=sec["oauth_audience"], scope="kafka", lifetime=3600,
                                       now=time.time())
    return {**claims, **changes}


async def test_oauth_listener_takes_a_token_minted_with_the_signing_key(sec: dict[str, str], topic: str) -> None:
    """The control for the refusals below: the same way of minting, with nothing wrong."""
    key = oauth.RsaKey(Path(sec["oauth_signing_key"]))
    await roundtrip(sec["oauth"], topic, **oauth_security(StaticToken(key.jwt(_claims(sec)))))


@pytest.mark.parametrize("case,reason", [
    ("another key", "invalid signature"),
    ("expired", "is on or after the Expiration Time"),
    ("another issuer", "Issuer (iss) claim value (someone-else) doesn't match"),
    ("unsigned", "Malformed JWT provided; expected three sections"),
])
async def test_oauth_listener_refuses_bad_tokens(sec: dict[str, str], topic: str, tmp_path: Path,
                                                 case: str, reason: str) -> None:
    key = oauth.RsaKey(Path(sec["oauth_signing_key"]))
    if case == "another key":  # claiming the real key's id, as a forger would
        token = oauth.RsaKey.create(tmp_path / "other.key").jwt(_claims(sec), kid=key.kid)
    elif case == "expired":  # beyond the broker's 30 s of allowed clock skew
        token = key.jwt(_claims(sec, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600))
    elif case == "another issuer":
        token = key.jwt(_claims(sec, iss="someone-else"))
    else:
        token = oauth.unsecured_jwt(sec["oauth_client_id"], aud=sec["oauth_audience"], iss=sec["oauth_issuer"])
    await refused(sec["oauth"], topic, reason, **oauth_security(StaticToken(token)))


async def test_oauth_listener_refuses_a_token_for_another_audience(sec: dict[str, str], topic: str) -> None:
    """Asked for through the token endpoint, as a client configured for another cluster would."""
    provider = ClientCredentialsTokenProvider(sec["oauth_token_url"], sec["oauth_client_id"],
                                              sec["oauth_client_secret"], audience="another-cluster")
    assert oauth.decode_jwt(await provider.token())[1]["aud"] == "another-cluster"
    await refused(sec["oauth"], topic, "Audience (aud) claim [another-cluster] doesn't contain an acceptable",
                  **oauth_security(provider))


async def test_token_endpoint_refuses_a_wrong_secret_without_echoing_it(sec: dict[str, str]) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    provider = ClientCredentialsTokenProvider(sec["oauth_token_url_tls"], sec["oauth_client_id"], wrong,
                                              ca_file=sec["ca"])
    with pytest.raises(TokenError, match="HTTP 401 invalid_client") as exc:
        await provider.token()
    assert wrong not in str(exc.value)


async def test_token_endpoint_over_https_needs_its_ca(sec: dict[str, str]) -> None:
    provider = ClientCredentialsTokenProvider(sec["oauth_token_url_tls"], sec["oauth_client_id"],
                                              sec["oauth_client_secret"])
    with pytest.raises(TokenError, match="CERTIFICATE_VERIFY_FAILED"):
        await provider.token()


# ------------------------------------------------------------------------ MariaDB REQUIRE X509


def _mysql(maria: dict[str, str], **ssl_files: str) -> pymysql.connections.Connection:
    return pymysql.connect(host=maria["host"], port=int(maria["port"]), user=maria["x509_user"],
                           password=maria["x509_password"], connect_timeout=10,
                           **{f"ssl_{k}": v for k, v in ssl_files.items()})


def test_mariadb_x509_user_logs_in_with_its_client_certificate(stack: local_stack.Ports) -> None:
    maria = local_stack.mariadb_security(stack)
    conn = _mysql(maria, ca=maria["ca"], cert=maria["client_cert"], key=maria["client_key"])
    with conn, conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        assert cur.fetchone()[1].startswith("TLS")
        cur.execute("SHOW GRANTS")
        grants = " ".join(row[0] for row in cur.fetchall())
    assert "REPLICATION SLAVE" in grants and "BINLOG MONITOR" in grants and "REQUIRE X509" in grants


@pytest.mark.parametrize("client", ["no TLS", "TLS without a certificate", "another CA's certificate"])
def test_mariadb_x509_user_is_refused_without_its_certificate(stack: local_stack.Ports, client: str) -> None:
    maria = local_stack.mariadb_security(stack)
    files = {"no TLS": {}, "TLS without a certificate": {"ca": maria["ca"]},
             "another CA's certificate": {"ca": maria["ca"], "cert": local_stack.kafka_security()["client_cert"],
                                          "key": local_stack.kafka_security()["client_key"]}}[client]
    with pytest.raises(pymysql.err.OperationalError) as exc:
        _mysql(maria, **files).close()
    if client != "another CA's certificate":  # that one ends in the TLS handshake, before any login
        assert exc.value.args[0] == 1045, exc.value
