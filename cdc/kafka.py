"""Kafka beside the producer: topics (create, check) and reading offsets and records back.

The sink (cdc/sink.py) writes. Everything else that talks to Kafka goes through here: the
checkpoint store reading its record back, the lost-checkpoint rule, ``check``, ``status`` and
``offsets``. One place turns aiokafka's errors into SinkError, and no private aiokafka API is
used (partitions come from the admin client's metadata, which is always fresh, instead of a
consumer's cache that must be forced to refresh).

Topics are created with what the cluster says, not with constants: the replication factor is the
brokers' ``default.replication.factor`` (read with DescribeConfigs, since aiokafka's CreateTopics
v0–v3 cannot send KIP-464's ``-1``) unless ``--replication-factor`` overrides it, and every
per-topic error of CreateTopics is checked (a managed cluster refusing a replication factor
must not leave the connector writing to a topic that does not exist).

aiokafka's admin client sends each request to a random broker of its metadata and does not retry:
for the seconds a dead broker is still listed (until the controller fences it), one request in
three of a three-broker cluster would fail. Every admin call here goes through :func:`retrying`,
so ``check``, ``status`` and the checkpoint read work while any one broker is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from cdc import metrics
from cdc.config import LEGACY_CHECKPOINT_TOPIC, KafkaSettings, StreamSettings
from cdc.errors import ConfigError, SinkError
from cdc.routing import TopicRouter

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36
# CreateTopics errors no retry can heal: invalid topic name, topic/cluster authorization failed,
# invalid config, policy violation.
PERMANENT_TOPIC_ERRORS = frozenset({17, 29, 31, 40, 44})
UNKNOWN_TOPIC = 3
# Kafka's own default for max.message.bytes (1 MiB + the record batch overhead).
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
# Room above --max-message-bytes for the key, headers and batch framing of the largest event.
FRAMING_ROOM = 64 << 10
RETRY_BACKOFF = 0.25  # seconds between attempts of an admin request that failed retriably

T = TypeVar("T")
DOCUMENTS = {"events": "post documents", "terms": "term documents"}  # what retention deletes, per topic role


def sink_error(settings: KafkaSettings, what: str, exc: BaseException, metric: str = "topics") -> SinkError:
    """The one translation of an aiokafka failure into the SinkError an operator reads: what
    failed, against which bootstrap, and why (counted in ``wpcdc_kafka_errors_total``)."""
    metrics.kafka_error(metric)
    if isinstance(exc, TimeoutError):  # aiokafka's wait for the controller to be reachable (CreateTopics)
        return SinkError(f"Kafka at {settings.bootstrap} failed to {what}: no answer within "
                         f"{settings.request_timeout_ms / 1000:.0f}s")
    return SinkError(f"Kafka at {settings.bootstrap} failed to {what}: {exc!r}")


@contextmanager
def kafka_errors(settings: KafkaSettings, what: str, metric: str = "topics") -> Iterator[None]:
    """aiokafka's errors inside the block as SinkError (``sink_error``)."""
    try:
        yield
    except (KafkaError, TimeoutError) as exc:
        raise sink_error(settings, what, exc, metric) from None


