"""``GET /openapi.json``: an OpenAPI 3.1 document of the app's real routes and pydantic models.

Paths come from the router itself and schemas from the models the handlers use, so the
document cannot describe a route that does not exist or a field the API does not send. Each
operation lists every status it answers: its own (:data:`OPERATIONS`) and the edge's, which
every route shares (:func:`_edge_answers`): ``400`` for a path, query or header the edge
refuses, ``401``/``403`` on ``/v1/``, ``413``/``422`` for a body posted there. The bearer
token (``Authorization``) is the ``bearer`` security scheme; ``Idempotency-Key`` is a header
parameter of every change. Links from a ``202`` to the routes that take its ids make the
document walkable (schemathesis's stateful phase follows them).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from alertcast import __version__
from alertcast.models import Incident, IncidentBase, Kind
from alertcast.operations import OPERATIONS, PROBLEM, REF, Content, Op
from alertcast.views import (
    AcceptedView,
    AccountList,
    AccountView,
    ApprovedView,
    CancelBody,
    DeliveryList,
    DeliveryView,
    FeedList,
    FeedPushView,
    FollowUpAccepted,
    HealthView,
    IncidentList,
    IncidentSummary,
    IncidentView,
    PreviewView,
    Problem,
    RecipientPage,
    RejectedView,
)

__all__ = ["OPERATIONS", "Op", "document"]

HEADERS = {
    302: {"Location": {"required": True, "schema": {"type": "string"}}},
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    503: {"Retry-After": {"required": False, "schema": {"type": "string"}}},
}
DESCRIPTIONS = {
    400: "Unreadable: a path, query parameter or header that is not storable UTF-8 text, "
    "malformed or too deeply nested JSON, or a query value out of range; errors name each",
    401: "Missing or unknown bearer token",
    403: "The token's role, kinds or regions do not allow this",
    409: "Contradicts what is stored (cancelled, already approved, a reused Idempotency-Key)",
    413: "Body over the configured limit",
    415: "Content-Type not accepted by this route",
    422: "Invalid: errors name every offending field by its dotted path",
    503: "Busy (Retry-After says when to try again), or a dependency is down",
}

MODELS: list[type[BaseModel]] = [
    AcceptedView,
    AccountList,
    AccountView,
    ApprovedView,
    CancelBody,
    DeliveryList,
    DeliveryView,
    FeedList,
    FeedPushView,
    FollowUpAccepted,
    HealthView,
    IncidentList,
    IncidentSummary,
    IncidentView,
    PreviewView,
    Problem,
    RecipientPage,
    RejectedView,
]


def _patch_schema() -> dict[str, Any]:
    """An update's body: any of the common fields, ``area`` and ``details`` merged one level
    deep over the incident's; the merged incident is validated as a whole (``422``)."""
    base = IncidentBase.model_json_schema(ref_template=REF)
    props = dict(base["properties"])
    props["area"] = {"type": "object", "description": "merged over the incident's area"}
    props["details"] = {"type": "object", "description": "merged over the incident's details"}
    props["kind"] = {"enum": [k.value for k in Kind], "description": "must stay as it is"}
    return {
        "title": "IncidentPatch",
        "type": "object",
        "properties": props,
        "additionalProperties": False,
    }


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    incident = TypeAdapter(Incident).json_schema(ref_template=REF)
    schemas.update(incident.pop("$defs", {}))
    schemas["Incident"] = incident
    for model in MODELS:
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["IncidentPatch"] = _patch_schema()
    return schemas


def _edge_answers(method: str, path: str) -> dict[int, Content]:
    """What the edge answers on every route before its handler runs."""
    answers = {400: PROBLEM}
    if path.startswith("/v1/"):
        answers |= {401: PROBLEM, 403: PROBLEM}
        if method == "POST":
            answers |= {413: PROBLEM, 422: PROBLEM}
    return answers


def _response(status: int, content: Content, links: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"description": DESCRIPTIONS.get(status, HTTPStatus(status).phrase)}
    if content:
        entry["content"] = content
    if status in HEADERS:
        entry["headers"] = HEADERS[status]
    if links and 200 <= status < 300:
        entry["links"] = dict(links)
    return entry


def _operation(method: str, path: str, op: Op) -> dict[str, Any]:
    answers = {**_edge_answers(method, path), **op.answers}
    out: dict[str, Any] = {
        "operationId": op.id,
        "summary": op.summary,
        "responses": {str(s): _response(s, answers[s], op.links) for s in sorted(answers)},
    }
    if path.startswith("/v1/"):
        out["security"] = [{"bearer": []}]
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    path_params = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]
    if path_params or op.params:
        out["parameters"] = [*path_params, *op.params]
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": op.body}
    return out


UNDOCUMENTED = Op("undocumented", "(undocumented)", {200: {}})


def document(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        op = OPERATIONS.get((route.method, path), UNDOCUMENTED)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route.method, path, op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "alertcast", "version": __version__},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
