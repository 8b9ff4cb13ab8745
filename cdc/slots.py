"""Frozen slotted dataclasses built on the hot path without their ``__init__``.

A frozen dataclass's ``__init__`` sets each field with ``object.__setattr__`` (the frozen
``__setattr__`` refuses the plain way): a call per field, about 7 us for a 22-field PostEvent
against 2 us through the slots' own descriptors. A connector makes one PostChange, SourceInfo,
PostEvent and Record per event and one RowChange per row, so the constructor is a measurable
share of a backfill's CPU (a few percent, docs/performance.md). :func:`constructor` gives a
function with the class's own signature (fields in order, by position or by name, with their
defaults) that sets the slots directly; the objects are the same, ``==`` and all.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")


def constructor(cls: type[T]) -> Callable[..., T]:
    """``cls(...)`` without its ``__init__``; ``cls`` itself where that would not be the same
    object or the same signature: a field without a slot of the class's own (no slots, or
    inherited fields), a ``__post_init__``, a field with a default factory, left out of
    ``__init__`` or keyword-only."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    own = cls.__dict__
    if (hasattr(cls, "__post_init__")
            or any(not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING
                   or not isinstance(own.get(f.name), types.MemberDescriptorType) for f in fields)):
        return cls
    env: dict[str, Any] = {"_wpcdc_new": object.__new__, "_wpcdc_cls": cls}
    params, body = [], []
    for i, f in enumerate(fields):
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            env[f"_wpcdc_d{i}"] = f.default
            params.append(f"{f.name}=_wpcdc_d{i}")
        env[f"_wpcdc_s{i}"] = cls.__dict__[f.name].__set__
        body.append(f"    _wpcdc_s{i}(_wpcdc_o, {f.name})\n")
    src = (f"def make({', '.join(params)}):\n    _wpcdc_o = _wpcdc_new(_wpcdc_cls)\n"
           + "".join(body) + "    return _wpcdc_o\n")
    exec(compile(src, f"<wpcdc constructor {cls.__name__}>", "exec"), env)  # noqa: S102
    return cast(Callable[..., T], env["make"])
