"""Headline of a feed incident, in the wording of the source's own bulletins.

The bulletin itself (CENC's ``中国地震台网正式测定：04月20日08时02分在四川省雅安市芦山县（北纬30.30
度，东经103.00度）发生7.0级地震，震源深度13千米。``) is the earthquake template's summary, rendered
per account in the account's language: a feed incident's ``description`` is empty, so no text
states the bulletin twice. The headline uses the renderer's rounding and report marker
(:mod:`alertcast.render.facts`): one number, one marker, however a message is read.
"""

from __future__ import annotations

from alertcast.feeds.events import QuakeEvent
from alertcast.render.facts import quake_headline

__all__ = ["clip", "headline"]

MAX_TEXT = 200


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def headline(ev: QuakeEvent, language: str) -> str:
    """One line: place, magnitude and the report marker (``自动测定``, ``正式测定``, …), as the
    renderer words it (:func:`alertcast.render.facts.quake_headline`), so an account in
    another language gets the same line with its own place."""
    place = clip(ev.place, MAX_TEXT - 45)
    return quake_headline(place, ev.magnitude, ev.source, ev.report, language)
