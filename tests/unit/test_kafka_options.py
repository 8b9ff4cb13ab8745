"""``--kafka-option``: Java property names mapped to aiokafka's arguments, each to the clients that take it.

Whether a passed option reaches a real client is tested against the broker in
tests/integration/test_auth_options.py.
"""

from __future__ import annotations

import inspect

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from cdc import kafka_options
from cdc.config import KafkaSettings
from cdc.errors import ConfigError
from cdc.kafka_options import ADMIN, CONSUMER, MAPPED, PRODUCER, REFUSED, arguments, parse_assignments

CLIENTS = {PRODUCER: AIOKafkaProducer, CONSUMER: AIOKafkaConsumer, ADMIN: AIOKafkaAdminClient}


@pytest.mark.parametrize("key", [k for k, m in MAPPED.items() if m.argument])
def test_every_mapped_key_is_an_argument_of_each_client_it_goes_to(key: str) -> None:
    """...and only to those: a client that lacks the argument would refuse the whole call."""
    mapped = MAPPED[key]
    for client, cls in CLIENTS.items():
        takes = mapped.argument in inspect.signature(cls).parameters
        assert takes == (client in mapped.clients), f"{key}: {mapped.argument} on aiokafka's {client}: {takes}"


def test_no_key_is_both_mapped_and_refused() -> None:
    assert not set(MAPPED) & set(REFUSED)


def test_values_are_converted_and_reach_only_the_clients_that_take_them() -> None:
    pairs = parse_assignments(["request.timeout.ms=60000", "linger.ms = 5", "batch.size=65536",
                               "client.id=blog-cdc", "connections.max.idle.ms=-1", "transaction.timeout.ms=90000"])
    common = {"request_timeout_ms": 60000, "client_id": "blog-cdc", "connections_max_idle_ms": None}
    assert arguments(pairs) == common
    assert arguments(pairs, ADMIN) == common
    assert arguments(pairs, CONSUMER) == common
    assert arguments(pairs, PRODUCER) == common | {"linger_ms": 5, "max_batch_size": 65536,
                                                   "transaction_timeout_ms": 90000}


async def test_settings_pass_them_last_so_they_win() -> None:
    kafka = KafkaSettings(options=parse_assignments(["request.timeout.ms=5000", "linger.ms=7"]))
    assert kafka.client_kwargs()["request_timeout_ms"] == 5000
    assert "linger_ms" not in kafka.client_kwargs() and "linger_ms" not in kafka.client_kwargs(ADMIN)
    assert kafka.client_kwargs(PRODUCER)["linger_ms"] == 7
    await AIOKafkaAdminClient(**kafka.client_kwargs(ADMIN)).close()  # it takes what it is given
    await AIOKafkaConsumer(**kafka.client_kwargs(CONSUMER)).stop()


@pytest.mark.parametrize("value,check", [("", False), ("https", True), ("HTTPS", True)])
def test_the_hostname_check_follows_ssl_endpoint_identification_algorithm(value: str, check: bool) -> None:
    kafka = KafkaSettings(security_protocol="SSL",
                          options=parse_assignments([f"ssl.endpoint.identification.algorithm={value}"]))
    assert kafka.ssl_context().check_hostname is check
    assert "ssl_endpoint" not in str(kafka.client_kwargs())
    assert KafkaSettings(security_protocol="SSL").ssl_context().check_hostname is True


@pytest.mark.parametrize("given,message", [
    ("security.protocol=SSL", "--kafka-option security.protocol=SSL: not taken here: use --kafka-security-protocol"),
    ("sasl.mechanism=PLAIN", "not taken here: use --kafka-sasl-mechanism"),
    ("acks=1", "not taken here: wpcdc sets it for its guarantees (acks=all)"),
    ("compression.type=zstd", "use --compression"),
    ("ssl.truststore.location=/x.jks", "use --kafka-ssl-ca (a PEM file)"),
    ("fetch.max.bytes=1", "wpcdc's consumers only read its checkpoint"),
    ("reconnect.backoff.ms=50", "aiokafka, wpcdc's Kafka client, has no such setting"),
    ("request.timeout=5000", "unknown Kafka client property (did you mean request.timeout.ms?)"),
    ("lingerms=5", "(did you mean linger.ms?)"),
    ("zzz=1", "unknown Kafka client property (the keys taken are client.id, request.timeout.ms"),
    ("linger.ms=5s", "--kafka-option linger.ms=5s: expected a whole number of milliseconds"),
    ("batch.size=0", "--kafka-option batch.size=0: must be >= 1"),
    ("batch.size=big", "expected a whole number of bytes"),
    ("retry.backoff.ms=-5", "must be >= 0"),
    ("connections.max.idle.ms=-2", "must be >= 0 (or -1: never)"),
    ("client.id=", "--kafka-option client.id=: must not be empty"),
    ("ssl.endpoint.identification.algorithm=none", "must be https (check the broker's name, the default) or empty"),
])
def test_refused_unknown_and_malformed_keys_say_why(given: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        kafka_options.check(parse_assignments([given]))
    assert message in str(raised.value)


@pytest.mark.parametrize("given,message", [
    (["linger.ms"], "--kafka-option 'linger.ms': expected KEY=VALUE"),
    (["=5"], "expected KEY=VALUE"),
    (["linger.ms=5", "linger.ms=6"], "--kafka-option linger.ms given twice ('5' and '6'): keep one"),
])
def test_assignments_are_key_equals_value_once_each(given: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_assignments(given)
    assert message in str(raised.value)


def test_a_value_may_hold_an_equals_sign() -> None:
    assert parse_assignments(["client.id=a=b"]) == (("client.id", "a=b"),)
