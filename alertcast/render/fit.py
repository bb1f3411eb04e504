"""Fitting a text into a budget, in one fixed order that never touches the mandatory facts.

The mandatory facts (drill marker, message-type marker, kind, place, time, magnitude, the link)
live in the prefix and in the kind's summary wording, which fitting never changes. What it may
change are the optional :class:`Parts`, always in this order, stopping as soon as the text fits:

1. drop the hashtags;
2. shorten the description to the room left (``…``), or drop it if under :data:`MIN_KEEP`;
3. drop the instruction (what to do for safety goes only after the description);
4. shorten the headline, as the description;
5. the same for a cancellation's reason;
6. drop secondary details (coordinates and depth, fire level, places to avoid, contacts).

Shortening cuts between grapheme clusters and never inside a URL or a number. If the text still
does not fit, :class:`FitError` says by how much: a render error, never a silent truncation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from alertcast.render.policies import Length, Policy
from alertcast.render.text import grapheme_bounds, protected_spans, shorten

__all__ = ["MIN_KEEP", "FitError", "Fitted", "Parts", "fit"]

MIN_KEEP = 6
SENTINEL = "\ue000\ue001"
SHORTENED = ("description", "headline", "reason")
ORDER = ("hashtags", "description", "instruction", "headline", "reason", "details")


@dataclass(frozen=True)
class Parts:
    """The optional, fitter-controlled parts of a text, as raw (unescaped) values."""

    headline: str = ""
    description: str = ""
    instruction: str = ""
    hashtags: str = ""
    reason: str = ""
    details: bool = True


@dataclass(frozen=True)
class Fitted:
    text: str
    length: Length
    steps: tuple[str, ...] = ()


class FitError(Exception):
    def __init__(self, length: Length) -> None:
        super().__init__(
            f"mandatory facts need {length.used} {length.unit}, the limit is {length.limit}"
        )
        self.length = length


Attempt = Callable[[int], "tuple[str, Length] | None"]
Found = tuple[str, Length] | None


def _largest(attempt: Attempt, low: int, high: int, guess: int) -> Found:
    """The result for the largest ``keep`` in ``[low, high]`` that ``attempt`` accepts.

    Assumes acceptance is monotone (keeping less never stops a fit). Starts at ``guess``,
    gallops away from it to bracket the answer, then bisects: a good guess costs a handful
    of measurements instead of a dozen.
    """
    if low > high:
        return None
    probe = min(max(guess, low), high)
    found = attempt(probe)
    if found is not None:
        best, low, high = _gallop_up(attempt, probe, found, high)
    else:
        best, low, high = _gallop_down(attempt, probe, low)
    while low <= high:
        keep = (low + high) // 2
        if (found := attempt(keep)) is not None:
            best, low = found, keep + 1
        else:
            high = keep - 1
    return best


def _gallop_up(attempt: Attempt, probe: int, best: Found, high: int) -> tuple[Found, int, int]:
    """``probe`` fits: try probe+1, +3, +7 … until one fails; the answer lies before it."""
    step = 1
    while probe < high:
        nxt = min(probe + step, high)
        found = attempt(nxt)
        if found is None:
            return best, probe + 1, nxt - 1
        best, probe, step = found, nxt, step * 2
    return best, probe + 1, high


def _gallop_down(attempt: Attempt, probe: int, low: int) -> tuple[Found, int, int]:
    """``probe`` does not fit: try probe-1, -3, -7 … until one fits; the answer lies after it."""
    step = 1
    while probe > low:
        nxt = max(probe - step, low)
        found = attempt(nxt)
        if found is not None:
            return found, nxt + 1, probe - 1
        probe, step = nxt, step * 2
    return None, low, low - 1


def _set(parts: Parts, field: str, value: object) -> Parts:
    changes: dict[str, Any] = {field: value}
    return replace(parts, **changes)


Body = Callable[[Parts], str]
Escape = Callable[[str], str]


@dataclass(frozen=True)
class _Job:
    body: Body
    policy: Policy
    prefix: str
    escape: Escape

    def text(self, parts: Parts) -> str:
        return self.prefix + self.body(parts)

    def shortened(self, parts: Parts, field: str) -> tuple[Parts, Fitted | None]:
        """Keep as much of ``field`` as fits; drop it when less than :data:`MIN_KEEP` would."""
        value: str = getattr(parts, field)
        dropped = _set(parts, field, "")
        template = self.text(_set(parts, field, SENTINEL))
        if SENTINEL not in template:
            return dropped, None
        without = self.policy.measure(template.replace(SENTINEL, ""))
        # No cluster weighs less than half a unit, so the room left bounds what can be kept.
        most = MIN_KEEP + 2 * max(0, without.limit - without.used) + 64
        bounds = grapheme_bounds(value[: most * 2])
        if bounds[-1] < len(value):
            bounds.pop()  # the prefix may have split its last cluster
        spans = protected_spans(value)
        high = min(len(bounds) - 1, most)
        guess = self._guess(template, value[: bounds[high]], without, high)

        def attempt(keep: int) -> tuple[str, Length] | None:
            cut = shorten(value, keep, self.policy.ellipsis, bounds, spans)
            length = self.policy.measure(template.replace(SENTINEL, self.escape(cut)))
            return (cut, length) if length.fits and cut else None

        best = _largest(attempt, MIN_KEEP, high, guess)
        if best is None:
            return dropped, None
        text = template.replace(SENTINEL, self.escape(best[0]))
        return _set(parts, field, best[0]), Fitted(text, best[1])

    def _guess(self, template: str, head: str, without: Length, clusters: int) -> int:
        """Clusters likely to fit, as if the weight of ``head`` were spread evenly over it."""
        whole = self.policy.measure(template.replace(SENTINEL, self.escape(head))).used
        weight = whole - without.used
        if weight <= 0:
            return clusters
        return int(clusters * (without.limit - without.used - 2) / weight)


def fit(
    body: Body, parts: Parts, policy: Policy, *, prefix: str = "", escape: Escape = str
) -> Fitted:
    """``prefix + body(parts)`` within ``policy``, optional parts given up in the fixed order."""
    job = _Job(body, policy, prefix, escape)
    steps: list[str] = []
    text = job.text(parts)
    length = policy.measure(text)
    for step in ORDER:
        if length.fits:
            return Fitted(text, length, tuple(steps))
        if not getattr(parts, step):
            continue
        steps.append(step)
        if step in SHORTENED:
            parts, done = job.shortened(parts, step)
            if done is not None:
                return Fitted(done.text, done.length, tuple(steps))
        else:
            parts = _set(parts, step, "" if step != "details" else False)
        text = job.text(parts)
        length = policy.measure(text)
    if length.fits:
        return Fitted(text, length, tuple(steps))
    raise FitError(length)