async def retrying(settings: KafkaSettings, call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, again while it fails with an error Kafka calls retriable, for at most the
    request timeout: a broker that died is listed in the metadata until the controller fences
    it, and aiokafka's admin client picks a random broker for each request without retrying."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.request_timeout_ms / 1000
    while True:
        try:
            return await call()
        except KafkaError as exc:
            if not exc.retriable or loop.time() + RETRY_BACKOFF > deadline:
                raise
            log.debug("Kafka admin request failed (%r); retrying", exc)
        await asyncio.sleep(RETRY_BACKOFF)


@dataclass(frozen=True)
class Offsets:
    """Per partition: the first offset, the last stable offset (what read_committed sees up to)
    and the high watermark (which includes records of transactions still open)."""

    begin: dict[TopicPartition, int]
    stable: dict[TopicPartition, int]
    high: dict[TopicPartition, int]

    @property
    def held(self) -> int:
        """Offsets written, transaction markers and aborted records included."""
        return sum(self.high[tp] - self.begin[tp] for tp in self.high)

    @property
    def committed(self) -> int:
        return sum(self.stable[tp] - self.begin[tp] for tp in self.stable)

    @property
    def in_open_transactions(self) -> int:
        return sum(self.high[tp] - self.stable[tp] for tp in self.high)


class KafkaReader:
    """An admin client and two consumers (read_committed, read_uncommitted) for reading back.

    Use as ``async with KafkaReader(settings, "read the checkpoint") as reader:``; errors of the
    block's calls on the reader surface as SinkError naming that purpose.
    """

    def __init__(self, settings: KafkaSettings, purpose: str, metric: str = "topics") -> None:
        self.settings = settings
        self.purpose = purpose
        self.metric = metric
        kw = settings.client_kwargs()
        self._admin = AIOKafkaAdminClient(**kw)
        self._committed = AIOKafkaConsumer(**kw, isolation_level="read_committed", enable_auto_commit=False,
                                           auto_offset_reset="earliest")
        self._uncommitted = AIOKafkaConsumer(**kw, isolation_level="read_uncommitted", enable_auto_commit=False)

    async def __aenter__(self) -> KafkaReader:
        try:
            with self._errors():
                await self._admin.start()
                await self._committed.start()
                await self._uncommitted.start()
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._close()
        if isinstance(exc, KafkaError):  # raised by a direct use of a record iterator
            raise sink_error(self.settings, self.purpose, exc, self.metric) from None

    async def _close(self) -> None:
        for client in (self._committed, self._uncommitted):
            try:
                await client.stop()
            except Exception:  # noqa: BLE001 - closing after the work; its errors were reported
                pass
            except asyncio.CancelledError:
                # aiokafka's fetcher re-raises the cancellation of its own fetch task when it is
                # stopped during a Kafka outage: that ended the whole connector (the repair
                # watcher's reader, closed after a timeout). Only our own cancellation goes on.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
        try:
            await self._admin.close()
        except Exception:  # noqa: BLE001
            pass

    def _errors(self) -> Any:
        return kafka_errors(self.settings, self.purpose, self.metric)

    async def partitions(self, topic: str) -> list[TopicPartition] | None:
        """The topic's partitions, or None when the topic does not exist."""
        with self._errors():
            # Listed first: a Metadata request naming a missing topic would create it on a broker
            # with auto.create.topics.enable=true (Kafka's default), with the broker's settings.
            if topic not in set(await retrying(self.settings, self._admin.list_topics)):
                return None
            described = await retrying(self.settings, lambda: self._admin.describe_topics([topic]))
        for entry in described:
            if entry["topic"] != topic:
                continue
            if entry["error_code"] or not entry["partitions"]:
                # A listed topic whose partitions Kafka cannot give now (leader election,
                # authorization): never "no topic", which would read as "no checkpoint".
                raise SinkError(f"Kafka at {self.settings.bootstrap} cannot describe topic {topic} "
                                f"(error {entry['error_code']}) to {self.purpose}")
            return [TopicPartition(topic, p["partition"]) for p in sorted(entry["partitions"],
                                                                            key=lambda p: p["partition"])]
        return None

    async def offsets(self, tps: Sequence[TopicPartition]) -> Offsets:
        with self._errors():
            begin = await self._committed.beginning_offsets(list(tps))
            stable = await self._committed.end_offsets(list(tps))
            high = await self._uncommitted.end_offsets(list(tps))
        return Offsets(begin, stable, high)

    async def stable_ends(self, tps: Sequence[TopicPartition], timeout: float) -> dict[TopicPartition, int] | None:
        """End offsets once every transaction open when we looked has ended; None on timeout.

        Under read_committed the end is the last stable offset: a transaction another producer
        left open hides every record after its first one. Waiting until the stable offset reaches
        the high watermark seen first means everything written before we looked is visible.
        """
        with self._errors():
            high = await self._uncommitted.end_offsets(list(tps))
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                stable = await self._committed.end_offsets(list(tps))
                if all(stable[tp] >= high[tp] for tp in tps):
                    return stable
                if asyncio.get_running_loop().time() > deadline:
                    return None
                await asyncio.sleep(0.5)

    async def read(self, tp: TopicPartition, start: int, end: int, timeout: float) -> AsyncIterator[ConsumerRecord]:
        """Committed records of ``tp`` from ``start`` up to ``end`` (exclusive), in order."""
        with self._errors():
            self._committed.assign([tp])
            self._committed.seek(tp, start)
            deadline = asyncio.get_running_loop().time() + timeout
            while await self._committed.position(tp) < end:
                if asyncio.get_running_loop().time() > deadline:
                    metrics.kafka_error(self.metric)
                    raise SinkError(f"timed out reading {tp.topic} from {self.settings.bootstrap} "
                                    f"to {self.purpose}")
                batch = await self._committed.getmany(tp, timeout_ms=1000)
                for msg in batch.get(tp, []):
                    if msg.offset >= end:
                        return
                    yield msg


async def topic_offsets(settings: KafkaSettings, topic: str) -> int:
    """How many offsets ``topic`` holds (0 when missing or empty): whether events were written."""
    async with KafkaReader(settings, f"read the offsets of topic {topic}") as reader:
        tps = await reader.partitions(topic)
        if not tps:
            return 0
        return (await reader.offsets(tps)).held


# --------------------------------------------------------------------------------------- topics


@dataclass(frozen=True)
class TopicSpec:
    """A topic the connector needs, and the settings it cannot work without."""

    name: str
    role: str  # "events", "terms" or "checkpoints": named in messages
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)
    max_message_bytes: int = 0  # the largest record it must take (0: Kafka's default suffices)


