"""Spherical-earth helpers (WGS-84 degrees, km): distance and compass direction."""

from __future__ import annotations

import math

__all__ = ["EARTH_RADIUS_KM", "bearing_deg", "bearing_name", "distance_km"]

EARTH_RADIUS_KM = 6371.0088
_POINTS = ("N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE")
_POINTS_16 = (*_POINTS, "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW")


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance between two points."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlam = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def bearing_name(lat1: float, lon1: float, lat2: float, lon2: float) -> str:
    """The 16-point compass direction from the first point to the second (``SSW``)."""
    return _POINTS_16[round(bearing_deg(lat1, lon1, lat2, lon2) / 22.5) % 16]


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The initial bearing from the first point to the second, 0 ≤ ° < 360 (north 0, east 90)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dlam = math.radians(lon2 - lon1)
    y = math.sin(dlam) * math.cos(phi2)
    x = math.cos(phi1) * math.sin(phi2) - math.sin(phi1) * math.cos(phi2) * math.cos(dlam)
    return (math.degrees(math.atan2(y, x)) + 360) % 360
