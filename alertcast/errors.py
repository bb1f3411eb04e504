"""Domain errors: what the planners, the door and the feeds raise when a change cannot be made.

They know nothing of HTTP. The HTTP edge (``alertcast.app``) maps each to a status and an
``application/problem+json`` body; the feed tracker and the schedules log them as refusals;
the CLI prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

__all__ = [
    "Busy",
    "Conflict",
    "DomainError",
    "FieldError",
    "Forbidden",
    "Invalid",
    "NotFound",
    "invalid",
]

KIND_TAGS = frozenset({"earthquake", "fire", "police", "weather", "general"})


class DomainError(Exception):
    """A change that cannot be made, with a reason a person can act on."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """The incident, delivery or account named does not exist."""


class Conflict(DomainError):
    """The request contradicts what is stored (already cancelled, a reused idempotency key)."""


class Forbidden(DomainError):
    """Who asks may not make this change (scope, the two-person rule, ``can_approve``)."""


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class Invalid(DomainError):
    """The request is malformed; ``errors`` name the offending fields (dotted paths)."""

    def __init__(self, detail: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(detail)
        self.errors = tuple(errors)


class Busy(DomainError):
    """Not now: the state kept changing under the request; try again after ``retry_after_s``."""

    def __init__(self, detail: str, retry_after_s: float = 1.0) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic's errors as dotted field paths (the incident's ``kind`` tag dropped)."""
    out = []
    for err in exc.errors():
        loc = list(err["loc"])
        if len(loc) > 1 and loc[0] in KIND_TAGS:
            loc = loc[1:]
        out.append(FieldError(".".join(str(p) for p in loc) or "(body)", err["msg"]))
    return out


def invalid(exc: ValidationError, what: str = "incident") -> Invalid:
    """A pydantic validation error as :class:`Invalid`, every field named in the detail."""
    errors = field_errors(exc)
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return Invalid(f"invalid {what}: {detail}", errors)
