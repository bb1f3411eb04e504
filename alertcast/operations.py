"""The routes' own part of the OpenAPI document: one :class:`Op` per route of the router.

Each lists what its handler answers (status, media type, schema by name), its request body,
query and header parameters, and the links from its answer to the routes that take its ids.
What the edge answers on every route (``400``, ``401``/``403``, ``413``/``422``) is added by
:mod:`alertcast.openapi`, which builds the document from these and the pydantic views.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alertcast.edge import IDEMPOTENCY_KEY_MAX
from alertcast.models import DeliveryState, Kind, Status

__all__ = ["OPERATIONS", "PROBLEM", "REF", "Content", "Op"]

REF = "#/components/schemas/{model}"
Content = dict[str, Any]  # media type -> media type object


def ref(name: str) -> dict[str, Any]:
    return {"schema": {"$ref": REF.format(model=name)}}


def of(name: str) -> Content:
    return {"application/json": ref(name)}


PROBLEM: Content = {"application/problem+json": ref("Problem")}
TEXT: Content = {"text/plain": {"schema": {"type": "string"}}}
CAP_XML = {"schema": {"type": "string", "description": "a CAP 1.2 <alert> document"}}
CAP_OUT: Content = {"application/cap+xml": CAP_XML}
EXAMPLE = {
    "kind": "earthquake",
    "severity": "severe",
    "headline": "四川甘孜州泸定县发生6.8级地震",
    "area": {"name": "四川省甘孜藏族自治州泸定县", "codes": ["513322"]},
    "occurred_at": "2022-09-05T12:52:18+08:00",
    "details": {
        "magnitude": 6.8,
        "depth_km": 16,
        "latitude": 29.59,
        "longitude": 102.08,
        "place": "四川甘孜州泸定县",
    },
}
INCIDENT_BODY: Content = {
    "application/json": {**ref("Incident"), "example": EXAMPLE},
    "application/cap+xml": CAP_XML,
    "application/xml": CAP_XML,
    "text/xml": CAP_XML,
}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def string(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


LIMIT = query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "at most this many")
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX},
    "description": "a replay with the same key and body answers the first answer again",
}
SIGNED = tuple(
    query(n, {"type": "string"}, f"WeChat's {n}") for n in ("signature", "timestamp", "nonce")
)


def link(operation: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation, "parameters": parameters}


ID = "$response.body#/id"
RAISED_LINKS = {
    "GetIncident": link("getIncident", id=ID),
    "UpdateIncident": link("updateIncident", id=ID),
    "CancelIncident": link("cancelIncident", id=ID),
    "ApproveIncident": link("approveIncident", id=ID),
    "RejectIncident": link("rejectIncident", id=ID),
    "PublicPage": link("publicPage", id=ID),
    "IncidentDeliveries": link("listDeliveries", incident_id=ID),
    "GetDelivery": link("getDelivery", id="$response.body#/deliveries/0/id"),
    "RetryDelivery": link("retryDelivery", id="$response.body#/deliveries/0/id"),
}
FOLLOW_UP_LINKS = {
    "GetMessage": link("getIncident", id=ID),
    "ApproveMessage": link("approveIncident", id=ID),
    "RejectMessage": link("rejectIncident", id=ID),
}


@dataclass(frozen=True)
class Op:
    """One route's own part of the document (the edge's answers are added to every route)."""

    id: str
    summary: str
    answers: Mapping[int, Content]
    body: Content | None = None
    params: tuple[dict[str, Any], ...] = ()
    links: Mapping[str, Any] = field(default_factory=dict)


def _door(id_: str, summary: str, ok: int, view: str, body: Content | None = None, **kw: Any) -> Op:
    """A change through the door: replayable by key, refused by scope, busy under contention."""
    answers = {ok: of(view), 404: PROBLEM, 409: PROBLEM, 503: PROBLEM}
    if body is not None:
        answers[415] = PROBLEM
    return Op(id_, summary, answers, body, (IDEMPOTENCY_KEY,), **kw)


UPDATE_BODY = {
    "application/json": {**ref("IncidentPatch"), "example": {"details": {"magnitude": 6.6}}}
}
CANCEL_BODY = {
    "application/json": {**ref("CancelBody"), "example": {"reason": "误报：已核实无震情"}}
}
REJECT_BODY = {
    "application/json": {**ref("CancelBody"), "example": {"reason": "震级有误，请按正式测定改写"}}
}
SSE_EVENT = {  # one event of the stream (comments such as ": keep-alive" are not events)
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "id": {"type": "string", "description": "the event's id (absent on shutdown)"},
        "event": {"type": "string", "description": "incident, delivery, gap, shutdown, ..."},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}
FEED_EVENT = {"schema": {"type": "object", "description": "a GeoJSON Feature, or a CENC row"}}
STATE = query(
    "state", {"type": "string", "enum": [s.value for s in DeliveryState]}, "deliveries in it"
)

HTML: Content = {"text/html": {"schema": {"type": "string"}}}
SIGN_IN_FORM: Content = {
    "application/x-www-form-urlencoded": {
        "schema": {
            "type": "object",
            "properties": {"token": {"type": "string"}, "csrf": {"type": "string"}},
            "required": ["token", "csrf"],
        }
    }
}
CSRF_FORM: Content = {
    "application/x-www-form-urlencoded": {
        "schema": {
            "type": "object",
            "properties": {"csrf": {"type": "string"}},
            "required": ["csrf"],
        }
    }
}


def _page(id_: str, summary: str, *extra: int) -> Op:
    """A console page (HTML, docs/console.md): 302 to sign-in without a session, 403 without
    the page's role."""
    return Op(
        id_, f"Console: {summary}", {200: HTML, 302: {}, 403: HTML, **dict.fromkeys(extra, HTML)}
    )


