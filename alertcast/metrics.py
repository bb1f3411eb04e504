"""Prometheus metrics, named once here (``GET /metrics`` exposes the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["ATTEMPT_SECONDS", "DELIVERIES", "INCIDENTS", "INFLIGHT", "REQUESTS"]

INCIDENTS = Counter("alertcast_incidents_total", "Incidents accepted", ["kind", "msg_type"])
DELIVERIES = Counter(
    "alertcast_delivery_attempts_total", "Delivery attempts by outcome", ["channel", "outcome"]
)
ATTEMPT_SECONDS = Histogram(
    "alertcast_attempt_seconds",
    "Duration of one send to a platform",
    ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INFLIGHT = Gauge("alertcast_inflight_deliveries", "Deliveries being sent right now")
REQUESTS = Counter("alertcast_http_requests_total", "HTTP requests", ["route", "status"])
