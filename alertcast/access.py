"""Who may call which route: one table of route to role, enforced at the edge, tested whole.

Every authenticated route is in :data:`ROUTE_ROLES`; a route that is not refuses every token
(a new route is closed until it is given a role here). What a role may see and change within a
route is bound further by the issuer's kinds and regions, in the handlers and the planners.
"""

from __future__ import annotations

from collections.abc import Mapping

from alertcast.config import IssuerConfig, Role

__all__ = ["ROUTE_ROLES", "denied"]

ROUTE_ROLES: Mapping[tuple[str, str], Role] = {
    ("POST", "/v1/incidents"): "submit",
    ("POST", "/v1/incidents/{id}/update"): "submit",
    ("POST", "/v1/incidents/{id}/cancel"): "submit",
    ("POST", "/v1/incidents/{id}/approve"): "approve",
    ("POST", "/v1/incidents/{id}/reject"): "approve",
    ("POST", "/v1/render"): "submit",
    ("POST", "/v1/feeds/{name}/events"): "submit",
    ("POST", "/v1/deliveries/{id}/retry"): "operate",
    ("POST", "/v1/channels/{id}/pause"): "operate",
    ("POST", "/v1/channels/{id}/resume"): "operate",
    ("GET", "/v1/incidents"): "read",
    ("GET", "/v1/incidents/{id}"): "read",
    ("GET", "/v1/incidents/{id}.cap"): "read",
    ("GET", "/v1/deliveries"): "read",
    ("GET", "/v1/deliveries/{id}"): "read",
    ("GET", "/v1/deliveries/{id}/recipients"): "read",
    ("GET", "/v1/channels"): "read",
    ("GET", "/v1/stream"): "read",
    ("GET", "/v1/feeds"): "read",
}


def denied(issuer: IssuerConfig, method: str, route: str) -> str | None:
    """Why ``issuer`` may not call ``method route`` (a route template), or None when it may."""
    role = ROUTE_ROLES.get(("GET" if method == "HEAD" else method, route))
    if role is None:
        return f"{method} {route} is open to no role"
    if role not in issuer.granted:
        return f"issuer {issuer.name} lacks the {role} role ({method} {route})"
    return None
