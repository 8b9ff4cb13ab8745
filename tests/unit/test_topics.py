"""What `wpcdc check` says of existing topics (cdc.kafka.topic_problems), without a broker."""

from __future__ import annotations

from cdc.kafka import (
    KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    checkpoint_topic_spec,
    event_topic_spec,
    topic_problems,
)

GOOD = {"cleanup.policy": "compact", "min.insync.replicas": "2", "max.message.bytes": "2000000"}


def test_a_fitting_topic_has_no_problem() -> None:
    assert topic_problems(event_topic_spec("e", 3, 900_000), GOOD, replicas=3) == []
    assert topic_problems(checkpoint_topic_spec("c"), GOOD | {"cleanup.policy": "compact,delete"}, 3) == []


def test_an_event_topic_that_deletes_is_named_with_the_fix() -> None:
    [problem] = topic_problems(event_topic_spec("e", 1, 900_000), GOOD | {"cleanup.policy": "delete"}, 3)
    assert "events topic e" in problem and "cleanup.policy=compact" in problem and "post documents" in problem


def test_a_checkpoint_topic_without_a_policy_is_delete_and_loses_the_position() -> None:
    conf = {k: v for k, v in GOOD.items() if k != "cleanup.policy"}
    [problem] = topic_problems(checkpoint_topic_spec("c"), conf, 3)
    assert "checkpoints topic c" in problem and "the position" in problem


def test_fewer_replicas_than_min_insync_refuses_writes() -> None:
    [problem] = topic_problems(checkpoint_topic_spec("c"), GOOD, replicas=1)
    assert "1 replica(s) but min.insync.replicas=2" in problem


def test_max_message_bytes_below_the_connectors_limit() -> None:
    spec = event_topic_spec("e", 1, 5_000_000)
    [problem] = topic_problems(spec, GOOD, 3)
    assert "max.message.bytes=2000000" in problem and "--max-message-bytes 5000000" in problem
    # an unset topic limit is Kafka's default, which a 900 kB limit fits
    assert topic_problems(event_topic_spec("e", 1, 900_000), {"cleanup.policy": "compact"}, 1) == []
    assert topic_problems(event_topic_spec("e", 1, KAFKA_DEFAULT_MAX_MESSAGE_BYTES + 1),
                          {"cleanup.policy": "compact"}, 1)


def test_new_event_topics_take_the_larger_limit_only_when_needed() -> None:
    assert "max.message.bytes" not in event_topic_spec("e", 1, 900_000).configs
    assert event_topic_spec("e", 1, 5_000_000).configs["max.message.bytes"] == str(5_000_000 + (64 << 10))
