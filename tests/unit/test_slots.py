"""cdc/slots.py: the hot path's constructors build exactly what the dataclasses' own build."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import pytest

from cdc.encode import Record
from cdc.events import PostEvent, SourceInfo
from cdc.model import MetaDelta, PostChange, RowChange, TxnRef
from cdc.permalinks import Link
from cdc.position import Position
from cdc.slots import constructor
from cdc.source import fastpath
from cdc.wordpress import TableKind, WpTable

POS = Position("mariadb-bin.000001", 4)
SOURCE = SourceInfo(connector="c", database="d", server_id=1, file="f", pos=1, gtid="0-1-2", ts_ms=1,
                    first_file="f", first_pos=1, rows=3, snapshot=True)

CASES: list[tuple[type, dict[str, Any]]] = [
    (SourceInfo, {f.name: getattr(SOURCE, f.name) for f in fields(SourceInfo)}),
    (PostEvent, {"op": "snapshot", "action": "snapshot", "blog_id": 2, "post_id": 7, "post_type": "page", "seq": 5,
                 "source": SOURCE, "ts_ms": 9, "before": None, "after": {"ID": 7}, "changed_fields": ("a",),
                 "status_before": None, "status_after": "publish", "meta": ({"meta_id": 1},),
                 "link_before": Link("x", "/x"), "row_written": True}),  # the rest: defaults
    (PostChange, {"blog_id": 1, "post_id": 2, "inserted": False, "deleted": False, "before": None,
                  "after": {"ID": 2}, "row_known": True, "posts_row_changed": False,
                  "meta": (MetaDelta(1, "k", None, "v", "add"),), "terms_added": (), "terms_removed": (),
                  "revisions": (), "first_pos": POS, "last_pos": POS, "gtid": None, "ts": 0, "rows": 2}),
    (Record, {"topic_key": b"1:2", "value": None}),
    (Record, {"topic_key": b"1:2", "value": b"{}", "headers": (("h", b"v"),), "topic": "t", "truncated": True}),
    (MetaDelta, {"meta_id": 2**63, "key": None, "before": None, "after": b"\xff", "op": "add"}),
    (RowChange, {"table": WpTable(TableKind.POSTS, 1), "op": "insert", "before": None, "after": {"ID": 1},
                 "position": POS, "txn": TxnRef(POS, None, None), "ts": 3}),
]


@pytest.mark.parametrize(("cls", "kwargs"), CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_the_same_object_by_name_and_by_position(cls: type, kwargs: dict[str, Any]) -> None:
    make = constructor(cls)
    assert make is not cls  # these are the hot path's: they must take the fast way
    want = cls(**kwargs)
    by_name = make(**kwargs)
    by_position = make(*(getattr(want, f.name) for f in fields(cls)))
    for made in (by_name, by_position):
        assert type(made) is cls and made == want and repr(made) == repr(want)
        try:
            assert hash(made) == hash(want)
        except TypeError:  # a dict in a field: neither hashes
            pass
        assert all(getattr(made, f.name) is getattr(want, f.name) for f in fields(cls))


def test_a_missing_or_unknown_field_is_refused_as_by_the_class() -> None:
    make = constructor(Record)
    with pytest.raises(TypeError):
        make(topic_key=b"k")  # value has no default
    with pytest.raises(TypeError):
        make(b"k", None, nonsense=1)


def test_classes_it_cannot_build_the_same_get_their_own_constructor() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = field(default_factory=list)

    @dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("negative")

    @dataclass(frozen=True, slots=True)
    class Hidden:
        a: int
        b: int = field(default=0, init=False)

    @dataclass(frozen=True, slots=True)
    class Base:
        a: int

    @dataclass(frozen=True, slots=True)
    class Derived(Base):  # ``a``'s slot is Base's
        b: int

    @dataclass(frozen=True, slots=True, kw_only=True)
    class KeywordOnly:
        a: int = 0
        b: int

    for cls in (NoSlots, Factory, Checked, Hidden, Derived, KeywordOnly):
        assert constructor(cls) is cls
    assert constructor(Base) is not Base


def test_fastpath_maker_refuses_fields_listed_wrong() -> None:
    with pytest.raises(TypeError, match="fields"):
        fastpath.maker(MetaDelta, ("meta_id", "key", "after", "before", "op"))
