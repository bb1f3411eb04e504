"""Composing texts: one render job's values, its template context, and fitted texts from them."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import jinja2

from alertcast.channels import Channel
from alertcast.config import AccountConfig
from alertcast.lengths import WEIBO_LINK_HALF_UNITS
from alertcast.models import IncidentBase
from alertcast.render.context import RenderContext, RenderError
from alertcast.render.fit import Body, Escape, FitError, Fitted, Parts, fit
from alertcast.render.policies import Policy
from alertcast.render.templates import Templates, escape_for, html_escape, md_escape, mode_of
from alertcast.render.text import grapheme_bounds, shorten

__all__ = ["Composer", "Job", "Tail"]

_TAGS = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class Job:
    """Everything one payload is made from, resolved once per render."""

    incident: IncidentBase
    account: AccountConfig
    ctx: RenderContext
    fmt: str
    language: str
    facts: dict[str, Any]
    drill: str
    marker: str
    link: str
    channel: type[Channel] | None = None
    link_length: int = WEIBO_LINK_HALF_UNITS

    @property
    def kind(self) -> str:
        return str(self.facts["kind"])

    def parts(self, *, hashtags: bool = False) -> Parts:
        incident = self.incident
        tag = "#" + str(self.facts["kind_label"]).replace(" ", "")
        return Parts(
            headline=str(self.facts["headline"]),  # a feed's in the account's language
            description=incident.description,
            instruction=incident.instruction,
            hashtags=tag if hashtags else "",
            reason=self.ctx.reason or "",
        )

    def fail(self, message: str) -> RenderError:
        return RenderError(message, account=self.account.id, format=self.fmt)


@dataclass(frozen=True)
class Tail:
    """What a channel insists every text carries (``why``): ``suffix`` is appended, within the
    limit, when the fitted text lacks it (``present`` says)."""

    present: Callable[[str], bool]
    suffix: str
    why: str


def _then(body: Body, suffix: str) -> Body:
    return lambda parts: body(parts) + suffix


def _headline(parts: Parts) -> str:
    return parts.headline


def _shorter_place(whole: str, place: str, policy: Policy, prefix: str) -> Fitted | None:
    """``prefix + whole`` with the place in it cut until it fits (None when nothing fits)."""
    length = policy.measure(prefix + whole)
    if length.fits:
        return Fitted(prefix + whole, length, ("details",))
    if not place or place not in whole:
        return None
    bounds = grapheme_bounds(place)
    for keep in range(len(bounds) - 2, 0, -1):
        cut = shorten(place, keep, policy.ellipsis, bounds)
        if not cut:
            break
        text = prefix + whole.replace(place, cut, 1)
        length = policy.measure(text)
        if length.fits:
            return Fitted(text, length, ("details", "place"))
    text = prefix + " ".join(whole.replace(place, "", 1).split())  # the body still names it
    length = policy.measure(text)
    return Fitted(text, length, ("details", "place")) if length.fits else None


def _md(values: dict[str, Any]) -> dict[str, Any]:
    return {k: md_escape(v) if isinstance(v, str) else v for k, v in values.items()}


class Composer:
    """Renders a family's template for a job and fits the result into a policy."""

    def __init__(self, templates: Templates) -> None:
        self.templates = templates

    def template(self, job: Job, family: str) -> jinja2.Template:
        found = self.templates.get(job.language, family, job.fmt, job.kind)
        if found is None:
            names = ", ".join(self.templates.chain(job.language, family, job.fmt, job.kind))
            raise job.fail(f"no template (looked for {names})")
        return found

    def body(self, job: Job, family: str) -> Body:
        template = self.template(job, family)
        markdown = mode_of(family) == "markdown"
        facts = _md(job.facts) if markdown else job.facts
        base = {
            "lang": job.language,
            "kind": job.kind,
            "format": job.fmt,
            "f": SimpleNamespace(**facts),
            "msg_type": job.ctx.msg_type.value,
            "link": job.link,
            "marker": job.marker,
            "references": job.ctx.references or "",
        }

        def render(parts: Parts) -> str:
            opt = vars(parts).copy()
            context = {**base, "opt": SimpleNamespace(**(_md(opt) if markdown else opt))}
            try:
                return template.render(context).strip()
            except jinja2.TemplateError as exc:
                raise job.fail(f"template {template.name}: {exc}") from exc

        return render

    def fit(
        self,
        job: Job,
        family: str,
        policy: Policy,
        *,
        hashtags: bool = False,
        tail: Tail | None = None,
        clean: Escape | None = None,
    ) -> Fitted:
        """The family's text for ``job`` within ``policy``, carrying ``tail`` if it must, the
        template's output passed through ``clean`` (a platform's own escaping); mandatory facts
        checked after."""
        prefix = "" if family == "article" else job.marker
        body, escape = self._cleaned(job, family, clean)
        parts = job.parts(hashtags=hashtags)
        fitted = self._fit(job, body, policy, parts, prefix, escape)
        if tail is not None and not tail.present(fitted.text):
            try:
                fitted = self._fit(job, _then(body, tail.suffix), policy, parts, prefix, escape)
            except RenderError as exc:
                needs = (
                    f"counting {tail.why} {tail.suffix.strip()!r} {job.account.channel} requires"
                )
                raise job.fail(f"{exc.reason}, {needs}") from exc
        self.verify(job, family, fitted.text, clean)
        return fitted

    def _cleaned(self, job: Job, family: str, clean: Escape | None) -> tuple[Body, Escape]:
        body, escape = self.body(job, family), escape_for(family)
        if clean is None:
            return body, escape
        return (lambda parts: clean(body(parts))), (lambda value: clean(escape(value)))

    def line(self, job: Job, family: str, policy: Policy) -> Fitted:
        """A one-line plain text (title, digest): the marker, then the family's text shortened.

        A title too long takes its compact wording (the kind's title without ``details``),
        then gives up letters of its place (at worst the whole place, which the body names), so
        the magnitude and the report marker (``自动测定``) survive; only then is its end cut."""
        render = self.body(job, family)
        whole = " ".join(render(job.parts()).split())
        length = policy.measure(job.marker + whole)
        if family == "title" and not length.fits:
            compact = " ".join(render(replace(job.parts(), details=False)).split())
            fitted = _shorter_place(compact, str(job.facts["place"]), policy, job.marker)
            if fitted is not None:
                return fitted
        return self.shortened(job, whole, policy, job.marker)

    def shortened(self, job: Job, value: str, policy: Policy, prefix: str) -> Fitted:
        """``prefix + value`` within ``policy``, ``value`` shortened (or dropped) if need be."""
        return self._fit(job, _headline, policy, Parts(headline=value), prefix, str)

    @staticmethod
    def _fit(
        job: Job, body: Body, policy: Policy, parts: Parts, prefix: str, escape: Escape
    ) -> Fitted:
        try:
            return fit(body, parts, policy, prefix=prefix, escape=escape)
        except FitError as exc:
            raise job.fail(str(exc)) from exc

    def visible(self, family: str, text: str) -> str:
        return html.unescape(_TAGS.sub("", text)) if mode_of(family) == "html" else text

    def verify(self, job: Job, family: str, text: str, clean: Escape | None = None) -> None:
        """Refuse a text that lost a mandatory fact (an operator's template may have)."""
        if not self.visible(family, text).lstrip().startswith(job.drill):
            raise job.fail(f"{family} text must begin with the marker {job.drill!r}")
        facts, escape = job.facts, self._cleaned(job, family, clean)[1]
        wanted = {
            "place": escape(facts["place"]),
            "time": escape(facts["time"]),
            "magnitude": facts.get("magnitude", ""),
            # Only the built-in languages have their own kind labels to insist on.
            "kind": escape(facts["kind_label"]) if job.language[:2] in ("zh", "en") else "",
            "link": html_escape(job.link) if mode_of(family) == "html" else job.link,
        }
        lowered = text.lower()
        for name, value in wanted.items():
            if value and str(value).lower() not in lowered:
                raise job.fail(f"the {family} text lost the mandatory {name} {value!r}")