# The web console: HTML for people, not part of the JSON contract; listed so that every route
# is documented and fuzzed like the rest.
CONSOLE: dict[tuple[str, str], Op] = {
    ("GET", "/"): Op("consoleRoot", "The web console (redirects to /console/)", {302: {}}),
    ("GET", "/console/"): _page("consoleHome", "recent incidents"),
    ("GET", "/console/sign-in"): Op("consoleSignInForm", "Console: the sign-in form", {200: HTML}),
    ("POST", "/console/sign-in"): Op(
        "consoleSignIn",
        "Console: sign in with a token (sets the session cookie)",
        {303: {}, 401: HTML, 403: HTML, 413: PROBLEM},
        SIGN_IN_FORM,
    ),
    ("POST", "/console/sign-out"): Op(
        "consoleSignOut",
        "Console: end the session",
        {303: {}, 403: HTML, 413: PROBLEM},
        CSRF_FORM,
    ),
    ("GET", "/console/static/{name}"): Op(
        "consoleAsset",
        "Console: its script and stylesheet",
        {
            200: {
                "text/javascript": {"schema": {"type": "string"}},
                "text/css": {"schema": {"type": "string"}},
            },
            404: PROBLEM,
        },
    ),
    ("GET", "/console/compose"): _page("consoleCompose", "compose an incident"),
    ("GET", "/console/approvals"): _page("consoleApprovals", "messages awaiting approval"),
    ("GET", "/console/incidents/{id}"): _page("consoleIncident", "one incident, live", 404),
    ("GET", "/console/incidents/{id}/grid"): _page("consoleGrid", "an incident's grid", 404),
    ("GET", "/console/incidents/{id}/cancel-preview"): Op(
        "consoleCancelPreview",
        "Console: the cancellation's text on every account",
        {200: HTML, 302: {}, 403: HTML, 404: HTML},
        params=(query("reason", {"type": "string"}, "the reason the text carries"),),
    ),
    ("GET", "/console/accounts"): _page("consoleAccounts", "account health"),
    ("GET", "/console/feeds"): _page("consoleFeeds", "feed health"),
}

