"""``check-config``'s check of every region code against the GB/T 2260 divisions.

A code that starts with a digit is a GB/T 2260 code: six digits, and a division the bundled data
(:func:`alertcast.geo.known_codes`) knows, or one the office lists in ``[regions] known`` (a
county newer than the data) or names in ``[regions] parents``. ``5118``, ``51`` or ``511826x``
would silently narrow an account's reach; they are refused by path (``accounts[2].regions[0]``).
Codes of other hierarchies (``WORLD``, ``SE-AB-0180``) start with a letter and are left alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from alertcast.config import Config
from alertcast.geo import is_gbt2260, known_codes

__all__ = ["code_problem", "region_problems"]


def code_problem(code: str, extra: frozenset[str] = frozenset()) -> str | None:
    """Why ``code`` is not a usable region code, or None."""
    if not code[:1].isdigit() or code in extra:
        return None
    if not is_gbt2260(code):
        return f"{code!r} is not a GB/T 2260 code: six digits, such as 511826, 511800 or 510000"
    if code not in known_codes():
        return (
            f"{code!r} is no GB/T 2260 division the bundled data knows; list it under "
            "[regions] known if it is newer than the data"
        )
    return None


def region_problems(config: Config) -> list[tuple[str, str]]:
    """``(path, message)`` for every region code of the configuration that names no division."""
    regions = config.regions
    extra = frozenset({*regions.known, *regions.parents, *regions.parents.values()})
    found = [
        (path, problem)
        for path, code in _codes(config)
        if (problem := code_problem(code, extra)) is not None
    ]
    return found + [
        (f"regions.known[{i}]", f"{code!r} is not a GB/T 2260 code: six digits, such as 511826")
        for i, code in enumerate(regions.known)
        if not is_gbt2260(code)
    ]


def _codes(config: Config) -> Iterator[tuple[str, str]]:
    for i, issuer in enumerate(config.issuers):
        yield from _listed(f"issuers[{i}].regions", issuer.regions)
    for i, account in enumerate(config.accounts):
        yield from _listed(f"accounts[{i}].regions", account.regions)
    for i, rule in enumerate(config.routes):
        yield from _listed(f"routes[{i}].regions", rule.regions)
    for i, feed in enumerate(config.feeds):
        yield from _listed(f"feeds[{i}].area_codes", feed.area_codes)
        if feed.region and feed.region.codes:
            yield from _listed(f"feeds[{i}].region.codes", feed.region.codes)


def _listed(path: str, codes: Sequence[str]) -> Iterator[tuple[str, str]]:
    for j, code in enumerate(codes):
        yield f"{path}[{j}]", code
