"""Secrets by reference: the config names environment variables, never values.

A variable ``NAME`` holds the secret itself, or ``NAME_FILE`` names a file that does (the
Docker/Kubernetes secrets convention). :class:`Secrets` resolves on every use, so replacing the
file replaces the token without a restart: an account paused for rejected credentials resumes
by itself once they change. Every value handed out is remembered so :meth:`Secrets.redact` can
scrub it from any text before it is logged or stored.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path

__all__ = ["MissingSecret", "Secrets"]

_MIN_REDACT_LEN = 4


class MissingSecret(LookupError):
    """A referenced environment variable is not set (or empty)."""

    def __init__(self, variable: str) -> None:
        super().__init__(f"environment variable {variable} is not set")
        self.variable = variable


class Secrets:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._seen: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def _lookup(self, variable: str) -> str:
        value = self._environ.get(variable, "")
        path = self._environ.get(f"{variable}_FILE", "")
        if not value and path:
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except OSError:
                value = ""
        return value

    def get(self, variable: str) -> str:
        """The value of ``variable`` (or of the file ``variable_FILE`` names); raises
        :class:`MissingSecret` when neither gives one."""
        value = self._lookup(variable)
        if not value:
            raise MissingSecret(variable)
        if len(value) >= _MIN_REDACT_LEN and value not in self._seen:
            with self._lock:
                self._seen.add(value)
                longest_first = sorted(self._seen, key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, longest_first)))
        return value

    def has(self, variable: str) -> bool:
        return bool(self._lookup(variable))

    def fingerprint(self, variables: list[str]) -> str:
        """A digest of the current values: it changes when any of the secrets is replaced."""
        digest = hashlib.sha256()
        for variable in variables:
            digest.update(self._lookup(variable).encode() + b"\0")
        return digest.hexdigest()

    def redact(self, text: str) -> str:
        """``text`` with every secret value handed out so far replaced by ``***``."""
        if self._pattern is None:
            return text
        return self._pattern.sub("***", text)
