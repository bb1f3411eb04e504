"""Formats: one builder per platform format, its template families and its length policies.

A builder turns a :class:`~alertcast.render.compose.Job` into the payload keys the channel
adapters read (docs/rendering.md has the table) plus the length of each fitted field as its
platform counts it. The limits are the channels': a field's budget is what the account's channel
declares for it (:attr:`alertcast.channels.Channel.formats`), else what the format's *home*
channel declares (a console account rendering ``weibo`` gets Weibo's 140 units). Only formats of
platforms without an adapter here (X, Mastodon, Telegram, SMS) and the plain ``text`` keep their
budgets in this package. What a channel insists every text carries — Weibo's safe-domain link, a
robot's keyword — is put in here, within the limit, or the render fails saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from alertcast.channels import channel_class
from alertcast.config import RENDER_OPTIONS
from alertcast.lengths import URL_RE, Limit, links_to_domain
from alertcast.models import incident_json
from alertcast.render.compose import Composer, Job, Tail
from alertcast.render.context import RenderError
from alertcast.render.fit import Fitted
from alertcast.render.policies import (
    Chars,
    Mastodon,
    Policy,
    Sms,
    TelegramHtml,
    Twitter,
    feishu_lines,
    policy_for,
)

__all__ = ["FORMATS", "RENDER_OPTIONS", "FormatSpec", "declared", "policy_option"]

DEFAULT_TEMPLATE_FIELDS = {
    "first": "title",
    "keyword1": "kind_label",
    "keyword2": "place",
    "keyword3": "time",
    "keyword4": "headline",
    "remark": "instruction",
}
# Since 2023 a template message shows only its keywords (``first`` and ``remark`` are dropped):
# an earthquake's keywords carry the report marker, the magnitude and the depth themselves.
EARTHQUAKE_TEMPLATE_FIELDS = {"keyword1": "report_kind", "keyword4": "magnitude_depth"}
TEXT_LIMIT = Chars(10000)  # plain text for the console and files: a sanity cap only
TEMPLATE_VALUES = "template_data.*.value"

Lengths = dict[str, Fitted]
Built = tuple[dict[str, Any], Lengths]


@dataclass(frozen=True)
class FormatSpec:
    families: tuple[str, ...]
    build: Callable[[Composer, Job], Built]
    home: str | None = None  # the channel whose declared limits the format follows


def declared(job: Job, field: str) -> Limit | None:
    """The most ``field`` of the job's format may hold: the account's channel's word if it
    takes the format and says, else the format's home channel's."""
    channel = job.channel
    if channel is not None and field in channel.field_limits(job.fmt):
        return channel.field_limits(job.fmt)[field]
    home = FORMATS[job.fmt].home
    return channel_class(home).field_limits(job.fmt).get(field) if home else None


def _policy(job: Job, field: str, default: Policy | None = None) -> Policy:
    limit = declared(job, field)
    if limit is not None:
        return policy_for(limit, link_half_units=job.link_length)
    if default is None:
        raise job.fail(f"no channel declares a limit for {field}")
    return default


def _option(job: Job, name: str | None) -> str:
    value = job.account.options.get(name) if name else None
    return value if isinstance(value, str) else ""


def _tail(job: Job, title: str = "") -> Tail | None:
    """What the account's channel insists every text carries, named by the account's options."""
    if job.channel is None:
        return None
    url = _option(job, job.channel.link_domain_option)
    if url:
        return Tail(lambda text: links_to_domain(text, url), " " + url, "the safe-domain link")
    keyword = _option(job, job.channel.keyword_option)
    if keyword:
        return Tail(lambda text: keyword in title + "\n" + text, "\n" + keyword, "the keyword")
    return None


def policy_option(job: Job, key: str, default: int, low: int, high: int) -> int:
    """An integer account option within ``[low, high]``, or a render error naming it."""
    value = job.account.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise job.fail(f"option {key} must be an integer from {low} to {high}, not {value!r}")
    return value


def _sms_policy(job: Job) -> Sms:
    sign_name = job.account.options.get("sign_name")  # the sms channel's 签名, shown in 【】
    default = f"【{sign_name}】" if isinstance(sign_name, str) and sign_name else ""
    signature = job.account.options.get("sms_signature", default)
    if not isinstance(signature, str):
        raise job.fail("option sms_signature must be a string")
    return Sms(limit=policy_option(job, "sms_max_segments", 3, 1, 10), signature=signature)


def _single(
    key: str,
    family: str,
    default: Callable[[Job], Policy] | None = None,
    *,
    tags: bool = False,
    extra: Callable[[Job, Fitted], dict[str, Any]] | None = None,
    home: str | None = None,
) -> FormatSpec:
    """A format whose payload is one fitted text (plus ``extra`` keys)."""

    def build(c: Composer, job: Job) -> Built:
        policy = _policy(job, key, default(job) if default else None)
        fitted = c.fit(job, family, policy, hashtags=tags, tail=_tail(job))
        payload = {key: fitted.text, "text": fitted.text}
        payload.update(extra(job, fitted) if extra else {})
        return payload, {key: fitted}

    return FormatSpec((family,), build, home)


def _weibo(c: Composer, job: Job) -> Built:
    """The short text, with the safe-domain link the account needs and no ``#topic#`` mark
    (``statuses/share`` refuses one): ``#`` outside links is shown as ``＃``."""
    fitted = c.fit(job, "short", _policy(job, "text"), tail=_tail(job), clean=_no_topics)
    return {"text": fitted.text}, {"text": fitted}


