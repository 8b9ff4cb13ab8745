"""``--kafka-option key=value``: the Java client's property names, mapped to aiokafka's arguments.

Kafka users know their cluster's client settings as Java properties (``request.timeout.ms``, from
their provider's docs or a ``client.properties``); aiokafka names them differently
(``request_timeout_ms``), takes some only on the producer, and lacks others. This table is the one
place that knows: a mapped key reaches exactly the clients that take it; a key it knows but
refuses says why (a dedicated option exists, a guarantee of wpcdc depends on it, aiokafka has no
such setting); any other key is an error naming the nearest mapped one. No setting is ignored in
silence.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cdc.errors import ConfigError

PRODUCER, CONSUMER, ADMIN = "producer", "consumer", "admin"
EVERY_CLIENT = frozenset({PRODUCER, CONSUMER, ADMIN})
FLAG = "--kafka-option"

# The pairs as given: ((java key, text), ...), in order.
Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Mapped:
    """A Java property aiokafka has: its argument, the clients taking it, and its value's kind."""

    argument: str
    kind: str = "ms"  # "ms", "bytes" (whole numbers), "text", or "hostname check"
    clients: frozenset[str] = EVERY_CLIENT
    low: int = 0
    never: int | None = None  # the Java value meaning "never" (None to aiokafka), if any


MAPPED: dict[str, Mapped] = {
    "client.id": Mapped("client_id", "text"),
    "request.timeout.ms": Mapped("request_timeout_ms", low=1),
    "metadata.max.age.ms": Mapped("metadata_max_age_ms"),
    "connections.max.idle.ms": Mapped("connections_max_idle_ms", never=-1),
    "retry.backoff.ms": Mapped("retry_backoff_ms"),
    "linger.ms": Mapped("linger_ms", clients=frozenset({PRODUCER})),
    "batch.size": Mapped("max_batch_size", "bytes", frozenset({PRODUCER}), low=1),
    "transaction.timeout.ms": Mapped("transaction_timeout_ms", clients=frozenset({PRODUCER}), low=1),
    # Not an argument: it decides the TLS context's hostname check (KafkaSettings.ssl_context).
    "ssl.endpoint.identification.algorithm": Mapped("", "hostname check"),
}

_OWN = "wpcdc sets it for its guarantees"
_READER = ("wpcdc's consumers only read its checkpoint and topic ends back, without a consumer group, "
           "and need no tuning")
_ABSENT = "aiokafka, wpcdc's Kafka client, has no such setting"
REFUSED: dict[str, str] = {
    "bootstrap.servers": "use --kafka-bootstrap",
    "security.protocol": "use --kafka-security-protocol",
    "sasl.mechanism": "use --kafka-sasl-mechanism",
    "sasl.jaas.config": "use --kafka-sasl-username with a password, or the --kafka-sasl-oauth-* options",
    "sasl.login.callback.handler.class": "use the --kafka-sasl-oauth-* options",
    "sasl.oauthbearer.token.endpoint.url": "use --kafka-sasl-oauth-token-endpoint",
    "sasl.kerberos.service.name": "GSSAPI (Kerberos) is not among --kafka-sasl-mechanism's choices",
    "ssl.truststore.location": "use --kafka-ssl-ca (a PEM file)",
    "ssl.truststore.certificates": "use --kafka-ssl-ca (a PEM file)",
    "ssl.truststore.type": "use --kafka-ssl-ca (a PEM file)",
    "ssl.truststore.password": "use --kafka-ssl-ca (a PEM file)",
    "ssl.keystore.location": "use --kafka-ssl-cert and --kafka-ssl-key (PEM files)",
    "ssl.keystore.certificate.chain": "use --kafka-ssl-cert (a PEM file)",
    "ssl.keystore.key": "use --kafka-ssl-key (a PEM file)",
    "ssl.keystore.type": "use --kafka-ssl-cert and --kafka-ssl-key (PEM files)",
    "ssl.keystore.password": "use --kafka-ssl-cert and --kafka-ssl-key (PEM files)",
    "ssl.key.password": "use --kafka-ssl-key-password-file",
    "compression.type": "use --compression",
    "max.request.size": "it follows --max-message-bytes",
    "acks": f"{_OWN} (acks=all)",
    "enable.idempotence": f"{_OWN} (idempotence on)",
    "transactional.id": f"{_OWN} (wpcdc-<name>, from --name)",
    "max.in.flight.requests.per.connection": f"{_OWN} (idempotence)",
    "retries": f"{_OWN}: a failed write is retried from the checkpoint",
    "delivery.timeout.ms": f"{_ABSENT}; a write not acknowledged within 60 s reconnects from the checkpoint",
    "partitioner.class": f"{_OWN}: events are keyed blog:post",
    "key.serializer": _OWN,
    "value.serializer": _OWN,
    "isolation.level": f"{_OWN} (read_committed)",
    "group.id": _READER,
    "auto.offset.reset": _READER,
    "enable.auto.commit": _READER,
    "fetch.max.bytes": _READER,
    "fetch.min.bytes": _READER,
    "fetch.max.wait.ms": _READER,
    "max.partition.fetch.bytes": _READER,
    "max.poll.records": _READER,
    "session.timeout.ms": _READER,
    "heartbeat.interval.ms": _READER,
    "client.rack": _READER,
    "reconnect.backoff.ms": _ABSENT,
    "reconnect.backoff.max.ms": _ABSENT,
    "socket.connection.setup.timeout.ms": _ABSENT,
    "socket.connection.setup.timeout.max.ms": _ABSENT,
    "buffer.memory": _ABSENT,
    "send.buffer.bytes": _ABSENT,
    "receive.buffer.bytes": _ABSENT,
    "metadata.max.idle.ms": _ABSENT,
}


