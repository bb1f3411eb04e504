"""Record mappers: a store row's columns, INSERT, params and row -> dataclass, derived once.

Each :class:`Record` reads its dataclass's fields (:func:`dataclasses.fields`) in order: the
column list (a field's own name unless renamed), the ``INSERT`` statement (``?``
placeholders), the params tuple of an instance and the instance of a fetched row. Only the
fields whose column type differs from the Python value name a conversion: JSON stored as
text, enums stored by value, numbers an engine may hand back as another type (an integer
from SQLite's affinity, a PostgreSQL numeric) made ``float``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, fields
from typing import Any, Generic, TypeVar

from alertcast.models import DeliveryState
from alertcast.store.base import (
    AccountState,
    AttemptRow,
    AuditRow,
    DeliveryRow,
    FeedEventRow,
    IdempotencyRecord,
    IncidentRow,
)

__all__ = [
    "ACCOUNT_STATE",
    "ATTEMPT",
    "AUDIT",
    "DELIVERY",
    "FEED_EVENT",
    "IDEMPOTENCY",
    "INCIDENT",
    "Record",
    "dumps",
]

T = TypeVar("T")
Convert = Callable[[Any], Any]


def dumps(value: Any) -> str:
    """JSON text as every engine stores it: compact, keys sorted, UTF-8 left as it is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def to_json(value: Any) -> str:
    return dumps(
        dict(value) if isinstance(value, Mapping) and not isinstance(value, dict) else value
    )


def to_json_or_none(value: Any) -> str | None:
    return None if value is None else to_json(value)


def from_json_or_none(value: Any) -> Any:
    return json.loads(value) if value else None


_PAYLOADS: dict[str, Any] = {}  # JSON text -> its value, the last _PAYLOADS_MOST read
_PAYLOADS_MOST = 64
_PAYLOADS_LOCK = threading.Lock()


def shared_json(text: str) -> Any:
    """``json.loads(text)``, one value for rows holding the same text (the payload every
    alike account of an incident shares): decoded once, and the same object, so that what is
    derived from it (a channel's encoded body) is derived once too. Payloads are never
    changed in place (channels and views copy what they add to), so sharing one is safe."""
    value = _PAYLOADS.get(text)
    if value is None:
        value = json.loads(text)
        with _PAYLOADS_LOCK:  # rows are read on the engines' threads as well as the loop's
            if len(_PAYLOADS) >= _PAYLOADS_MOST:
                del _PAYLOADS[next(iter(_PAYLOADS))]
            _PAYLOADS[text] = value
    return value


def float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def enum_value(value: Any) -> Any:
    return value.value


