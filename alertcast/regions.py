"""Administrative-division codes as a hierarchy.

By default a code covers another by prefix after dropping trailing ``00`` pairs, which is how
China's six-digit GB/T 2260 codes nest: ``510000`` (Sichuan) covers ``510100`` (Chengdu), which
covers ``510105``. Other hierarchies are declared as an explicit parent table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["Hierarchy"]


def _stem(code: str) -> str:
    stem = code
    while len(stem) > 2 and stem.endswith("00"):
        stem = stem[:-2]
    return stem


class Hierarchy:
    def __init__(self, parents: Mapping[str, str] | None = None) -> None:
        self.parents = dict(parents or {})

    def ancestors(self, code: str) -> list[str]:
        """``code`` and every code above it in the explicit table, nearest first."""
        chain, seen = [code], {code}
        while (parent := self.parents.get(chain[-1])) is not None and parent not in seen:
            chain.append(parent)
            seen.add(parent)
        return chain

    def covers(self, outer: str, inner: str) -> bool:
        """True when ``outer`` is ``inner`` or an ancestor of it."""
        if outer in self.ancestors(inner):
            return True
        if inner in self.parents or outer in self.parents:
            return False
        return outer.isdigit() and inner.isdigit() and inner.startswith(_stem(outer))

    def any_covers(self, outers: Iterable[str], inners: Iterable[str]) -> bool:
        inner_list = list(inners)
        return any(self.covers(o, i) for o in outers for i in inner_list)