def _no_topics(text: str) -> str:
    out, last = [], 0
    for m in URL_RE.finditer(text):
        out += [text[last : m.start()].replace("#", "＃"), m.group()]
        last = m.end()
    return "".join([*out, text[last:].replace("#", "＃")])


def _mastodon(job: Job) -> Policy:
    return Mastodon(
        limit=policy_option(job, "max_characters", 500, 50, 100000),
        url_length=policy_option(job, "url_length", 23, 1, 100),
    )


def _sms_extra(job: Job, fitted: Fitted) -> dict[str, Any]:
    return {"segments": _sms_policy(job).segments(fitted.text)}


def _titled(family: str, key: str, home: str) -> FormatSpec:
    """DingTalk markdown and Feishu post: a title line plus one fitted body."""

    def build(c: Composer, job: Job) -> Built:
        title = c.line(job, "title", _policy(job, "title"))
        body = c.fit(job, family, _policy(job, key), tail=_tail(job, title.text))
        payload: dict[str, Any] = {"title": title.text, "text": body.text}
        payload[key] = feishu_lines(body.text) if key == "post_lines" else body.text
        return payload, {"title": title, key: body}

    return FormatSpec(("title", family), build, home)


def _wechat_article(c: Composer, job: Job) -> Built:
    title = c.line(job, "title", _policy(job, "title"))
    digest = c.line(job, "summary", _policy(job, "digest"))
    content = c.fit(job, "article", _policy(job, "content_html"))
    text = c.fit(job, "long", _policy(job, "text"))
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
    return c.shortened(job, " ".join(value.split()), _policy(job, TEMPLATE_VALUES), prefix)


def _named_facts(c: Composer, job: Job) -> dict[str, str]:
    named = {k: str(v) for k, v in job.facts.items() if not isinstance(v, bool)}
    named["title"] = c.body(job, "title")(job.parts())
    named["summary"] = c.body(job, "summary")(job.parts())
    named["link"] = job.link
    named["reason"] = job.ctx.reason or ""
    return named


def _wechat_template(c: Composer, job: Job) -> Built:
    mapping = job.account.options.get("template_fields") or DEFAULT_TEMPLATE_FIELDS
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise job.fail("option template_fields must map template fields to fact names")
    if job.kind == "earthquake" and "template_fields" not in job.account.options:
        mapping = {**mapping, **EARTHQUAKE_TEMPLATE_FIELDS}
    named = _named_facts(c, job)
    unknown = sorted(set(mapping.values()) - set(named))
    if unknown:
        raise job.fail(
            f"template_fields names unknown facts {', '.join(unknown)}; "
            f"known: {', '.join(sorted(named))}"
        )
    fitted = {field: _template_value(c, job, field, named[fact]) for field, fact in mapping.items()}
    text = c.fit(job, "short", _policy(job, "text"))
    data = {field: {"value": f.text} for field, f in fitted.items()}
    lengths = {f"template_data.{field}": f for field, f in fitted.items()}
    return {"template_data": data, "url": job.link, "text": text.text}, {**lengths, "text": text}


def _email(c: Composer, job: Job) -> Built:
    """A subject line, the long text and the article's HTML: one mail's two alternatives."""
    subject = c.line(job, "title", _policy(job, "subject"))
    text = c.fit(job, "long", _policy(job, "text"))
    html = c.fit(job, "article", _policy(job, "html"))
    payload = {"subject": subject.text, "text": text.text, "html": html.text}
    return payload, {"subject": subject, "text": text, "html": html}


def _webhook(c: Composer, job: Job) -> Built:
    """The incident and its texts; a text that cannot be made is ``None``, its reason in
    ``errors`` (a short format's limit must not hold back the machine-readable message)."""
    main, sub = FORMATS["text"].build(c, replace(job, fmt="text"))
    texts: dict[str, str | None] = {"text": main["text"]}
    lengths: Lengths = {"text": sub["text"], "texts.text": sub["text"]}
    errors: dict[str, str] = {}
    for name in ("weibo", "sms"):
        try:
            payload, sub = FORMATS[name].build(c, replace(job, fmt=name))
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
    "text": _single("text", "long", lambda j: TEXT_LIMIT),
    "weibo": FormatSpec(("short",), _weibo, "weibo"),
    "twitter": _single("text", "short", lambda j: Twitter(), tags=True),
    "mastodon": _single("text", "short", _mastodon, tags=True),
    "telegram": _single(
        "text", "html", lambda j: TelegramHtml(), extra=lambda j, f: {"parse_mode": "HTML"}
    ),
    "sms": _single("text", "short", _sms_policy, extra=_sms_extra),
    "wecom_text": _single("text", "long", home="wecom_robot"),
    "wecom_markdown": _single("markdown", "markdown", home="wecom_robot"),
    "dingtalk_markdown": _titled("markdown", "markdown", "dingtalk_robot"),
    "feishu_post": _titled("long", "post_lines", "feishu_robot"),
    "wechat_article": FormatSpec(
        ("title", "summary", "article", "long"), _wechat_article, "wechat_oa"
    ),
    "wechat_template": FormatSpec(("title", "summary", "short"), _wechat_template, "wechat_oa"),
    "email": FormatSpec(("title", "long", "article"), _email, "email"),
    "webhook": FormatSpec(("long", "short"), _webhook),
}
