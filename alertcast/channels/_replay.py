"""A replay guard for signed callbacks: which signed queries came, within a time window.

A platform that signs ``(timestamp, nonce)`` but not the body (WeChat's plaintext callback) lets
anyone who saw one request send it again, with any body. :class:`Nonces` remembers every signed
query of one account while its timestamp is in the window, so a repeat is known for what it is;
what the caller then does with a repeat (refuse it, or share the first answer) is its own rule.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["Nonces", "Signed", "Use"]

Signed = tuple[str, str, str]
"""A request's ``(timestamp, nonce, signature)``."""


@dataclass(slots=True)
class Use:
    """How one signed query was used: the message it carried (``None``: a handshake, or a body
    that could not be read) and how many times it came."""

    timestamp: int
    key: tuple[str, str] | None = None
    times: int = 1


class Nonces:
    """The signed queries one account was sent within its window, so none is taken twice.

    Bounded: an entry goes once its timestamp leaves the window (the window refuses it then),
    and past ``limit`` entries the oldest goes and no timestamp up to its own is taken any
    more (``floor``), so a forgotten query can never be replayed.
    """

    def __init__(self, window_s: float, limit: int) -> None:
        self.window_s = window_s
        self.limit = limit
        self._uses: OrderedDict[Signed, Use] = OrderedDict()
        self._floor = -1

    def __len__(self) -> int:
        return len(self._uses)

    def fresh(self, timestamp: int, now: float) -> bool:
        """True when ``timestamp`` is within the window of ``now`` and above the floor."""
        return abs(now - timestamp) <= self.window_s and timestamp > self._floor

    def get(self, signed: Signed) -> Use | None:
        """How ``signed`` was used, if it came before (within the window)."""
        return self._uses.get(signed)

    def use(
        self, signed: Signed, timestamp: int, now: float, key: tuple[str, str] | None = None
    ) -> tuple[Use, bool]:
        """The record of ``signed``, and whether this is its first use (then it is recorded,
        carrying ``key``)."""
        self._expire(now)
        known = self._uses.get(signed)
        if known is not None:
            return known, False
        while len(self._uses) >= self.limit:
            _, oldest = self._uses.popitem(last=False)
            self._floor = max(self._floor, oldest.timestamp)
        self._uses[signed] = use = Use(timestamp, key)
        return use, True

    def _expire(self, now: float) -> None:
        """Forget the oldest entries while their timestamps are out of the window."""
        while self._uses:
            oldest = next(iter(self._uses.values()))
            if oldest.timestamp + self.window_s >= now:
                return
            self._uses.popitem(last=False)
