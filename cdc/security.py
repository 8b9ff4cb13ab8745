"""The checks that tie security options together: TLS files readable and usable, client
certificates with their keys, SASL complete, one source of OAUTHBEARER tokens.

Run by :func:`cdc.config.validate` before anything connects, so a wrong combination is exit 2
naming the options, not a handshake failure later. Messages name options and files, never a
password or a secret.
"""

from __future__ import annotations

import ssl
import urllib.parse
from typing import TYPE_CHECKING

from cdc import kafka_options
from cdc.errors import ConfigError

if TYPE_CHECKING:
    from cdc.config import KafkaSettings, MysqlSettings, OAuthSettings

SASL_MECHANISMS = "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"
LOOPBACK = ("127.0.0.1", "::1", "localhost")  # where a token endpoint may be plain http (a sidecar)


def _readable(option: str, path: str | None) -> None:
    if path is None:
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot read it ({exc.strerror})") from None


def validate(mysql: MysqlSettings, kafka: KafkaSettings) -> None:
    """TLS files readable and usable, SASL complete; messages name options, never a password."""
    _validate_mysql_tls(mysql)
    _validate_kafka_tls(kafka)
    _validate_sasl(kafka)
    kafka_options.check(kafka.options)
    if not kafka_options.hostname_check(kafka.options) and not kafka.tls:
        raise ConfigError("--kafka-option ssl.endpoint.identification.algorithm is for TLS, but "
                          f"--kafka-security-protocol is {kafka.security_protocol}")


def _validate_mysql_tls(mysql: MysqlSettings) -> None:
    for option, path in (("--mysql-ssl-ca", mysql.ssl_ca), ("--mysql-ssl-cert", mysql.ssl_cert),
                         ("--mysql-ssl-key", mysql.ssl_key)):
        _readable(option, path)
    _pair("--mysql-ssl-cert", mysql.ssl_cert, "--mysql-ssl-key", mysql.ssl_key)
    if mysql.ssl_cert and not mysql.ssl_ca:
        raise ConfigError("--mysql-ssl-cert needs --mysql-ssl-ca: the certificate proves who wpcdc is, the CA "
                          "who the server is (a public CA's server: give the system bundle, e.g. "
                          "/etc/ssl/certs/ca-certificates.crt)")
    if mysql.ssl_cert and mysql.ssl_key:
        _load_cert_chain("--mysql-ssl-cert", mysql.ssl_cert, "--mysql-ssl-key", mysql.ssl_key, None)


def _validate_kafka_tls(kafka: KafkaSettings) -> None:
    for option, path in (("--kafka-ssl-ca", kafka.ssl_cafile), ("--kafka-ssl-cert", kafka.ssl_certfile),
                         ("--kafka-ssl-key", kafka.ssl_keyfile)):
        _readable(option, path)
    _pair("--kafka-ssl-cert", kafka.ssl_certfile, "--kafka-ssl-key", kafka.ssl_keyfile)
    if kafka.ssl_key_password and not kafka.ssl_keyfile:
        raise ConfigError("--kafka-ssl-key-password-file is set but --kafka-ssl-key is not")
    for option, value in (("--kafka-ssl-ca", kafka.ssl_cafile), ("--kafka-ssl-cert", kafka.ssl_certfile)):
        if value and not kafka.tls:
            raise ConfigError(f"{option} is set but --kafka-security-protocol is {kafka.security_protocol}: "
                              "use SSL or SASL_SSL to connect over TLS")
    if kafka.ssl_certfile and kafka.ssl_keyfile:
        _load_cert_chain("--kafka-ssl-cert", kafka.ssl_certfile, "--kafka-ssl-key", kafka.ssl_keyfile,
                         kafka.ssl_key_password)


def _pair(cert_option: str, cert: str | None, key_option: str, key: str | None) -> None:
    if bool(cert) != bool(key):
        given, missing = (cert_option, key_option) if cert else (key_option, cert_option)
        raise ConfigError(f"{given} needs {missing}: a client certificate and its private key go together")