class Record(Generic[T]):
    """The mapping of dataclass ``cls`` onto ``table``; ``extra`` columns follow the fields in
    :attr:`insert` (values the row does not hold, given to :meth:`params` after its own).

    The accessors are compiled once per record (as :mod:`dataclasses` compiles ``__init__``):
    a params tuple or a row's dataclass costs what the hand-written tuple did.
    """

    def __init__(
        self,
        cls: type[T],
        table: str,
        *,
        columns: Mapping[str, str] | None = None,
        to_db: Mapping[str, Convert] | None = None,
        from_db: Mapping[str, Convert] | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        found = fields(cls)  # type: ignore[arg-type]
        renamed, back = columns or {}, from_db or {}
        self.cls, self.table = cls, table
        self._names = tuple(f.name for f in found)
        self._defaults = {f.name: f.default for f in found if f.default is not MISSING}
        self._out = dict(to_db or {})
        self.columns = tuple(renamed.get(n, n) for n in self._names)
        every = (*self.columns, *extra)
        self.insert = (
            f"INSERT INTO {table} ({', '.join(every)}) VALUES ({', '.join('?' * len(every))})"
        )
        self._params = self._compile_params({n: f"row.{n}" for n in self._names}, "row")
        env = {"cls": cls, **{f"b_{n}": back[n] for n in self._names if n in back}}
        args = [
            f"b_{n}(r[{c!r}])" if n in back else f"r[{c!r}]"
            for n, c in zip(self._names, self.columns, strict=True)
        ]
        self.from_row: Callable[[Any], T] = _compile(
            "from_row", "r", f"cls({', '.join(args)})", env
        )
        self._made: dict[tuple[type, frozenset[str]], tuple[Any, Any]] = {}

    def params(
        self, row: T, *extra: Any, shared: dict[tuple[str, int], Any] | None = None
    ) -> tuple[Any, ...]:
        """The :attr:`insert` params of ``row``; ``shared`` converts a JSON value many rows
        hold (one payload for every account) once, by the object's id, for one batch."""
        return self._params(row, extra, shared)  # type: ignore[no-any-return]

    def params_of(
        self,
        source: object,
        given: Mapping[str, Any],
        *extra: Any,
        shared: dict[tuple[str, int], Any] | None = None,
    ) -> tuple[Any, ...]:
        """The :attr:`insert` params of the row made of ``source``'s attributes of the same
        names, ``given`` taking precedence and the dataclass's defaults filling the rest (a
        new row stored without building its dataclass: a new delivery as it is stored)."""
        return self._made_of(type(source), given)[0](source, given, extra, shared)  # type: ignore[no-any-return]

    def build(self, source: object, given: Mapping[str, Any]) -> T:
        """The dataclass of the row :meth:`params_of` stores."""
        return self._made_of(type(source), given)[1](source, given)  # type: ignore[no-any-return]

    def _made_of(self, source: type, given: Mapping[str, Any]) -> tuple[Any, Any]:
        key = (source, frozenset(given))
        made = self._made.get(key)
        if made is None:
            exprs = self._sources(source, key[1])
            env = {"cls": self.cls, "defaults": self._defaults}
            init = _compile("build", "s, g", f"cls({', '.join(exprs.values())})", env)
            made = self._made[key] = (self._compile_params(exprs, "s, g"), init)
        return made

    def _sources(self, source: type, given: frozenset[str]) -> dict[str, str]:
        """Per field, where its value comes from: ``given``, the source, or the default."""
        known = {f.name for f in fields(source)}
        exprs: dict[str, str] = {}
        for name in self._names:
            if name in given:
                exprs[name] = f"g[{name!r}]"
            elif name in known:
                exprs[name] = f"s.{name}"
            elif name in self._defaults:
                exprs[name] = f"defaults[{name!r}]"
            else:
                raise TypeError(f"{self.cls.__name__}.{name}: neither given nor on {source}")
        return exprs

    def _compile_params(self, exprs: Mapping[str, str], args: str) -> Callable[..., Any]:
        env: dict[str, Any] = {"defaults": self._defaults, "share": _share}
        values = []
        for name, expr in exprs.items():
            if name not in self._out:
                values.append(expr)
                continue
            env[f"c_{name}"] = self._out[name]
            shareable = self._out[name] in (to_json, to_json_or_none)
            values.append(
                f"share(shared, {name!r}, {expr}, c_{name})" if shareable else f"c_{name}({expr})"
            )
        return _compile("params", f"{args}, extra, shared", f"({', '.join(values)},) + extra", env)


def _share(
    shared: dict[tuple[str, int], Any] | None, name: str, value: Any, convert: Convert
) -> Any:
    """``convert(value)``, once per object for one batch when ``shared`` is given."""
    if shared is None or value is None:
        return convert(value)
    key = (name, id(value))
    done = shared.get(key)
    return done if done is not None else shared.setdefault(key, convert(value))


def _compile(name: str, args: str, body: str, env: dict[str, Any]) -> Callable[..., Any]:
    """``def name(args): return body`` over ``env`` (the accessors of a record)."""
    scope: dict[str, Any] = {}
    exec(f"def {name}({args}):\n    return {body}\n", env, scope)  # our own text, built above
    return scope[name]  # type: ignore[no-any-return]


INCIDENT = Record(
    IncidentRow,
    "incidents",
    columns={"references": "refs"},
    to_db={"body": to_json},
    from_db={"body": json.loads},
)

DELIVERY = Record(
    DeliveryRow,
    "deliveries",
    to_db={"state": enum_value, "payload": to_json, "progress": to_json_or_none},
    from_db={"state": DeliveryState, "payload": shared_json, "progress": from_json_or_none},
    extra=("claimed_by", "lease_until"),
)

ATTEMPT = Record(AttemptRow, "attempts")

AUDIT = Record(AuditRow, "audit", to_db={"detail": to_json}, from_db={"detail": json.loads})

IDEMPOTENCY = Record(
    IdempotencyRecord,
    "idempotency_keys",
    to_db={"response": to_json},
    from_db={"response": json.loads},
)

ACCOUNT_STATE = Record(
    AccountState,
    "account_state",
    from_db={
        "paused_until": float_or_none,
        "updated_at": float,
        "correction_failed_at": float_or_none,
    },
)

FEED_EVENT = Record(  # written by feed_sql's own statements (versions), read through this one
    FeedEventRow,
    "feed_events",
    from_db={
        "known": json.loads,
        "ids": lambda v: tuple(json.loads(v)),
        "event_time": float,
        "live": bool,
        "pending": lambda v: None if v is None else json.loads(v),
        "version": int,
        "updated_at": float,
    },
)
