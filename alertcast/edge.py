"""The edge's first look at a request: what no later layer could read or store is refused here.

Two middlewares, one on each side of authentication:

- :func:`vet_request` (before it): every path parameter and query parameter, and every header
  alertcast reads (``Authorization``, ``Idempotency-Key``, ``Content-Type``), is text both
  stores can hold — valid UTF-8, no NUL (PostgreSQL's ``text`` refuses U+0000 and lone
  surrogates cannot be encoded at all). ``/p/%00`` is a ``400`` naming ``id``, on any engine.
- :func:`vet_body` (after it): a JSON body posted to ``/v1/`` is UTF-8, standard JSON (no
  ``NaN``), nested at most :data:`MAX_DEPTH` levels (checked before parsing, so nothing
  recurses on it), and every key and string in it is storable text; the parsed value is kept
  for the handler (:func:`json_body`).

A refusal is :class:`BadRequest` (``400``) or, for a string inside a well-formed body,
:class:`~alertcast.errors.Invalid` (``422``); both name the field, and nothing is stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from aiohttp import web

from alertcast.errors import DomainError, FieldError, Invalid

__all__ = [
    "IDEMPOTENCY_KEY_MAX",
    "MAX_DEPTH",
    "READ_HEADERS",
    "BadRequest",
    "fault",
    "json_body",
    "parse_json",
    "vet_body",
    "vet_request",
]

MAX_DEPTH = 32  # an incident needs 4 (area.polygon[i][j]); a GeoJSON feature about 5
IDEMPOTENCY_KEY_MAX = 200
READ_HEADERS = ("Authorization", "Idempotency-Key", "Content-Type")
MAX_FIELD_ERRORS = 20
JSON_BODY: web.RequestKey[Any] = web.RequestKey("json_body")

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# JSON strings (skipped whole, escapes included) or one bracket: all the depth scan looks at.
_STRUCTURE = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', re.DOTALL)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(DomainError):
    """``400``: a path, query parameter, header or body that cannot be read; ``errors`` name it."""

    def __init__(self, detail: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(detail)
        self.errors = tuple(errors)


def fault(text: str) -> str | None:
    """Why ``text`` cannot be stored as text, or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (U+0000), which text cannot hold"
    return "is not valid UTF-8 text (a lone surrogate, or bytes that are not UTF-8)"


def _refuse(errors: list[FieldError]) -> None:
    if errors:
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        raise BadRequest(f"unreadable request: {detail}", errors[:MAX_FIELD_ERRORS])


def _path_errors(request: web.Request) -> Iterator[FieldError]:
    for name, value in request.match_info.items():
        if why := fault(value):
            yield FieldError(name, why)
    if not request.match_info and (why := fault(request.path)):
        yield FieldError("(path)", why)


def _query_errors(request: web.Request) -> Iterator[FieldError]:
    for name, value in request.query.items():
        if why := fault(name):
            yield FieldError("(query)", f"a parameter name {why}")
        elif why := fault(value):
            yield FieldError(name, why)


def _header_errors(request: web.Request) -> Iterator[FieldError]:
    for name in READ_HEADERS:
        for value in request.headers.getall(name, ()):
            if why := fault(value):
                yield FieldError(name, why)
            elif name == "Idempotency-Key" and len(value.strip()) > IDEMPOTENCY_KEY_MAX:
                yield FieldError(name, f"is longer than {IDEMPOTENCY_KEY_MAX} characters")


@web.middleware
async def vet_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a path, query or read header that is not storable text (before authentication)."""
    _refuse([*_path_errors(request), *_query_errors(request), *_header_errors(request)])
    return await handler(request)


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _takes_json(request: web.Request) -> bool:
    """A POST to the API with a JSON body (public routes take none; GETs read none)."""
    return (
        request.method == "POST"
        and request.path.startswith("/v1/")
        and request.body_exists
        and _is_json(request.content_type)
    )


@web.middleware
async def vet_body(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Parse and vet a JSON body once, before any handler reads it (after authentication)."""
    if _takes_json(request):
        request[JSON_BODY] = parse_json(await request.read())
    return await handler(request)


async def json_body(request: web.Request) -> Any:
    """The request's JSON body, vetted (parsed here when :func:`vet_body` did not run)."""
    if JSON_BODY not in request:
        request[JSON_BODY] = parse_json(await request.read())
    return request[JSON_BODY]


def parse_json(body: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Strict JSON: UTF-8, no ``NaN``/``Infinity``, at most ``max_depth`` deep, storable text."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _not_json(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if _deeper_than(text, max_depth):
        raise _not_json(f"nested deeper than {max_depth} levels")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise _not_json(str(exc)) from None
    errors = list(_string_faults(data, ()))[:MAX_FIELD_ERRORS]
    if errors:
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        raise Invalid(f"invalid body: {detail}", errors)
    return data


def _not_json(why: str) -> BadRequest:
    return BadRequest(f"the body is not JSON (malformed JSON: {why})", [FieldError("(body)", why)])


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _deeper_than(text: str, limit: int) -> bool:
    depth = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def _string_faults(value: Any, path: tuple[str, ...]) -> Iterator[FieldError]:
    """Every key or string that cannot be stored, by its dotted path (depth already bounded)."""
    if isinstance(value, str):
        if why := fault(value):
            yield FieldError(".".join(path) or "(body)", why)
    elif isinstance(value, dict):
        for key, item in value.items():
            if why := fault(key):
                yield FieldError(".".join(path) or "(body)", f"a key {why}")
            else:
                yield from _string_faults(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_faults(item, (*path, str(index)))
