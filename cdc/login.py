"""Why a Kafka login failed, where aiokafka cannot tell.

Two refusals reach aiokafka only as a closed connection, so what it reports ("Unable to bootstrap",
"Connection at … closed", a node that is not ready) says nothing of the cause:

* a broker's refusal of an OAUTHBEARER token: aiokafka does not read the broker's error challenge
  (RFC 7628 3.2.2), takes the exchange for a successful login, and the broker closes the
  connection at its next request;
* a mutual-TLS listener's refusal of a client without a certificate: under TLS 1.3 the client's
  handshake is over before the server looks at its certificate, and the alert arrives as a close.

MySQL has a milder case: an account that REQUIREs X509 refuses a client without a certificate with
error 1045, exactly as it refuses a wrong password.

:func:`explain` is asked after a Kafka failure, :func:`explain_mysql` after a failed MySQL connection.
The server answering now means the failure was something else (a topic's settings), and nothing is
added; otherwise the settings and the token provider say what to check.
"""

from __future__ import annotations

import asyncio

import pymysql
from aiokafka.admin import AIOKafkaAdminClient

from cdc import oauth
from cdc.config import KafkaSettings, MysqlSettings

LOGIN_REFUSED = 1045  # MySQL's ER_ACCESS_DENIED_ERROR

PROBE_TIMEOUT = 15.0


def hint(kafka: KafkaSettings) -> str | None:
    """The sentence for a Kafka failure under these settings, or None when they suggest nothing."""
    if kafka.sasl_mechanism == "OAUTHBEARER" and kafka.oauth.configured:
        return oauth.login_hint(kafka.oauth)
    if kafka.security_protocol == "SSL" and not kafka.ssl_certfile:
        return ("if Kafka closed the connection, the listener may require a client certificate "
                "(ssl.client.auth=required, as on Aiven and MSK with mTLS): give --kafka-ssl-cert and --kafka-ssl-key "
                "(under TLS 1.3 a broker refuses a missing certificate after the handshake, which a client sees "
                "as a closed connection)")
    return None


def explain(kafka: KafkaSettings) -> str | None:
    """:func:`hint`, when Kafka does not answer a fresh admin client now (blocking; outside an event loop)."""
    text = hint(kafka)
    if text is None or asyncio.run(answers(kafka)):
        return None
    return hint(kafka)  # again: the provider saw the probe's login too


async def answers(kafka: KafkaSettings) -> bool:
    """Whether Kafka lets an admin client in and describes its cluster."""
    admin = AIOKafkaAdminClient(**kafka.client_kwargs("admin"))
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await admin.start()
            await admin.describe_cluster()
        return True
    except Exception:  # noqa: BLE001 - any failure means "does not answer"; the caller reports the first one
        return False
    finally:
        try:
            await admin.close()
        except Exception:  # noqa: BLE001
            pass


def explain_mysql(mysql: MysqlSettings) -> str | None:
    """For a login MySQL refuses (1045) without a client certificate: that the account may want one."""
    if mysql.ssl_cert:
        return None
    try:
        pymysql.connect(**mysql.pymysql_kwargs()).close()
    except pymysql.err.OperationalError as exc:
        if exc.args and exc.args[0] == LOGIN_REFUSED:
            return ("if the password is right, the account may REQUIRE X509 (a client certificate): give "
                    "--mysql-ssl-cert and --mysql-ssl-key with --mysql-ssl-ca (MySQL refuses a missing "
                    "certificate as it refuses a wrong password, with error 1045)")
    except Exception:  # noqa: BLE001 - any other failure: the original message says it
        pass
    return None
