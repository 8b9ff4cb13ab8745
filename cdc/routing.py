"""Which topic a post's events go to: ``--topic`` as a template.

A multisite network or a shop with products beside posts can give each consumer its own topic:
``--topic 'wpcdc.{name}.{blog_id}.{post_type}'``. The key stays ``{blog_id}:{post_id}``, so one
post's events stay in one partition of one topic, in order, as long as the post keeps its type.

When a post changes type (a post turned into a page, a product into a draft post type), its
events move: the change that moves it writes a tombstone for the key in the old topic, then the
event in the new one, in the same Kafka transaction, so the old topic's compaction forgets the
post exactly when the new topic learns it. Topics are created as they are first needed.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import replace

from cdc.encode import Record, tombstone_headers
from cdc.errors import ConfigError
from cdc.events import PostEvent

FIELDS = ("name", "blog_id", "post_type")
UNKNOWN_TYPE = "unknown"  # a post whose type no row told (never expected; keeps routing total)
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


class TopicRouter:
    """Resolves the topic template of one connector (``{name}`` is filled in at once)."""

    def __init__(self, template: str, name: str) -> None:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        unknown = fields - set(FIELDS)
        if unknown:
            raise ConfigError(f"--topic {template!r}: unknown placeholder {{{sorted(unknown)[0]}}}; "
                              "use {name}, {blog_id} and {post_type}")
        self.template = template.replace("{name}", name)
        self.static = not (fields - {"name"})
        sample = self.template.format(blog_id=1, post_type="post")
        if template and not _TOPIC.fullmatch(sample):  # "": not set (settings built in code)
            raise ConfigError(f"--topic {template!r}: a Kafka topic name takes letters, digits, '.', '_' "
                              "and '-' only (up to 249)")

    def topic(self, blog_id: int, post_type: str | None) -> str:
        if self.static:
            return self.template
        return self.template.format(blog_id=blog_id, post_type=post_type or UNKNOWN_TYPE)

    def pattern(self) -> re.Pattern[str]:
        """What the names of this connector's event topics look like (for status and check)."""
        parts = re.split(r"(\{blog_id\}|\{post_type\})", self.template)
        regex = "".join(r"\d+" if p == "{blog_id}" else r"[A-Za-z0-9_-]+" if p == "{post_type}" else re.escape(p)
                        for p in parts)
        return re.compile(regex)

    def route(self, event: PostEvent, records: Sequence[Record]) -> list[Record]:
        """``records`` (one event's) with their topic; a tombstone in the old topic first when the
        change moved the post to another type's topic."""
        topic = self.topic(event.blog_id, event.post_type)
        routed = [replace(r, topic=topic) for r in records]
        if self.static or event.before is None or event.after is None:
            return routed
        old = self.topic(event.blog_id, event.before.get("post_type"))
        if old == topic:
            return routed
        moved = replace(event, post_type=event.before.get("post_type"))
        return [Record(routed[0].topic_key, None, tombstone_headers(moved), topic=old), *routed]
