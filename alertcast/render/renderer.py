"""The renderer: one incident, one account, one payload; and a check of a configuration."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from alertcast.channels import Channel, UnknownChannel, channel_class
from alertcast.config import RENDER_OPTIONS, AccountConfig, RenderConfig
from alertcast.models import Incident, IncidentBase, MsgType, Status
from alertcast.render.compose import Composer, Job
from alertcast.render.context import RenderContext, RenderError
from alertcast.render.facts import build_facts, markers
from alertcast.render.formats import FORMATS
from alertcast.render.samples import SAMPLE_LINK, sample_incident
from alertcast.render.templates import Templates
from alertcast.render.text import grapheme_count

__all__ = ["Renderer", "render_key"]

_RECENT = 16  # incidents whose facts stay cached (a fan-out renders one many times)


class Renderer:
    """Templates are loaded and compiled once, at construction; rendering is then pure."""

    def __init__(self, config: RenderConfig) -> None:
        self._config = config
        self._templates = Templates(config.templates_dir)
        self._composer = Composer(self._templates)
        self._recent: dict[tuple[int, str], tuple[IncidentBase, dict[str, Any]]] = {}
        grapheme_count("\u0301")  # build the Unicode tables now, not on the first alert
        self._warm()

    def formats(self) -> list[str]:
        """Every format name an account may ask for."""
        return sorted(FORMATS)

    def languages(self) -> list[str]:
        """Every template language on offer (package plus override folder)."""
        return list(self._templates.languages)

    def render(
        self,
        incident: Incident | IncidentBase,
        account: AccountConfig,
        ctx: RenderContext,
        *,
        default_format: str | None = None,
    ) -> dict[str, Any]:
        """The payload for ``account``'s format (else ``default_format``, else its channel's);
        :class:`RenderError` when it cannot be made."""
        fmt = account.format or default_format or _default_format(account)
        spec = FORMATS.get(fmt)
        if spec is None:
            raise RenderError(
                f"unknown format; known: {', '.join(self.formats())}",
                account=account.id,
                format=fmt,
            )
        job = self._job(incident, account, ctx, fmt)
        payload, lengths = spec.build(self._composer, job)
        return {
            "format": fmt,
            **payload,
            "lengths": {key: _length(f.length.as_dict(), f.steps) for key, f in lengths.items()},
        }

    def check(
        self, accounts: list[AccountConfig], default_formats: Mapping[str, str] | None = None
    ) -> list[tuple[str, str]]:
        """Every ``(path, message)`` problem: unknown format or language, missing template,
        a sample incident of some kind whose mandatory facts cannot fit the account's policy.

        An account without a format is checked in ``default_formats[channel]``, else in its
        channel's default format."""
        problems: list[tuple[str, str]] = []
        for i, account in enumerate(accounts):
            fmt = (
                account.format
                or (default_formats or {}).get(account.channel)
                or _default_format(account)
            )
            problems += [(f"accounts[{i}].{key}", msg) for key, msg in self._check(account, fmt)]
        return problems

    def _check(self, account: AccountConfig, fmt: str) -> Iterable[tuple[str, str]]:
        if fmt not in FORMATS:
            yield "format", f"unknown format {fmt!r}; known: {', '.join(self.formats())}"
            return
        language = self._templates.language(account.language)
        if language is None:
            yield (
                "language",
                (
                    f"no templates for language {account.language!r}; "
                    f"on offer: {', '.join(self._templates.languages)}"
                ),
            )
            return
        missing = list(self._missing(language, fmt, [k.value for k in account.kinds]))
        missing += [
            f"template {where} does not compile: {why}"
            for where, why in sorted(self._templates.broken.items())
        ]
        yield from (("format", msg) for msg in missing)
        if not missing:
            yield from (("format", msg) for msg in self._samples(account, fmt))

    def _missing(self, language: str, fmt: str, kinds: list[str]) -> Iterable[str]:
        for kind in kinds:
            if not self._templates.has_kind(language, kind):
                yield f"missing template {language}/kinds/{kind}.j2"
            for family in FORMATS[fmt].families:
                if self._templates.get(language, family, fmt, kind) is None:
                    names = ", ".join(self._templates.chain(language, family, fmt, kind))
                    yield f"no {family} template for {kind} in {language} (looked for {names})"

    def _samples(self, account: AccountConfig, fmt: str) -> Iterable[str]:
        status = Status.exercise if Status.exercise in account.takes else Status.actual
        for kind in account.kinds:
            incident = sample_incident(kind, account.language, status)
            for msg_type in MsgType:
                ctx = RenderContext("inc_sample", msg_type, SAMPLE_LINK, reason="sample")
                try:
                    self.render(incident, account, ctx, default_format=fmt)
                except RenderError as exc:
                    yield f"sample {kind} {msg_type.value}: {exc.reason}"

    def _job(
        self, incident: IncidentBase, account: AccountConfig, ctx: RenderContext, fmt: str
    ) -> Job:
        language = self._templates.language(account.language)
        if language is None:
            raise RenderError(
                f"no templates for language {account.language!r}", account=account.id, format=fmt
            )
        drill, msg = markers(incident.status, ctx.msg_type.value, language)
        return Job(
            incident=incident,
            account=account,
            ctx=ctx,
            fmt=fmt,
            language=language,
            facts=self._facts(incident, language),
            drill=drill,
            marker=drill + msg,
            link=ctx.link or (str(incident.url) if incident.url else ""),
            channel=_channel(account),
            link_length=self._config.link_length,
        )

    def _facts(self, incident: IncidentBase, language: str) -> dict[str, Any]:
        """The incident's facts, formatted once per language for a fan-out to many accounts.

        Keyed by identity; the entry holds the incident itself, so an id is never reused
        while cached. Facts are never mutated after they are built.
        """
        key = (id(incident), language)
        cached = self._recent.get(key)
        if cached is not None and cached[0] is incident:
            return cached[1]
        facts = build_facts(incident, language)
        if len(self._recent) >= _RECENT:
            self._recent.pop(next(iter(self._recent)))
        self._recent[key] = (incident, facts)
        return facts

    def _warm(self) -> None:
        """Compile every template now: rendering never compiles, a broken file fails here."""
        for language in self._templates.languages:
            for fmt, spec in FORMATS.items():
                for family in spec.families:
                    for kind in ("earthquake", "fire", "police", "weather", "general"):
                        self._templates.get(language, family, fmt, kind)


