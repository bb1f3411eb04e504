"""An event's place, in Chinese and in English, and the area codes its incident states.

:func:`localise` names the epicentre from its coordinates (:func:`alertcast.geoplace.where`)
in both languages, so every account reads its own (``details.places``): Chinese in CENC's style
(a CENC report keeps CENC's own words), English in USGS's style, with the source's own string
as the fallback only in English. ``place`` is the incident language's name. The codes are the
epicentre's county and every county within the feed's reach (``[[feeds]] reach``), so city and
county accounts take the quakes that concern them; a source's own codes and the feed's
``area_codes`` stay. The data loads once, off the event loop (:func:`ready`).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

from alertcast.feedconfig import FeedConfig
from alertcast.feeds.events import QuakeEvent
from alertcast.geo import divisions
from alertcast.geoplace import where
from alertcast.geoworld import towns

__all__ = ["MAX_CODES", "language_of", "localise", "ready"]

MAX_CODES = 500
"""An incident's area holds at most this many codes (``Area.codes``)."""
_LATIN = re.compile(r"[A-Za-z]")
_loaded = False


async def ready() -> None:
    """Load the geographic data in a worker thread, once, before the first event needs it."""
    global _loaded
    if not _loaded:
        await asyncio.to_thread(_load)
        _loaded = True


def _load() -> None:
    divisions()
    towns()


def language_of(cfg: FeedConfig, ev: QuakeEvent) -> str:
    """The incident's language: the feed's, else Chinese for CENC and English otherwise."""
    return cfg.language or ("zh-CN" if ev.source == "cenc" else "en")


def localise(cfg: FeedConfig, ev: QuakeEvent) -> QuakeEvent:
    """``ev`` with its place in Chinese and English, the one its incident states, and the
    codes it reaches."""
    spot = where(ev.latitude, ev.longitude)
    own = ev.source == "cenc" and ev.place and not _LATIN.search(ev.place)
    zh = ev.place if own else spot.zh
    # The source's own words are English only when they are Latin (never CENC's Chinese).
    en = spot.en or (ev.place if _LATIN.search(ev.place) else None)
    places = (("zh-CN", zh), *((("en", en),) if en else ()))
    place = zh if language_of(cfg, ev).lower().startswith("zh") else en or ev.place
    codes = reach_codes(cfg, ev, spot.code)
    return replace(ev, place=place, places=places, area_codes=codes)


def reach_codes(cfg: FeedConfig, ev: QuakeEvent, epicentre: str | None) -> tuple[str, ...]:
    """The epicentre's county, then every county within the reach, nearest first."""
    radius = cfg.reach.radius_km(ev.magnitude)
    near = divisions().within(ev.latitude, ev.longitude, radius)
    codes = [*([epicentre] if epicentre else []), *(d.code for d in near), *ev.area_codes]
    return tuple(dict.fromkeys(codes))[: MAX_CODES - len(cfg.area_codes)]