def _load_cert_chain(cert_option: str, cert: str, key_option: str, key: str, password: str | None) -> None:
    """The certificate and key load together, now rather than at the first connection, where the
    error would be a bare OpenSSL reason far from the options that caused it."""
    try:
        ssl.create_default_context().load_cert_chain(cert, key, password=password or None)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ConfigError(f"{cert_option} {cert} with {key_option} {key}: cannot load them ({reason}): PEM files "
                          "of one certificate and its key are needed (an encrypted key also needs its password, "
                          "--kafka-ssl-key-password-file for Kafka)") from None


def _validate_sasl(kafka: KafkaSettings) -> None:
    sasl = kafka.security_protocol.startswith("SASL_")
    if sasl and not kafka.sasl_mechanism:
        raise ConfigError(f"--kafka-security-protocol {kafka.security_protocol} needs --kafka-sasl-mechanism "
                          f"({SASL_MECHANISMS})")
    if kafka.sasl_mechanism and not sasl:
        raise ConfigError(f"--kafka-sasl-mechanism {kafka.sasl_mechanism} needs --kafka-security-protocol "
                          "SASL_SSL (or SASL_PLAINTEXT on a trusted network)")
    if kafka.sasl_mechanism == "OAUTHBEARER":
        _validate_oauth(kafka.oauth)
        if kafka.sasl_username or kafka.sasl_password:
            raise ConfigError("--kafka-sasl-username and the SASL password are for PLAIN and SCRAM; OAUTHBEARER "
                              "logs in with a token (--kafka-sasl-oauth-token-endpoint or --kafka-sasl-oauth-token-file)")
        return
    if kafka.oauth.configured:
        raise ConfigError("the --kafka-sasl-oauth-* options need --kafka-sasl-mechanism OAUTHBEARER")
    if sasl and not (kafka.sasl_username and kafka.sasl_password):
        raise ConfigError("Kafka SASL needs --kafka-sasl-username and a password (WPCDC_KAFKA_SASL_PASSWORD "
                          "or --kafka-sasl-password-file)")


def _validate_oauth(oauth: OAuthSettings) -> None:
    """One source of tokens, complete, and no secret sent in clear beyond this machine."""
    if oauth.token_file and oauth.token_endpoint:
        raise ConfigError("--kafka-sasl-oauth-token-file and --kafka-sasl-oauth-token-endpoint both set: "
                          "tokens come from one of them")
    if oauth.token_file:
        _readable("--kafka-sasl-oauth-token-file", oauth.token_file)
        extra = [name for name, value in (("client-id", oauth.client_id), ("client-secret", oauth.client_secret),
                                          ("scope", oauth.scope), ("audience", oauth.audience),
                                          ("ca", oauth.ca_file)) if value]
        if extra:
            raise ConfigError(f"--kafka-sasl-oauth-{extra[0]} is for a token endpoint; with "
                              "--kafka-sasl-oauth-token-file the token is used as it is")
        return
    if not oauth.token_endpoint:
        raise ConfigError("--kafka-sasl-mechanism OAUTHBEARER needs --kafka-sasl-oauth-token-endpoint (with a "
                          "client id and secret) or --kafka-sasl-oauth-token-file")
    url = urllib.parse.urlsplit(oauth.token_endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"--kafka-sasl-oauth-token-endpoint {oauth.token_endpoint!r}: expected an https:// URL")
    if url.scheme == "http" and url.hostname not in LOOPBACK:
        raise ConfigError(f"--kafka-sasl-oauth-token-endpoint {oauth.token_endpoint}: use https; over http the "
                          "client secret would cross the network in clear")
    if not (oauth.client_id and oauth.client_secret):
        raise ConfigError("--kafka-sasl-oauth-token-endpoint needs --kafka-sasl-oauth-client-id and a secret "
                          "(WPCDC_KAFKA_SASL_OAUTH_CLIENT_SECRET or --kafka-sasl-oauth-client-secret-file)")
    _readable("--kafka-sasl-oauth-ca", oauth.ca_file)
    if oauth.ca_file and url.scheme != "https":
        raise ConfigError("--kafka-sasl-oauth-ca is for an https token endpoint")
