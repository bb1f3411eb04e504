"""``GET /openapi.json``: an OpenAPI 3.1 document of the app's real routes and pydantic models.

Paths come from the router itself and schemas from the models the handlers use, so the
document cannot describe a route that does not exist or a field the API does not send.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from alertcast import __version__
from alertcast.models import Incident
from alertcast.views import (
    AcceptedView,
    CancelBody,
    DeliveryView,
    IncidentSummary,
    IncidentView,
    Problem,
)

__all__ = ["document"]

REF = "#/components/schemas/{model}"

# (method, path) -> (summary, request schema name, {status: response schema name})
OPERATIONS: dict[tuple[str, str], tuple[str, str | None, dict[int, str | None]]] = {
    ("POST", "/v1/incidents"): (
        "Raise an incident (JSON or CAP 1.2)",
        "Incident",
        {
            202: "AcceptedView",
            401: "Problem",
            403: "Problem",
            409: "Problem",
            413: "Problem",
            415: "Problem",
            422: "Problem",
        },
    ),
    ("GET", "/v1/incidents"): ("Recent incidents", None, {200: "IncidentList"}),
    ("POST", "/v1/incidents/{id}/update"): (
        "New facts for an incident, threaded to every account that got it",
        None,
        {202: "AcceptedView", 404: "Problem", 409: "Problem", 422: "Problem", 503: "Problem"},
    ),
    ("POST", "/v1/incidents/{id}/cancel"): (
        "Cancel an incident with a reason; withdraws what has not gone out",
        "CancelBody",
        {202: "AcceptedView", 404: "Problem", 409: "Problem", 422: "Problem", 503: "Problem"},
    ),
    ("POST", "/v1/incidents/{id}/approve"): (
        "Second-person approval of an incident awaiting approval",
        None,
        {200: None, 403: "Problem", 404: "Problem", 409: "Problem"},
    ),
    ("GET", "/v1/incidents/{id}"): (
        "One incident with every delivery",
        None,
        {200: "IncidentView", 404: "Problem"},
    ),
    ("GET", "/v1/deliveries"): (
        "Deliveries, filterable by state/account/incident",
        None,
        {200: "DeliveryList", 400: "Problem"},
    ),
    ("GET", "/v1/deliveries/{id}"): (
        "One delivery with its attempts",
        None,
        {200: "DeliveryView", 404: "Problem"},
    ),
    ("POST", "/v1/deliveries/{id}/retry"): (
        "Re-drive a failed, dead or skipped delivery",
        None,
        {202: "DeliveryView", 404: "Problem", 409: "Problem"},
    ),
    ("GET", "/v1/channels"): ("Per-account health", None, {200: None}),
    ("POST", "/v1/channels/{id}/resume"): (
        "Resume a paused account",
        None,
        {200: None, 404: "Problem"},
    ),
    ("GET", "/v1/stream"): ("Server-sent events of state changes", None, {200: None}),
    ("POST", "/v1/render"): (
        "Preview every payload without sending",
        "Incident",
        {200: None, 422: "Problem"},
    ),
    ("GET", "/wechat/{account}"): (
        "WeChat server verification (echostr handshake)",
        None,
        {200: None, 403: None},
    ),
    ("POST", "/wechat/{account}"): (
        "WeChat inbound messages: keyword auto-reply (XML)",
        None,
        {200: None, 400: None, 403: None, 413: None},
    ),
    ("GET", "/p/{id}"): (
        "Public full text of an incident (HTML; the link in every post)",
        None,
        {200: None, 302: None, 404: None},
    ),
    ("GET", "/v1/feeds"): (
        "Feeds: polling health (last success, last error, events seen), pushes, decisions",
        None,
        {200: None},
    ),
    ("POST", "/v1/feeds/{name}/events"): (
        "Push one event (a GeoJSON Feature, or a CENC row) to a feed's lifecycle",
        None,
        {
            200: None,
            202: None,
            400: "Problem",
            401: "Problem",
            403: "Problem",
            404: "Problem",
            413: "Problem",
            415: "Problem",
        },
    ),
    ("GET", "/healthz"): ("Liveness and store reachability", None, {200: None, 503: None}),
    ("GET", "/metrics"): ("Prometheus metrics", None, {200: None}),
    ("GET", "/openapi.json"): ("This document", None, {200: None}),
}


class IncidentList(BaseModel):
    incidents: list[IncidentSummary]


class DeliveryList(BaseModel):
    deliveries: list[DeliveryView]


MODELS: list[type[BaseModel]] = [
    AcceptedView,
    CancelBody,
    DeliveryView,
    IncidentView,
    IncidentSummary,
    Problem,
    IncidentList,
    DeliveryList,
]


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    incident = TypeAdapter(Incident).json_schema(ref_template=REF)
    schemas.update(incident.pop("$defs", {}))
    schemas["Incident"] = incident
    for model in MODELS:
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _operation(method: str, path: str) -> dict[str, Any]:
    summary, request, responses = OPERATIONS.get(
        (method, path), ("(undocumented)", None, {200: None})
    )
    op: dict[str, Any] = {"summary": summary, "responses": {}}
    if path.startswith("/v1/"):
        op["security"] = [{"bearer": []}]
    names = re.findall(r"{(\w+)}", path)
    if names:
        op["parameters"] = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
        ]
    if request:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=request)}}},
        }
    for status, name in responses.items():
        media = "application/problem+json" if name == "Problem" else "application/json"
        entry: dict[str, Any] = {"description": str(status)}
        if name:
            entry["content"] = {media: {"schema": {"$ref": REF.format(model=name)}}}
        op["responses"][str(status)] = entry
    return op


def document(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        paths.setdefault(path, {})[route.method.lower()] = _operation(route.method, path)
    return {
        "openapi": "3.1.0",
        "info": {"title": "alertcast", "version": __version__},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
