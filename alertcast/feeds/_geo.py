"""Small spherical-earth helpers for rules and event matching (WGS-84 degrees, km)."""

from __future__ import annotations

from collections.abc import Sequence

from alertcast.geo_math import EARTH_RADIUS_KM, distance_km

__all__ = ["EARTH_RADIUS_KM", "distance_km", "in_bbox", "in_polygon"]


def in_bbox(lat: float, lon: float, bbox: Sequence[float]) -> bool:
    """Inside ``[min_lon, min_lat, max_lon, max_lat]``; ``min_lon > max_lon`` crosses 180°."""
    min_lon, min_lat, max_lon, max_lat = bbox
    if not min_lat <= lat <= max_lat:
        return False
    if min_lon <= max_lon:
        return min_lon <= lon <= max_lon
    return lon >= min_lon or lon <= max_lon


def in_polygon(lat: float, lon: float, ring: Sequence[tuple[float, float]]) -> bool:
    """Inside the ``(lat, lon)`` ring (even-odd rule, planar in degrees; not across 180°)."""
    inside = False
    for (lat_a, lon_a), (lat_b, lon_b) in zip(ring, [*ring[1:], ring[0]], strict=True):
        if (lat_a > lat) != (lat_b > lat):
            cross_lon = lon_a + (lat - lat_a) * (lon_b - lon_a) / (lat_b - lat_a)
            if lon < cross_lon:
                inside = not inside
    return inside