def event_topic_spec(topic: str, partitions: int, max_message_bytes: int) -> TopicSpec:
    configs = {"cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"}
    if max_message_bytes + FRAMING_ROOM > KAFKA_DEFAULT_MAX_MESSAGE_BYTES:
        configs["max.message.bytes"] = str(max_message_bytes + FRAMING_ROOM)
    return TopicSpec(topic, "events", partitions, configs, max_message_bytes)


def term_topic_spec(topic: str, partitions: int, max_message_bytes: int) -> TopicSpec:
    """Term events: compacted like post events (the newest event of each term, tombstones)."""
    spec = event_topic_spec(topic, partitions, max_message_bytes)
    return TopicSpec(topic, "terms", partitions, spec.configs, max_message_bytes)


def checkpoint_topic_spec(topic: str) -> TopicSpec:
    return TopicSpec(topic, "checkpoints", 1, {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1",
                                                "segment.ms": "600000"})


def connector_topics(settings: StreamSettings, events: Sequence[str] | None = None) -> list[TopicSpec]:
    """The event topic(s), the term topic and the checkpoint topic of a connector. With a routing
    template the event topics are those given (created as first needed, cdc/routing.py); else the one topic."""
    if events is None:
        events = [settings.topic] if TopicRouter(settings.topic, settings.name).static else []
    terms = [term_topic_spec(settings.term_topic, settings.partitions, settings.max_message_bytes)] \
        if settings.term_topic else []
    return [*(event_topic_spec(t, settings.partitions, settings.max_message_bytes) for t in events), *terms,
            checkpoint_topic_spec(settings.checkpoint_topic)]


async def event_topics(settings: StreamSettings) -> list[str]:
    """The event topics that exist: the one topic, or every topic the routing template names."""
    router = TopicRouter(settings.topic, settings.name)
    if router.static:
        return [settings.topic]
    admin = AIOKafkaAdminClient(**settings.kafka.client_kwargs("admin"))
    try:
        with kafka_errors(settings.kafka, "list topics"):
            await admin.start()
            names = await admin.list_topics()
    finally:
        await admin.close()
    pattern = router.pattern()
    # A template such as wpcdc.{name}.{post_type} also matches the connector's own other topics.
    own = {settings.checkpoint_topic, settings.term_topic, LEGACY_CHECKPOINT_TOPIC}
    return sorted(t for t in names if pattern.fullmatch(t) and t not in own)


@dataclass(frozen=True)
class ClusterDefaults:
    brokers: int
    replication_factor: int
    min_insync_replicas: int


async def cluster_defaults(admin: AIOKafkaAdminClient, settings: KafkaSettings) -> ClusterDefaults:
    """The brokers' default.replication.factor and min.insync.replicas (DescribeConfigs)."""
    cluster = await admin.describe_cluster()
    brokers = cluster.get("brokers") or []
    if not brokers:
        raise SinkError(f"Kafka at {settings.bootstrap} reports no brokers")
    broker_id = str(cluster.get("controller_id") if cluster.get("controller_id", -1) >= 0
                    else brokers[0]["node_id"])
    wanted = {"default.replication.factor": None, "min.insync.replicas": None}
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, broker_id, wanted)])
    values: dict[str, str] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                raise SinkError(
                    f"Kafka at {settings.bootstrap} refused to describe broker {broker_id}'s configuration "
                    f"({resource['error_message'] or resource['error_code']}): allow DescribeConfigs on the "
                    "cluster, or give --replication-factor explicitly")
            for entry in resource["config_entries"]:
                values[entry["config_names"]] = entry["config_value"]
    factor = int(values.get("default.replication.factor") or 1)
    if factor > len(brokers):
        log.warning("the brokers' default.replication.factor is %d but Kafka at %s lists %d live broker(s): "
                    "new topics get %d replica(s); if a broker is only down for now, give --replication-factor",
                    factor, settings.bootstrap, len(brokers), len(brokers))
    return ClusterDefaults(len(brokers), min(factor, len(brokers)), int(values.get("min.insync.replicas") or 1))