def parse_assignments(texts: Iterable[str]) -> Pairs:
    """``["linger.ms=5", ...]`` → ``(("linger.ms", "5"), ...)``; a key given twice is an error."""
    pairs: dict[str, str] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{FLAG} {text!r}: expected KEY=VALUE with a Java client property, "
                              "e.g. request.timeout.ms=60000")
        if key in pairs:
            raise ConfigError(f"{FLAG} {key} given twice ({pairs[key]!r} and {value.strip()!r}): keep one")
        pairs[key] = value.strip()
    return tuple(pairs.items())


def check(pairs: Pairs) -> None:
    """Raise ConfigError for the first key that is refused or unknown, or a value of the wrong kind."""
    for key, value in pairs:
        _convert(key, value)


def arguments(pairs: Pairs, client: str | None = None) -> dict[str, Any]:
    """aiokafka's keyword arguments for ``client`` (PRODUCER, CONSUMER, ADMIN), or with None those
    every client takes: a producer-only key never reaches an admin client, which would refuse it."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        mapped, converted = _convert(key, value)
        if not mapped.argument:
            continue
        if mapped.clients >= ({client} if client else EVERY_CLIENT):
            out[mapped.argument] = converted
    return out


def hostname_check(pairs: Pairs) -> bool:
    """Whether TLS checks the broker's name against its certificate (Java's default: https)."""
    for key, value in pairs:
        if key == "ssl.endpoint.identification.algorithm":
            return bool(_convert(key, value)[1])
    return True


def _convert(key: str, value: str) -> tuple[Mapped, Any]:
    given = f"{FLAG} {key}={value}"
    if key in REFUSED:
        raise ConfigError(f"{given}: not taken here: {REFUSED[key]}")
    mapped = MAPPED.get(key)
    if mapped is None:
        near = difflib.get_close_matches(key, list(MAPPED), n=1, cutoff=0.6)
        hint = f"did you mean {near[0]}?" if near else "the keys taken are " + ", ".join(MAPPED)
        raise ConfigError(f"{given}: unknown Kafka client property ({hint}); docs/operations.md lists them")
    if mapped.kind == "text":
        if not value:
            raise ConfigError(f"{given}: must not be empty")
        return mapped, value
    if mapped.kind == "hostname check":
        if value.lower() not in ("", "https"):
            raise ConfigError(f"{given}: must be https (check the broker's name, the default) or empty (do not)")
        return mapped, value.lower() == "https"
    try:
        number = int(value)
    except ValueError:
        unit = "milliseconds" if mapped.kind == "ms" else "bytes"
        raise ConfigError(f"{given}: expected a whole number of {unit}") from None
    if mapped.never is not None and number == mapped.never:
        return mapped, None
    if number < mapped.low:
        never = f" (or {mapped.never}: never)" if mapped.never is not None else ""
        raise ConfigError(f"{given}: must be >= {mapped.low}{never}")
    return mapped, number
