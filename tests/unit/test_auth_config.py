"""Managed-cluster settings as ``wpcdc`` builds them: client certificates (Kafka and MySQL), OAUTHBEARER
and ``--kafka-option``, from the command line, the environment and the TOML file, with every
incomplete or contradictory combination refused (exit 2) before anything connects.

Certificates are made here with openssl (which the local stack needs anyway); the logins
themselves are tested against the real servers in tests/integration/test_auth_options.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cdc import cli, logs
from cdc.config import KafkaSettings, OAuthSettings, StreamSettings, load_toml
from cdc.errors import ConfigError
from cdc.options import OPTIONS

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A self-signed certificate with its key, the key encrypted, and another key."""
    d = tmp_path_factory.mktemp("pem")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=wpcdc",
            "-keyout", str(d / "client.key"), "-out", str(d / "client.crt"))
    openssl("pkey", "-in", str(d / "client.key"), "-aes256", "-passout", "pass:key-pw-123",
            "-out", str(d / "encrypted.key"))
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(d / "other.key"))
    (d / "key-password").write_text("key-pw-123\n")
    (d / "token").write_text("header.claims.signature")
    return {"cert": str(d / "client.crt"), "ca": str(d / "client.crt"), "key": str(d / "client.key"),
            "encrypted": str(d / "encrypted.key"), "other": str(d / "other.key"),
            "password_file": str(d / "key-password"), "token": str(d / "token")}


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``run(*args, env=...)`` → (click result, the settings `wpcdc check` built, or None)."""
    built: list[StreamSettings] = []
    monkeypatch.setattr(logs, "setup", lambda *a, **k: None)
    import cdc.commands.check

    monkeypatch.setattr(cdc.commands.check, "run_checks", lambda settings: built.append(settings) or 0)

    def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[Result, StreamSettings | None]:
        clean: dict[str, str | None] = {o.envvar: None for o in OPTIONS}
        result = CliRunner(env=clean | (env or {})).invoke(cli.main, list(args))
        return result, (built[-1] if built else None)

    return invoke


def refused(run: Any, *args: str, env: dict[str, str] | None = None) -> str:
    result, settings = run(*args, env=env)
    assert result.exit_code == 2 and settings is None, result.output
    return str(result.stderr)


# ----------------------------------------------------------------------------------- mutual TLS


def test_kafka_client_certificate_reaches_the_tls_context(run: Any, pem: dict[str, str]) -> None:
    result, s = run("check", "--kafka-security-protocol", "SSL", "--kafka-ssl-ca", pem["ca"],
                    "--kafka-ssl-cert", pem["cert"], "--kafka-ssl-key", pem["encrypted"],
                    env={"WPCDC_KAFKA_SSL_KEY_PASSWORD_FILE": pem["password_file"]})
    assert result.exit_code == 0, result.output
    assert s is not None
    assert (s.kafka.ssl_certfile, s.kafka.ssl_keyfile, s.kafka.ssl_key_password) == (
        pem["cert"], pem["encrypted"], "key-pw-123")
    assert "key-pw-123" not in repr(s)
    assert s.kafka.ssl_context().check_hostname  # the name is still checked


@pytest.mark.parametrize("args,message", [
    (["--kafka-ssl-cert", "{cert}"], "--kafka-ssl-cert needs --kafka-ssl-key: a client certificate and its "
                                    "private key go together"),
    (["--kafka-ssl-key", "{key}"], "--kafka-ssl-key needs --kafka-ssl-cert"),
    (["--kafka-ssl-cert", "{cert}", "--kafka-ssl-key", "{other}"], "cannot load them (KEY_VALUES_MISMATCH)"),
    (["--kafka-ssl-cert", "{cert}", "--kafka-ssl-key", "{encrypted}"], "an encrypted key also needs its password"),
    (["--kafka-ssl-cert", "/nonexistent.crt", "--kafka-ssl-key", "{key}"],
     "--kafka-ssl-cert /nonexistent.crt: cannot read it (No such file or directory)"),
    (["--kafka-ssl-key", "{key}", "--kafka-ssl-key-password-file", "/nonexistent"],
     "cannot read Kafka TLS key password file /nonexistent"),
    (["--kafka-ssl-key-password-file", "{password_file}"], "--kafka-ssl-key-password-file is set but --kafka-ssl-key is not"),
])
def test_incomplete_or_unusable_kafka_certificates_are_refused(run: Any, pem: dict[str, str], args: list[str],
                                                               message: str) -> None:
    stderr = refused(run, "check", "--kafka-security-protocol", "SSL", *(a.format(**pem) for a in args))
    assert message in stderr, stderr


def test_a_client_certificate_needs_tls(run: Any, pem: dict[str, str]) -> None:
    stderr = refused(run, "check", "--kafka-ssl-cert", pem["cert"], "--kafka-ssl-key", pem["key"])
    assert "--kafka-ssl-cert is set but --kafka-security-protocol is PLAINTEXT: use SSL or SASL_SSL" in stderr


def test_mysql_client_certificate_goes_to_pymysql(run: Any, pem: dict[str, str]) -> None:
    result, s = run("check", "--mysql-ssl-ca", pem["ca"], "--mysql-ssl-cert", pem["cert"], "--mysql-ssl-key", pem["key"])
    assert result.exit_code == 0, result.output
    assert s is not None
    assert s.mysql.pymysql_kwargs()["ssl"] == {"ca": pem["ca"], "cert": pem["cert"], "key": pem["key"]}


@pytest.mark.parametrize("args,message", [
    (["--mysql-ssl-ca", "{ca}", "--mysql-ssl-cert", "{cert}"], "--mysql-ssl-cert needs --mysql-ssl-key"),
    (["--mysql-ssl-cert", "{cert}", "--mysql-ssl-key", "{key}"], "--mysql-ssl-cert needs --mysql-ssl-ca: the "
                                                                 "certificate proves who wpcdc is, the CA who the server is"),
    (["--mysql-ssl-ca", "{ca}", "--mysql-ssl-cert", "{cert}", "--mysql-ssl-key", "{other}"], "KEY_VALUES_MISMATCH"),
    (["--mysql-ssl-ca", "{ca}", "--mysql-ssl-cert", "{cert}", "--mysql-ssl-key", "/nonexistent.key"],
     "--mysql-ssl-key /nonexistent.key: cannot read it"),
])
def test_incomplete_mysql_certificates_are_refused(run: Any, pem: dict[str, str], args: list[str], message: str) -> None:
    stderr = refused(run, "check", *(a.format(**pem) for a in args))
    assert message in stderr, stderr


# ----------------------------------------------------------------------------------- OAUTHBEARER

OAUTH = ["--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-mechanism", "OAUTHBEARER"]
ENDPOINT = [*OAUTH, "--kafka-sasl-oauth-token-endpoint", "https://idp.example/oauth2/token",
            "--kafka-sasl-oauth-client-id", "wpcdc"]


def test_a_token_endpoint_with_its_secret_from_the_environment(run: Any, pem: dict[str, str]) -> None:
    result, s = run("check", *ENDPOINT, "--kafka-sasl-oauth-scope", "kafka", "--kafka-sasl-oauth-audience", "k1",
                    "--kafka-sasl-oauth-ca", pem["ca"], env={"WPCDC_KAFKA_SASL_OAUTH_CLIENT_SECRET": "oauth-secret-42"})
    assert result.exit_code == 0, result.output
    assert s is not None
    assert s.kafka.oauth == OAuthSettings(token_endpoint="https://idp.example/oauth2/token", client_id="wpcdc",
                                          client_secret="oauth-secret-42", scope="kafka", audience="k1",
                                          ca_file=pem["ca"])
    assert "oauth-secret-42" not in repr(s)
    assert logs.redact("secret is oauth-secret-42") == "secret is [redacted]"
    kw = s.kafka.client_kwargs()
    assert kw["sasl_mechanism"] == "OAUTHBEARER" and "sasl_plain_password" not in kw
    assert kw["sasl_oauth_token_provider"] is s.kafka.client_kwargs("producer")["sasl_oauth_token_provider"]


def test_the_client_secret_from_a_file_and_on_the_command_line_with_a_warning(run: Any, tmp_path: Path,
                                                                               caplog: pytest.LogCaptureFixture) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("from-a-file-77\n")
    result, s = run("check", *ENDPOINT, "--kafka-sasl-oauth-client-secret-file", str(secret))
    assert result.exit_code == 0 and s is not None and s.kafka.oauth.client_secret == "from-a-file-77"
    with caplog.at_level("WARNING", logger="wpcdc"):
        result, _ = run("check", *ENDPOINT, "--kafka-sasl-oauth-client-secret", "from-argv-88")
    assert result.exit_code == 0
    assert any("--kafka-sasl-oauth-client-secret on the command line is visible" in r.getMessage()
               for r in caplog.records)


def test_a_token_file(run: Any, pem: dict[str, str]) -> None:
    result, s = run("check", *OAUTH, "--kafka-sasl-oauth-token-file", pem["token"])
    assert result.exit_code == 0, result.output
    assert s is not None and s.kafka.oauth == OAuthSettings(token_file=pem["token"])


@pytest.mark.parametrize("args,env,message", [
    (OAUTH, {}, "--kafka-sasl-mechanism OAUTHBEARER needs --kafka-sasl-oauth-token-endpoint (with a client id "
                "and secret) or --kafka-sasl-oauth-token-file"),
    (ENDPOINT, {}, "--kafka-sasl-oauth-token-endpoint needs --kafka-sasl-oauth-client-id and a secret"),
    ([*ENDPOINT, "--kafka-sasl-oauth-token-file", "{token}"], {"WPCDC_KAFKA_SASL_OAUTH_CLIENT_SECRET": "s"},
     "--kafka-sasl-oauth-token-file and --kafka-sasl-oauth-token-endpoint both set"),
    ([*OAUTH, "--kafka-sasl-oauth-token-file", "{token}", "--kafka-sasl-oauth-scope", "x"], {},
     "--kafka-sasl-oauth-scope is for a token endpoint"),
    ([*OAUTH, "--kafka-sasl-oauth-token-file", "/nonexistent"], {},
     "--kafka-sasl-oauth-token-file /nonexistent: cannot read it"),
    ([*OAUTH, "--kafka-sasl-oauth-token-endpoint", "http://idp.example/token", "--kafka-sasl-oauth-client-id", "c"],
     {"WPCDC_KAFKA_SASL_OAUTH_CLIENT_SECRET": "s"}, "use https; over http the client secret would cross"),
    ([*OAUTH, "--kafka-sasl-oauth-token-endpoint", "idp.example/token", "--kafka-sasl-oauth-client-id", "c"],
     {"WPCDC_KAFKA_SASL_OAUTH_CLIENT_SECRET": "s"}, "expected an https:// URL"),
    ([*OAUTH, "--kafka-sasl-oauth-token-file", "{token}", "--kafka-sasl-username", "u"],
     {}, "--kafka-sasl-username and the SASL password are for PLAIN and SCRAM"),
    (["--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-username", "u",
      "--kafka-sasl-oauth-token-file", "{token}"], {"WPCDC_KAFKA_SASL_PASSWORD": "p"},
     "the --kafka-sasl-oauth-* options need --kafka-sasl-mechanism OAUTHBEARER"),
    (["--kafka-security-protocol", "SASL_SSL"], {}, "needs --kafka-sasl-mechanism (PLAIN, SCRAM-SHA-256, "
                                                   "SCRAM-SHA-512 or OAUTHBEARER)"),
])
def test_incomplete_oauth_settings_are_refused(run: Any, pem: dict[str, str], args: list[str],
                                               env: dict[str, str], message: str) -> None:
    stderr = refused(run, "check", *(a.format(**pem) for a in args), env=env)
    assert message in stderr, stderr


def test_a_loopback_token_endpoint_may_be_plain_http(run: Any) -> None:
    """A token proxy beside the connector (a sidecar) is reached over loopback."""
    result, s = run("check", *OAUTH, "--kafka-sasl-oauth-token-endpoint", "http://127.0.0.1:8080/token",
                    "--kafka-sasl-oauth-client-id", "c", env={"WPCDC_KAFKA_SASL_OAUTH_CLIENT_SECRET": "s3cret"})
    assert result.exit_code == 0, result.output


# -------------------------------------------------------------------------------- --kafka-option


def test_kafka_options_from_the_command_line_and_the_environment(run: Any) -> None:
    result, s = run("check", "--kafka-option", "request.timeout.ms=60000", "--kafka-option", "client.id=blog")
    assert result.exit_code == 0, result.output
    assert s is not None and s.kafka.options == (("request.timeout.ms", "60000"), ("client.id", "blog"))
    result, s = run("check", env={"WPCDC_KAFKA_OPTION": "linger.ms=5 batch.size=65536"})
    assert s is not None and s.kafka.options == (("linger.ms", "5"), ("batch.size", "65536"))


def test_a_bad_kafka_option_stops_the_command(run: Any) -> None:
    assert "unknown Kafka client property (did you mean linger.ms?)" in refused(run, "check", "--kafka-option",
                                                                               "linger=5")
    stderr = refused(run, "check", "--kafka-option", "ssl.endpoint.identification.algorithm=")
    assert "ssl.endpoint.identification.algorithm is for TLS, but --kafka-security-protocol is PLAINTEXT" in stderr


@pytest.mark.parametrize("toml", [
    '[kafka_options]\nrequest.timeout.ms = 60000\n"linger.ms" = 5\nclient.id = "blog"\n',
    '[kafka.options]\nrequest.timeout.ms = 60000\nlinger.ms = 5\nclient.id = "blog"\n',
    'kafka_option = ["request.timeout.ms=60000", "linger.ms=5", "client.id=blog"]\n',
])
def test_kafka_options_in_the_file(run: Any, tmp_path: Path, toml: str) -> None:
    config = tmp_path / "wpcdc.toml"
    config.write_text('name = "blog"\n' + toml)
    result, s = run("--config", str(config), "check")
    assert result.exit_code == 0, result.output
    assert s is not None
    assert sorted(s.kafka.options) == [("client.id", "blog"), ("linger.ms", "5"), ("request.timeout.ms", "60000")]
    # The command line replaces the file's list, as for any option.
    result, s = run("--config", str(config), "check", "--kafka-option", "linger.ms=9")
    assert s is not None and s.kafka.options == (("linger.ms", "9"),)


def test_file_values_read_as_their_command_line_text(tmp_path: Path) -> None:
    config = tmp_path / "wpcdc.toml"
    config.write_text("[kafka_options]\nssl.endpoint.identification.algorithm = \"\"\nsome.flag = true\n")
    assert load_toml(str(config)) == {"kafka_option": ["ssl.endpoint.identification.algorithm=", "some.flag=true"]}


def test_the_list_and_the_table_together_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "wpcdc.toml"
    config.write_text('kafka_option = ["linger.ms=5"]\n[kafka_options]\nclient.id = "x"\n')
    with pytest.raises(ConfigError, match="'kafka_option' and 'kafka_options' both set --kafka-option; keep one"):
        load_toml(str(config))


def test_settings_built_in_code_are_checked_too() -> None:
    from cdc.config import MysqlSettings, validate

    kafka = KafkaSettings(options=(("acks", "1"),))
    with pytest.raises(ConfigError, match="--kafka-option acks=1: not taken here"):
        validate(StreamSettings(name="n", mysql=MysqlSettings(), kafka=kafka, server_id=1))