async def ensure_topics(settings: KafkaSettings, specs: Sequence[TopicSpec],
                        replication_factor: int | None) -> list[str]:
    """Create the missing topics (names returned); an existing topic is the operator's.

    A CreateTopics error other than "already exists" (another instance created it meanwhile)
    stops with a message naming the topic and Kafka's reason.
    """
    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    try:
        with kafka_errors(settings, "create topics"):
            await admin.start()
            existing = set(await retrying(settings, admin.list_topics))
            missing = [s for s in specs if s.name not in existing]
            if not missing:
                return []
            factor = replication_factor
            if factor is None:
                factor = (await retrying(settings, lambda: cluster_defaults(admin, settings))).replication_factor
            new = [NewTopic(s.name, s.partitions, factor, topic_configs=s.configs) for s in missing]
            response = await retrying(settings, lambda: admin.create_topics(new))
        failed = [e for e in response.to_object()["topic_errors"] if e["error_code"] not in (0, TOPIC_ALREADY_EXISTS)]
        if failed:
            metrics.kafka_error("topics")
            reasons = "; ".join(f"{e['topic']}: {e['error_message'] or 'error ' + str(e['error_code'])}"
                                for e in failed)
            if any(e["error_code"] in PERMANENT_TOPIC_ERRORS for e in failed):
                # Retrying cannot help (an invalid name, a policy, no right to create): stop loudly
                # instead of holding every later event behind this flush.
                raise ConfigError(f"Kafka at {settings.bootstrap} refuses to create topics ({reasons}): fix the "
                                  "topic name (--topic, --term-topic), the cluster's policy or the ACLs, or "
                                  "create the topics yourself (docs/operations.md lists their settings)")
            raise SinkError(f"Kafka at {settings.bootstrap} refused to create topics with replication factor "
                            f"{factor} ({reasons}); create them yourself (docs/operations.md lists their "
                            "settings) or set --replication-factor to what the cluster accepts")
        created = [s.name for s in missing]
        log.info("created topics %s with replication factor %d", ", ".join(created), factor)
        return created
    finally:
        await admin.close()


async def check_topics(settings: KafkaSettings, specs: Sequence[TopicSpec]) -> list[str]:
    """What contradicts the connector's needs in the existing topics, one sentence each.

    A missing topic is fine (the connector creates it). An event or checkpoint topic that is not
    compacted loses documents (or the position) to retention; one replicated below its
    ``min.insync.replicas`` refuses every acks=all write; a ``max.message.bytes`` below
    ``--max-message-bytes`` refuses the largest events.
    """
    problems: list[str] = []
    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    try:
        with kafka_errors(settings, "describe topics"):
            await admin.start()
            existing = set(await retrying(settings, admin.list_topics))
            names = [s.name for s in specs if s.name in existing]  # never name a missing one (auto-create)
            if not names:
                return []
            described = {t["topic"]: t for t in await retrying(settings, lambda: admin.describe_topics(names))}
            present = [s for s in specs if described.get(s.name, {}).get("partitions")]
            if not present:
                return []
            resources = [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in present]
            responses = await retrying(settings, lambda: admin.describe_configs(resources))
        configs: dict[str, dict[str, str]] = {}
        for response in responses:
            for resource in response.to_object()["resources"]:
                configs[resource["resource_name"]] = {e["config_names"]: e["config_value"]
                                                      for e in resource["config_entries"]}
        for spec in present:
            conf = configs.get(spec.name, {})
            replicas = min(len(p["replicas"]) for p in described[spec.name]["partitions"])
            problems += topic_problems(spec, conf, replicas)
    finally:
        await admin.close()
    return problems


def topic_problems(spec: TopicSpec, conf: dict[str, str], replicas: int) -> list[str]:
    """The rules of :func:`check_topics` for one topic's settings (pure, unit-tested)."""
    problems = []
    name = f"{spec.role} topic {spec.name}"
    policy = conf.get("cleanup.policy", "delete")
    if "compact" not in policy.split(","):
        problems.append(f"{name} has cleanup.policy={policy}: retention deletes "
                        f"{DOCUMENTS.get(spec.role, 'the position')}; "
                        f"kafka-configs.sh --alter --entity-type topics --entity-name {spec.name} "
                        "--add-config cleanup.policy=compact")
    min_isr = int(conf.get("min.insync.replicas") or 1)
    if replicas < min_isr:
        problems.append(f"{name} has {replicas} replica(s) but min.insync.replicas={min_isr}: every acks=all "
                        "write is refused; add replicas (kafka-reassign-partitions.sh) or lower "
                        "min.insync.replicas for the topic")
    if spec.max_message_bytes:
        limit = int(conf.get("max.message.bytes") or KAFKA_DEFAULT_MAX_MESSAGE_BYTES)
        if limit < spec.max_message_bytes:
            problems.append(f"{name} has max.message.bytes={limit}, below --max-message-bytes "
                            f"{spec.max_message_bytes}: Kafka refuses the largest events (exit 32); "
                            f"kafka-configs.sh --alter --entity-type topics --entity-name {spec.name} "
                            f"--add-config max.message.bytes={spec.max_message_bytes + FRAMING_ROOM}")
    return problems

