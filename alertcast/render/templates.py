"""Templates: the package's Jinja2 files plus an operator's override folder, compiled once.

Layout (docs/rendering.md): ``{language}/kinds/{kind}.j2`` holds each kind's wording as macros
(``title``, ``summary``, ``cancelled``); ``{language}/{family}/…`` lays a text out for a family of
formats. For a family the first of these names that exists is used, the override folder winning
over the package at every name::

    {language}/{family}/{kind}.{format}.j2
    {language}/{family}/{kind}.j2
    {language}/{family}/{format}.j2
    {language}/{family}/default.j2

HTML families are autoescaped; markdown families get values escaped before they reach the
template; every environment is ``StrictUndefined``, so a misspelt name fails at check time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import jinja2
from markupsafe import escape

__all__ = ["HTML_FAMILIES", "MARKDOWN_FAMILIES", "Templates", "escape_for", "md_escape"]

HTML_FAMILIES = frozenset({"html", "article"})
MARKDOWN_FAMILIES = frozenset({"markdown"})
Mode = Literal["plain", "html", "markdown"]

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>~])|^(#)", re.MULTILINE)


def md_escape(value: str) -> str:
    """Backslash-escape what could make a value bold, a link, code or a heading in markdown."""
    return _MD_SPECIAL.sub(lambda m: "\\" + (m.group(1) or m.group(2)), value)


_TRAILING = "。．.！!？?；;：:，,、 \n"
_CLOSED = "。．.！!？?…」”』）)】"


def bare(value: str) -> str:
    """A headline without its closing punctuation, to be followed by ``：`` or ``. ``."""
    return value.rstrip(_TRAILING)


def sentence(value: str, end: str) -> str:
    """``value`` closed with ``end`` unless it already ends a sentence (or is a placeholder)."""
    value = value.rstrip()
    if not value or value[-1] in _CLOSED or "\ue000" <= value[-1] <= "\uf8ff":
        return value
    return value + end


def html_escape(value: str) -> str:
    return str(escape(value))


def _plain(value: str) -> str:
    return value


def mode_of(family: str) -> Mode:
    if family in HTML_FAMILIES:
        return "html"
    return "markdown" if family in MARKDOWN_FAMILIES else "plain"


def escape_for(family: str) -> Any:
    """The function that makes a raw value safe inside ``family``'s output."""
    return {"html": html_escape, "markdown": md_escape, "plain": _plain}[mode_of(family)]


class Templates:
    """Both environments, the languages on offer, and name resolution cached per key."""

    def __init__(self, override_dir: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(override_dir)))
        loaders.append(jinja2.PackageLoader("alertcast", "templates"))
        loader = jinja2.ChoiceLoader(loaders)
        common: dict[str, Any] = {
            "loader": loader,
            "undefined": jinja2.StrictUndefined,
            "trim_blocks": True,
            "lstrip_blocks": True,
            "auto_reload": False,
            "cache_size": -1,
        }
        self._envs = {
            False: jinja2.Environment(autoescape=False, **common),
            True: jinja2.Environment(autoescape=True, **common),
        }
        for env in self._envs.values():
            env.filters.update(bare=bare, sentence=sentence)
        names = self._envs[False].list_templates(extensions=["j2"])
        self.languages = sorted({name.split("/", 1)[0] for name in names if "/" in name})
        self._resolved: dict[tuple[str, str, str, str], jinja2.Template | None] = {}
        self.broken: dict[str, str] = {}
        self._languages: dict[str, str | None] = {}

    def language(self, wanted: str) -> str | None:
        """The template language for an account's ``language`` (exact, then by primary subtag)."""
        if wanted not in self._languages:
            self._languages[wanted] = self._language(wanted)
        return self._languages[wanted]

    def _language(self, wanted: str) -> str | None:
        by_lower = {lang.lower(): lang for lang in self.languages}
        if wanted.lower() in by_lower:
            return by_lower[wanted.lower()]
        primary = wanted.split("-", 1)[0].lower()
        candidates = [lang for lang in self.languages if lang.split("-", 1)[0].lower() == primary]
        return candidates[0] if candidates else None

    @staticmethod
    def chain(language: str, family: str, fmt: str, kind: str) -> list[str]:
        base = f"{language}/{family}/"
        names = (f"{kind}.{fmt}.j2", f"{kind}.j2", f"{fmt}.j2", "default.j2")
        return [base + name for name in names]

    def get(self, language: str, family: str, fmt: str, kind: str) -> jinja2.Template | None:
        """The compiled template for this combination, or ``None`` when no name exists."""
        key = (language, family, fmt, kind)
        if key not in self._resolved:
            env = self._envs[mode_of(family) == "html"]
            try:
                self._resolved[key] = env.select_template(self.chain(language, family, fmt, kind))
            except jinja2.TemplatesNotFound:
                self._resolved[key] = None
            except jinja2.TemplateSyntaxError as exc:
                self.broken[f"{exc.name}:{exc.lineno}"] = exc.message or "syntax error"
                self._resolved[key] = None
        return self._resolved[key]

    def has_kind(self, language: str, kind: str) -> bool:
        """Whether ``{language}/kinds/{kind}.j2`` exists and compiles."""
        try:
            self._envs[False].get_template(f"{language}/kinds/{kind}.j2")
        except jinja2.TemplateNotFound:
            return False
        except jinja2.TemplateSyntaxError as exc:
            self.broken[f"{exc.name}:{exc.lineno}"] = exc.message or "syntax error"
            return False
        return True
