"""Formats: one builder per platform format, its template families and its length policies.

A builder turns a :class:`~alertcast.render.compose.Job` into the payload keys the channel
adapters read (docs/rendering.md has the table) plus the length of each fitted field as its
platform counts it. Limits and their sources are in docs/rendering.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from alertcast.models import incident_json
from alertcast.render.compose import Composer, Job
from alertcast.render.context import RenderError
from alertcast.render.fit import Fitted
from alertcast.render.policies import (
    Bytes,
    Chars,
    FeishuPost,
    Mastodon,
    Policy,
    Sms,
    TelegramHtml,
    Twitter,
    Weibo,
    feishu_lines,
)

__all__ = ["FORMATS", "RENDER_OPTIONS", "FormatSpec", "policy_option"]

# Account options the renderer reads (channel adapters should let them through).
RENDER_OPTIONS = frozenset(
    {"template_fields", "sms_max_segments", "sms_signature", "max_characters", "url_length"}
)
TEMPLATE_VALUE_CHARS = 20
DEFAULT_TEMPLATE_FIELDS = {
    "first": "title",
    "keyword1": "kind_label",
    "keyword2": "place",
    "keyword3": "time",
    "keyword4": "headline",
    "remark": "instruction",
}
TEXT_LIMIT = Chars(10000)
WECHAT_TEXT = Chars(600)

Lengths = dict[str, Fitted]
Built = tuple[dict[str, Any], Lengths]


@dataclass(frozen=True)
class FormatSpec:
    families: tuple[str, ...]
    build: Callable[[Composer, Job, int], Built]


def policy_option(job: Job, key: str, default: int, low: int, high: int) -> int:
    """An integer account option within ``[low, high]``, or a render error naming it."""
    value = job.account.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise job.fail(f"option {key} must be an integer from {low} to {high}, not {value!r}")
    return value


def _sms_policy(job: Job) -> Sms:
    signature = job.account.options.get("sms_signature", "")
    if not isinstance(signature, str):
        raise job.fail("option sms_signature must be a string")
    return Sms(limit=policy_option(job, "sms_max_segments", 3, 1, 10), signature=signature)


def _single(
    key: str,
    family: str,
    policy: Callable[[Job, int], Policy],
    *,
    tags: bool = False,
    extra: Callable[[Job, Fitted], dict[str, Any]] | None = None,
) -> FormatSpec:
    """A format whose payload is one fitted text (plus ``extra`` keys)."""

    def build(c: Composer, job: Job, link_length: int) -> Built:
        fitted = c.fit(job, family, policy(job, link_length), hashtags=tags)
        payload = {key: fitted.text, "text": fitted.text}
        payload.update(extra(job, fitted) if extra else {})
        return payload, {key: fitted}

    return FormatSpec((family,), build)


def _mastodon(job: Job, _: int) -> Policy:
    return Mastodon(
        limit=policy_option(job, "max_characters", 500, 50, 100000),
        url_length=policy_option(job, "url_length", 23, 1, 100),
    )


def _sms_extra(job: Job, fitted: Fitted) -> dict[str, Any]:
    return {"segments": _sms_policy(job).segments(fitted.text)}


def _titled(family: str, policy: Policy, key: str) -> FormatSpec:
    """DingTalk markdown and Feishu post: a title line plus one fitted body."""

    def build(c: Composer, job: Job, _: int) -> Built:
        title = c.line(job, "title", Chars(64))
        body = c.fit(job, family, policy)
        payload: dict[str, Any] = {"title": title.text, "text": body.text}
        payload[key] = feishu_lines(body.text) if key == "post_lines" else body.text
        return payload, {"title": title, key: body}

    return FormatSpec(("title", family), build)


def _wechat_article(c: Composer, job: Job, _: int) -> Built:
    title = c.line(job, "title", Bytes(64))
    digest = c.line(job, "summary", Chars(120))
    content = c.fit(job, "article", Chars(20000))
    text = c.fit(job, "long", WECHAT_TEXT)
    payload = {
        "title": title.text,
        "digest": digest.text,
        "content_html": content.text,
        "source_url": job.link,
        "text": text.text,
    }
    return payload, {"title": title, "digest": digest, "content_html": content, "text": text}


def _template_value(c: Composer, job: Job, field: str, value: str) -> Fitted:
    prefix = job.marker if field in ("first", "keyword1") else ""
    return c.shortened(job, " ".join(value.split()), Chars(TEMPLATE_VALUE_CHARS), prefix)


def _named_facts(c: Composer, job: Job) -> dict[str, str]:
    named = {k: str(v) for k, v in job.facts.items() if not isinstance(v, bool)}
    named["title"] = c.body(job, "title")(job.parts())
    named["summary"] = c.body(job, "summary")(job.parts())
    named["link"] = job.link
    named["reason"] = job.ctx.reason or ""
    return named


def _wechat_template(c: Composer, job: Job, _: int) -> Built:
    mapping = job.account.options.get("template_fields") or DEFAULT_TEMPLATE_FIELDS
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise job.fail("option template_fields must map template fields to fact names")
    if job.kind == "earthquake" and "template_fields" not in job.account.options:
        mapping = {**mapping, "keyword4": "magnitude_text"}
    named = _named_facts(c, job)
    unknown = sorted(set(mapping.values()) - set(named))
    if unknown:
        raise job.fail(
            f"template_fields names unknown facts {', '.join(unknown)}; "
            f"known: {', '.join(sorted(named))}"
        )
    fitted = {field: _template_value(c, job, field, named[fact]) for field, fact in mapping.items()}
    text = c.fit(job, "short", WECHAT_TEXT)
    data = {field: {"value": f.text} for field, f in fitted.items()}
    lengths = {f"template_data.{field}": f for field, f in fitted.items()}
    return {"template_data": data, "url": job.link, "text": text.text}, {**lengths, "text": text}


def _webhook(c: Composer, job: Job, link_length: int) -> Built:
    """The incident and its texts; a text that cannot be made is ``None``, its reason in
    ``errors`` (a short format's limit must not hold back the machine-readable message)."""
    main, sub = FORMATS["text"].build(c, replace(job, fmt="text"), link_length)
    texts: dict[str, str | None] = {"text": main["text"]}
    lengths: Lengths = {"text": sub["text"], "texts.text": sub["text"]}
    errors: dict[str, str] = {}
    for name in ("weibo", "sms"):
        try:
            payload, sub = FORMATS[name].build(c, replace(job, fmt=name), link_length)
        except RenderError as exc:
            texts[name], errors[name] = None, exc.reason
            continue
        texts[name] = payload["text"]
        lengths[f"texts.{name}"] = sub["text"]
    payload = {
        "incident": incident_json(job.incident),
        "incident_id": job.ctx.incident_id,
        "msg_type": job.ctx.msg_type.value,
        "references": job.ctx.references,
        "reason": job.ctx.reason,
        "link": job.link or None,
        "texts": texts,
        "text": main["text"],
    }
    if errors:
        payload["errors"] = errors
    return payload, lengths


FORMATS: dict[str, FormatSpec] = {
    "text": _single("text", "long", lambda j, n: TEXT_LIMIT),
    "weibo": _single("text", "short", lambda j, n: Weibo(link_half_units=n)),
    "twitter": _single("text", "short", lambda j, n: Twitter(), tags=True),
    "mastodon": _single("text", "short", _mastodon, tags=True),
    "telegram": _single(
        "text", "html", lambda j, n: TelegramHtml(), extra=lambda j, f: {"parse_mode": "HTML"}
    ),
    "sms": _single("text", "short", lambda j, n: _sms_policy(j), extra=_sms_extra),
    "wecom_text": _single("text", "long", lambda j, n: Bytes(2048)),
    "wecom_markdown": _single("markdown", "markdown", lambda j, n: Bytes(4096)),
    "dingtalk_markdown": _titled("markdown", Bytes(19000), "markdown"),
    "feishu_post": _titled("long", FeishuPost(18000), "post_lines"),
    "wechat_article": FormatSpec(("title", "summary", "article", "long"), _wechat_article),
    "wechat_template": FormatSpec(("title", "summary", "short"), _wechat_template),
    "webhook": FormatSpec(("long", "short"), _webhook),
}
