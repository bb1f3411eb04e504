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
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
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


def float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def enum_value(value: Any) -> Any:
    return value.value


class Record(Generic[T]):
    """The mapping of dataclass ``cls`` onto ``table``; ``extra`` columns follow the fields in
    :attr:`insert` (values the row does not hold, given to :meth:`params` after its own)."""

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
        names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
        renamed, out, back = columns or {}, to_db or {}, from_db or {}
        self.cls, self.table = cls, table
        self.columns = tuple(renamed.get(n, n) for n in names)
        self._get = operator.attrgetter(*names)
        self._out = tuple((i, out[n]) for i, n in enumerate(names) if n in out)
        self._json = frozenset(i for i, c in self._out if c in (to_json, to_json_or_none))
        self._back = tuple((c, back.get(n)) for n, c in zip(names, self.columns, strict=True))
        every = (*self.columns, *extra)
        self.insert = (
            f"INSERT INTO {table} ({', '.join(every)}) VALUES ({', '.join('?' * len(every))})"
        )

    def params(
        self, row: T, *extra: Any, shared: dict[tuple[int, int], Any] | None = None
    ) -> tuple[Any, ...]:
        """The :attr:`insert` params of ``row``; ``shared`` converts a JSON value many rows
        hold (one payload for every account) once, by the object's id, for one batch."""
        values = list(self._get(row))
        for i, convert in self._out:
            if shared is not None and i in self._json:
                key = (i, id(values[i]))
                done = shared.get(key)
                values[i] = done if done is not None else shared.setdefault(key, convert(values[i]))
            else:
                values[i] = convert(values[i])
        return (*values, *extra)

    def from_row(self, r: Any) -> T:
        """The dataclass of a fetched row (any row that can be indexed by column name)."""
        return self.cls(*[r[c] if back is None else back(r[c]) for c, back in self._back])


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
    from_db={"state": DeliveryState, "payload": json.loads, "progress": from_json_or_none},
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
    from_db={"paused_until": float_or_none, "updated_at": float},
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
