"""The connector's managed-cluster options against the real stack: `wpcdc check` and a short `wpcdc
stream` through the MTLS listener with a client certificate and MariaDB's REQUIRE X509 user, through
the OAUTHBEARER listeners with a token file and a token endpoint, and `--kafka-option` reaching the
producer. Each refusal is checked for its exit code (cdc/errors.py) and for a message that says what
to do, without the secret.

tests/integration/test_kafka_auth.py proves the listeners themselves with aiokafka directly.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from cdc.errors import Exit
from tests.integration.harness import Connector
from tests.integration.test_kafka_auth import BrokerLog, failed_login
from tests.integration.test_operations import cli, metered, running

import oauth
import stack as local_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sec(stack: local_stack.Ports) -> dict[str, str]:
    return local_stack.kafka_security(stack)


def streams(env: dict[str, str], wordpress, flags: list[str], title: str) -> Connector:  # type: ignore[no-untyped-def]
    """A short `wpcdc stream` with ``flags``: ready, one post published, its event in the topic, exit 0."""
    c, m = metered(env, *flags)
    with running(c):
        m.wait("/readyz", 200)
        pid = wordpress.create_post(title, status="publish")
        [event] = c.wait_events((1, pid), count=1, timeout=60)
        assert event["op"] == "create"
        assert c.stop() == 0
    return c


# --------------------------------------------------------------------- mutual TLS, Kafka and MySQL


def mtls_flags(sec: dict[str, str], *, cert: bool = True) -> list[str]:
    flags = ["--kafka-bootstrap", sec["mtls"], "--kafka-security-protocol", "SSL", "--kafka-ssl-ca", sec["ca"]]
    return flags + (["--kafka-ssl-cert", sec["client_cert"], "--kafka-ssl-key", sec["client_key"]] if cert else [])


def x509_env(cdc_env: dict[str, str], maria: dict[str, str], *, cert: bool = True) -> dict[str, str]:
    env = {**cdc_env, "WPCDC_MYSQL_USER": maria["x509_user"], "WPCDC_MYSQL_PASSWORD": maria["x509_password"],
           "WPCDC_MYSQL_SSL_CA": maria["ca"]}
    return env | ({"WPCDC_MYSQL_SSL_CERT": maria["client_cert"], "WPCDC_MYSQL_SSL_KEY": maria["client_key"]}
                  if cert else {})


def test_client_certificates_for_kafka_and_mysql(cdc_env, stack, wordpress, sec) -> None:  # type: ignore[no-untyped-def]
    """The MTLS listener and the REQUIRE X509 account, each with its client certificate."""
    env = x509_env(cdc_env, local_stack.mariadb_security(stack))
    c = streams(env, wordpress, mtls_flags(sec), "over mutual TLS")
    checked = cli(env, "check", "--name", c.name, *mtls_flags(sec))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"ok    kafka: {sec['mtls']}" in checked.stdout


def test_kafka_without_its_client_certificate(cdc_env, sec) -> None:  # type: ignore[no-untyped-def]
    log = BrokerLog()
    r = cli(cdc_env, "check", *mtls_flags(sec, cert=False))
    assert r.returncode == Exit.KAFKA, r.stdout + r.stderr
    assert "FAIL  kafka:" in r.stdout
    assert "the listener may require a client certificate (ssl.client.auth=required" in r.stdout
    assert "give --kafka-ssl-cert and --kafka-ssl-key" in r.stdout
    assert "(SSL handshake failed)" in log.wait_for(failed_login(sec["mtls"]))


def test_mysql_without_its_client_certificate(cdc_env, stack) -> None:  # type: ignore[no-untyped-def]
    maria = local_stack.mariadb_security(stack)
    r = cli(x509_env(cdc_env, maria, cert=False), "check")
    assert r.returncode == Exit.MYSQL_CONNECT, r.stdout + r.stderr
    assert f"FAIL  connect: MySQL refused the login {maria['x509_user']}@" in r.stdout
    assert "the account may REQUIRE X509 (a client certificate): give --mysql-ssl-cert and --mysql-ssl-key" in r.stdout
    assert maria["x509_password"] not in r.stdout + r.stderr


# ---------------------------------------------------------------------------------- OAUTHBEARER


def oauth_flags(address: str) -> list[str]:
    return ["--kafka-bootstrap", address, "--kafka-security-protocol", "SASL_PLAINTEXT",
            "--kafka-sasl-mechanism", "OAUTHBEARER"]


def endpoint_flags(sec: dict[str, str]) -> list[str]:
    return [*oauth_flags(sec["oauth"]), "--kafka-sasl-oauth-token-endpoint", sec["oauth_token_url_tls"],
            "--kafka-sasl-oauth-client-id", sec["oauth_client_id"], "--kafka-sasl-oauth-scope", "kafka",
            "--kafka-sasl-oauth-ca", sec["ca"]]


def test_unsecured_listener_with_a_token_file(cdc_env, wordpress, sec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    token = tmp_path / "token"
    token.write_text(oauth.unsecured_jwt("wpcdc"))
    flags = [*oauth_flags(sec["oauth_unsecured"]), "--kafka-sasl-oauth-token-file", str(token)]
    c = streams(cdc_env, wordpress, flags, "with a token file")
    token.write_text(oauth.unsecured_jwt("wpcdc"))  # rewritten, as the kubelet does: read again
    checked = cli(cdc_env, "check", "--name", c.name, *flags)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_validated_listener_with_the_token_endpoint(cdc_env, wordpress, sec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(sec["oauth_client_secret"] + "\n")
    env = {**cdc_env, "WPCDC_KAFKA_SASL_OAUTH_CLIENT_SECRET_FILE": str(secret_file)}
    c = streams(env, wordpress, endpoint_flags(sec), "with a token from the endpoint")
    assert sec["oauth_client_secret"] not in c.log()  # debug logs included
    checked = cli(env, "check", "--name", c.name, *endpoint_flags(sec))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_wrong_client_secret_names_the_endpoint_and_its_answer(cdc_env, sec) -> None:  # type: ignore[no-untyped-def]
    wrong = f"wrong-oauth-{uuid.uuid4().hex}"
    r = cli({**cdc_env, "WPCDC_KAFKA_SASL_OAUTH_CLIENT_SECRET": wrong}, "check", *endpoint_flags(sec))
    assert r.returncode == Exit.KAFKA, r.stdout + r.stderr
    assert (f"no OAUTHBEARER token to log in with: token endpoint {sec['oauth_token_url_tls']} refused client "
            f"'{sec['oauth_client_id']}': HTTP 401 invalid_client") in r.stdout
    assert wrong not in r.stdout + r.stderr


def test_a_refused_token_is_named_as_the_likely_cause(cdc_env, sec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A well-signed token for another cluster: aiokafka sees only a closed connection; wpcdc says
    the broker may have refused the token, showing the audience the broker checks."""
    key = oauth.RsaKey(Path(sec["oauth_signing_key"]))
    claims = oauth.access_token_claims(issuer=sec["oauth_issuer"], subject="wpcdc", audience="another-cluster",
                                       scope="kafka", lifetime=3600, now=time.time())
    token = tmp_path / "token"
    token.write_text(key.jwt(claims))
    log = BrokerLog()
    r = cli(cdc_env, "check", *oauth_flags(sec["oauth"]), "--kafka-sasl-oauth-token-file", str(token))
    assert r.returncode == Exit.KAFKA, r.stdout + r.stderr
    assert f"the broker may have refused the OAUTHBEARER token from token file {token}" in r.stdout
    assert "audience (aud) 'another-cluster'" in r.stdout and "expected.audience" in r.stdout
    log.wait_for("Audience (aud) claim [another-cluster] doesn't contain an acceptable")
    # status exits through the CLI's error path: the same sentence follows its message.
    status = cli(cdc_env, "status", *oauth_flags(sec["oauth"]), "--kafka-sasl-oauth-token-file", str(token))
    assert status.returncode == Exit.SINK, status.stdout + status.stderr
    assert "may have refused the OAUTHBEARER token" in status.stderr


# -------------------------------------------------------------------------------- --kafka-option


def test_a_kafka_option_reaches_the_producer(cdc_env, stack) -> None:  # type: ignore[no-untyped-def]
    """transaction.timeout.ms is sent by the producer alone (InitProducerId): the broker refuses
    one above its transaction.max.timeout.ms (15 minutes), and takes the same command's 60 s."""
    name = f"opt-{uuid.uuid4().hex[:8]}"
    too_long = cli(cdc_env, "offsets", "reset", "--name", name, "--kafka-option", "transaction.timeout.ms=3600000",
                   "--kafka-option", "client.id=wpcdc-option-test")
    assert too_long.returncode == Exit.SINK, too_long.stdout + too_long.stderr
    assert "InvalidTransactionTimeout" in too_long.stderr
    fits = cli(cdc_env, "offsets", "reset", "--name", name, "--kafka-option", "transaction.timeout.ms=60000")
    assert fits.returncode == 0, fits.stdout + fits.stderr
    unknown = cli(cdc_env, "check", "--kafka-option", "request.timeout=5000")
    assert unknown.returncode == Exit.CONFIG
    assert "unknown Kafka client property (did you mean request.timeout.ms?)" in unknown.stderr