def _channel(account: AccountConfig) -> type[Channel] | None:
    """The account's channel class (``None`` for a name no adapter claims)."""
    try:
        return channel_class(account.channel)
    except UnknownChannel:
        return None


def _default_format(account: AccountConfig) -> str:
    channel = _channel(account)
    return channel.default_format if channel is not None else "text"


_KEYS: dict[int, tuple[AccountConfig, str]] = {}  # id(account) -> (account, its key)
_KEYS_MOST = 4096


def render_key(account: AccountConfig) -> str:
    """What a payload depends on besides the incident: accounts with one key render alike.

    The format, the channel (its limits), the language, the render options and the options
    naming what the channel's texts must carry (a safe-domain link, a keyword). Computed once
    per account object (they are frozen): a fan-out asks it of every account it reaches."""
    found = _KEYS.get(id(account))
    if found is not None and found[0] is account:
        return found[1]
    if len(_KEYS) >= _KEYS_MOST:
        _KEYS.clear()
    key = _render_key(account)
    _KEYS[id(account)] = (account, key)
    return key


def _render_key(account: AccountConfig) -> str:
    channel = _channel(account)
    carried = {channel.link_domain_option, channel.keyword_option} if channel else set()
    options = {k: v for k, v in account.options.items() if k in RENDER_OPTIONS or k in carried}
    fmt = account.format or _default_format(account)
    key = [fmt, account.channel, account.language, options]
    return json.dumps(key, sort_keys=True, default=str)


def _length(length: dict[str, Any], steps: tuple[str, ...]) -> dict[str, Any]:
    return {**length, "fitted": list(steps)} if steps else length