OPERATIONS: dict[tuple[str, str], Op] = {
    ("POST", "/v1/incidents"): Op(
        "raiseIncident",
        "Raise an incident (JSON or CAP 1.2)",
        {202: of("AcceptedView"), 409: PROBLEM, 415: PROBLEM, 503: PROBLEM},
        INCIDENT_BODY,
        (IDEMPOTENCY_KEY,),
        RAISED_LINKS,
    ),
    ("GET", "/v1/incidents"): Op(
        "listIncidents",
        "Recent incidents the token may read, newest first",
        {200: of("IncidentList")},
        params=(
            LIMIT,
            query("kind", string(f"one of {', '.join(Kind)}"), "incidents of this kind"),
            query("state", string("awaiting_approval, active or cancelled"), "in this state"),
            query("status", string(f"one of {', '.join(Status)}"), "of this status"),
        ),
    ),
    ("POST", "/v1/incidents/{id}/update"): _door(
        "updateIncident",
        "New facts for an incident, threaded to every account that got it",
        202,
        "FollowUpAccepted",
        UPDATE_BODY,
        links=FOLLOW_UP_LINKS,
    ),
    ("POST", "/v1/incidents/{id}/cancel"): _door(
        "cancelIncident",
        "Cancel an incident with a reason; withdraws what has not gone out",
        202,
        "FollowUpAccepted",
        CANCEL_BODY,
        links=FOLLOW_UP_LINKS,
    ),
    ("POST", "/v1/incidents/{id}/approve"): _door(
        "approveIncident", "Second-person approval of a message awaiting it", 200, "ApprovedView"
    ),
    ("POST", "/v1/incidents/{id}/reject"): _door(
        "rejectIncident",
        "Second-person rejection of a held message, with a reason: none of it goes out",
        200,
        "RejectedView",
        REJECT_BODY,
    ),
    ("GET", "/v1/incidents/{id}"): Op(
        "getIncident",
        "One incident with every delivery (Accept: application/cap+xml: its CAP 1.2)",
        {200: {**of("IncidentView"), **CAP_OUT}, 404: PROBLEM},
    ),
    ("GET", "/v1/incidents/{id}.cap"): Op(
        "getIncidentCap",
        "One message as CAP 1.2, references included",
        {200: CAP_OUT, 404: PROBLEM},
    ),
    ("GET", "/cap/{id}.xml"): Op(
        "publicCap",
        "A released, actual message as CAP 1.2, for everyone (what the Atom feed links)",
        {200: CAP_OUT, 404: PROBLEM},
    ),
    ("GET", "/cap/alerts.atom"): Op(
        "alertsAtom",
        "Atom feed of the active public alerts, each linking its CAP 1.2 message",
        {200: {"application/atom+xml": {"schema": {"type": "string"}}}},
    ),
    ("GET", "/v1/deliveries"): Op(
        "listDeliveries",
        "Deliveries the token may read, filterable by state, account and incident",
        {200: of("DeliveryList")},
        params=(
            STATE,
            query("account", {"type": "string"}, "to this account"),
            query("incident_id", {"type": "string"}, "of this message"),
            LIMIT,
        ),
    ),
    ("GET", "/v1/deliveries/{id}"): Op(
        "getDelivery", "One delivery with its attempts", {200: of("DeliveryView"), 404: PROBLEM}
    ),
    ("GET", "/v1/deliveries/{id}/recipients"): Op(
        "listDeliveryRecipients",
        "A per-recipient delivery's sends by recipient id, a page at a time (next: the after "
        "of the next page)",
        {200: of("RecipientPage"), 404: PROBLEM},
        params=(
            query(
                "state",
                {"type": "string", "enum": ["pending", "retrying", "delivered", "failed", "dead"]},
                "sends in it",
            ),
            query("after", {"type": "string", "maxLength": 128}, "recipient ids after this one"),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most this many"),
        ),
    ),
    ("POST", "/v1/deliveries/{id}/retry"): _door(
        "retryDelivery", "Re-drive a failed, dead or skipped delivery", 202, "DeliveryView"
    ),
    ("GET", "/v1/channels"): Op("listAccounts", "Per-account health", {200: of("AccountList")}),
    ("POST", "/v1/channels/{id}/pause"): Op(
        "pauseAccount",
        "Pause an account with a reason (kept across restarts, until resumed)",
        {200: of("AccountView"), 404: PROBLEM, 415: PROBLEM, 422: PROBLEM},
        {"application/json": {**ref("CancelBody"), "example": {"reason": "token rotation"}}},
    ),
    ("POST", "/v1/channels/{id}/resume"): Op(
        "resumeAccount", "Resume a paused account", {200: of("AccountView"), 404: PROBLEM}
    ),
    ("GET", "/v1/stream"): Op(
        "stream",
        "Server-sent events of state changes, each with an id; Last-Event-ID replays what was "
        "missed, or sends a gap event (never ends by itself)",
        {200: {"text/event-stream": {"schema": SSE_EVENT}}},
        params=(
            query("incident_id", {"type": "string"}, "only this incident's events"),
            {
                "name": "Last-Event-ID",
                "in": "header",
                "schema": {"type": "string", "pattern": "^ *[0-9]{0,20} *$"},
                "description": "the id of the last event seen: the stream replays what followed "
                "(empty: none, as a browser that has seen no id yet)",
            },
            query(
                "last_event_id",
                {"type": "string", "pattern": "^ *[0-9]{0,20} *$"},
                "as Last-Event-ID",
            ),
        ),
    ),
    ("POST", "/v1/render"): Op(
        "render",
        "Preview every payload without sending",
        {200: of("PreviewView"), 415: PROBLEM},
        INCIDENT_BODY,
        (query("account", {"type": "string"}, "only this account's payload"),),
    ),
    ("GET", "/wechat/{account}"): Op(
        "wechatHandshake",
        "WeChat server verification (echostr handshake)",
        {200: TEXT, 400: PROBLEM, 403: TEXT, 404: TEXT, 503: TEXT},
        params=(*SIGNED, query("echostr", {"type": "string"}, "echoed back when signed")),
    ),
    ("POST", "/wechat/{account}"): Op(
        "wechatMessage",
        "WeChat inbound messages: keyword auto-reply (XML)",
        {
            200: {**TEXT, "application/xml": {"schema": {"type": "string"}}},
            400: {**TEXT, **PROBLEM},
            403: TEXT,
            404: TEXT,
            413: TEXT,
            503: TEXT,
        },
        {
            "application/xml": {"schema": {"type": "string"}},
            "text/xml": {"schema": {"type": "string"}},
        },
        SIGNED,
    ),
    ("GET", "/p/{id}"): Op(
        "publicPage",
        "Public full text of a released incident (HTML; the link in every post)",
        {200: {"text/html": {"schema": {"type": "string"}}}, 302: {}, 404: PROBLEM},
    ),
    ("GET", "/v1/feeds"): Op(
        "listFeeds",
        "Feeds: polling health (last success, last error, events seen), pushes, decisions",
        {200: of("FeedList")},
    ),
    ("POST", "/v1/feeds/{name}/events"): Op(
        "pushFeedEvent",
        "Push one event to a feed's lifecycle: 202 when it changed an incident, 200 when not",
        {200: of("FeedPushView"), 202: of("FeedPushView"), 404: PROBLEM, 415: PROBLEM},
        {"application/json": FEED_EVENT, "application/geo+json": FEED_EVENT},
    ),
    **CONSOLE,
    ("GET", "/healthz"): Op(
        "health",
        "Liveness and store reachability",
        {200: of("HealthView"), 503: of("HealthView")},
    ),
    ("GET", "/metrics"): Op("metrics", "Prometheus metrics", {200: TEXT}),
    ("GET", "/openapi.json"): Op(
        "openapi", "This document", {200: {"application/json": {"schema": {"type": "object"}}}}
    ),
}
