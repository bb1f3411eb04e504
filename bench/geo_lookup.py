"""Cost of offline reverse geocoding: the one-time load, and a look-up after it.

Run: ``.venv/bin/python bench/geo_lookup.py``. Prints the load times, the resident memory, and
the median look-up (place, and place plus an M6.8's reach) over a grid of points across China
and the world, with the ratio of a look-up to a feed's 1000 ms latency target.
"""

from __future__ import annotations

import resource
import statistics
import time

from alertcast.geo import divisions
from alertcast.geoplace import where
from alertcast.geoworld import towns


def main() -> None:
    t0 = time.perf_counter()
    divisions()
    t1 = time.perf_counter()
    towns()
    t2 = time.perf_counter()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load: boundaries {t1 - t0:.2f} s, towns {t2 - t1:.2f} s, max RSS {rss_mb:.0f} MB")
    points = [(lat, lon) for lat in range(-60, 61, 10) for lon in range(-180, 180, 15)]
    points += [(20 + i * 0.7, 75 + i * 1.5) for i in range(40)]  # across China
    places, reach = [], []
    for lat, lon in points:
        start = time.perf_counter()
        where(lat, lon)
        middle = time.perf_counter()
        divisions().within(lat, lon, 100.0)
        places.append(middle - start)
        reach.append(time.perf_counter() - start)
    for name, times in (("place", places), ("place + 100 km reach", reach)):
        median_ms = statistics.median(times) * 1e3
        print(
            f"{name}: median {median_ms:.2f} ms, max {max(times) * 1e3:.1f} ms, "
            f"{median_ms / 1000:.4f} of the 1000 ms feed latency target"
        )


if __name__ == "__main__":
    main()
