"""The payload contract the channel adapters rely on: keys, markers, lengths, escaping, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from alertcast.config import AccountConfig
from alertcast.models import MsgType, Status, incident_json
from alertcast.render import RenderContext, Renderer, RenderError
from alertcast.render.samples import SAMPLE_LINK, sample_incident

Account = Callable[..., AccountConfig]
KEYS = {
    "text": {"text"},
    "webhook": {"incident", "incident_id", "msg_type", "references", "texts", "text"},
    "weibo": {"text"},
    "twitter": {"text"},
    "mastodon": {"text"},
    "telegram": {"text", "parse_mode"},
    "wechat_article": {"title", "digest", "content_html", "source_url", "text"},
    "wechat_template": {"template_data", "url", "text"},
    "wecom_markdown": {"markdown", "text"},
    "wecom_text": {"text"},
    "dingtalk_markdown": {"title", "markdown", "text"},
    "feishu_post": {"title", "post_lines", "text"},
    "sms": {"text", "segments"},
    "email": {"subject", "text", "html"},
}
MARKERS = [
    (Status.exercise, "zh-CN", "【演习】"),
    (Status.test, "zh-CN", "【测试】"),
    (Status.exercise, "en", "[EXERCISE]"),
    (Status.test, "en", "[TEST]"),
]


def _render(renderer: Renderer, fmt: str, language: str = "zh-CN", **kw: Any) -> dict[str, Any]:
    status = kw.pop("status", Status.actual)
    kind = kw.pop("kind", "earthquake")
    ctx = RenderContext("inc_c", kw.pop("msg_type", MsgType.alert), SAMPLE_LINK, **kw)
    account = AccountConfig(id="acct", channel="console", format=fmt, language=language)
    return renderer.render(sample_incident(kind, language, status), account, ctx)


def test_formats_are_the_contract(renderer: Renderer) -> None:
    """The renderer offers exactly the formats of the contract."""
    assert renderer.formats() == sorted(KEYS)


@pytest.mark.parametrize("fmt", sorted(KEYS))
def test_payload_keys_and_lengths(renderer: Renderer, fmt: str) -> None:
    """Each payload has its format's keys, is JSON, and every length is within its limit."""
    payload = _render(renderer, fmt)
    assert payload["format"] == fmt
    assert KEYS[fmt] <= payload.keys()
    assert json.loads(json.dumps(payload, ensure_ascii=False)) == payload
    assert payload["lengths"]
    for length in payload["lengths"].values():
        assert 0 < length["used"] <= length["limit"], length


@pytest.mark.parametrize("fmt", sorted(KEYS))
@pytest.mark.parametrize(("status", "language", "marker"), MARKERS)
def test_drill_marker_first(
    renderer: Renderer, fmt: str, status: Status, language: str, marker: str
) -> None:
    """Every text of a drill begins with the marker in the account's language."""
    payload = _render(renderer, fmt, language, status=status)
    shown = [payload["text"]]
    shown += [payload[k] for k in ("title", "digest", "markdown", "subject") if k in payload]
    shown += [payload["content_html"].split("<strong>", 1)[1]] if "content_html" in payload else []
    shown += [payload["html"].split("<strong>", 1)[1]] if "html" in payload else []
    shown += list(payload.get("texts", {}).values())
    if "template_data" in payload:
        shown += [payload["template_data"][k]["value"] for k in ("first", "keyword1")]
    assert all(text.startswith(marker) for text in shown), shown


UPDATES = [
    (MsgType.update, "zh-CN", "【演习】【更新】"),
    (MsgType.cancel, "zh-CN", "【演习】【取消】"),
    (MsgType.update, "en", "[EXERCISE] [UPDATE] "),
    (MsgType.cancel, "en", "[EXERCISE] [CANCELLED] "),
]


@pytest.mark.parametrize(("msg_type", "language", "prefix"), UPDATES)
@pytest.mark.parametrize("kind", ["earthquake", "fire", "police", "weather", "general"])
def test_updates_and_cancellations(
    renderer: Renderer, msg_type: MsgType, language: str, prefix: str, kind: str
) -> None:
    """Every kind has update and cancellation wording; a cancellation needs only a reason."""
    payload = _render(
        renderer,
        "weibo",
        language,
        status=Status.exercise,
        msg_type=msg_type,
        kind=kind,
        reason="误报" if language == "zh-CN" else "sent in error",
    )
    assert payload["text"].startswith(prefix)
    if msg_type is MsgType.cancel:
        assert ("误报" if language == "zh-CN" else "sent in error") in payload["text"]


def test_webhook_carries_incident_and_every_text(renderer: Renderer) -> None:
    """The webhook payload has the full incident and the text, weibo and sms renderings."""
    incident = sample_incident("fire", "zh-CN", Status.actual)
    ctx = RenderContext("inc_w", MsgType.update, SAMPLE_LINK, references="inc_v")
    account = AccountConfig(id="hook", channel="webhook", format="webhook")
    payload = renderer.render(incident, account, ctx)
    assert payload["incident"] == incident_json(incident)
    assert (payload["incident_id"], payload["msg_type"], payload["references"]) == (
        "inc_w",
        "update",
        "inc_v",
    )
    assert set(payload["texts"]) == {"text", "weibo", "sms"}
    assert payload["lengths"]["texts.weibo"]["limit"] == 140


@pytest.mark.parametrize(("fmt", "key"), [("wechat_article", "content_html"), ("telegram", "text")])
def test_html_shows_markup_as_text(renderer: Renderer, fmt: str, key: str) -> None:
    """A description containing <script> is shown as text in HTML formats."""
    incident = sample_incident("general", "en", Status.actual).model_copy(
        update={"description": "<script>alert(1)</script> & more"}
    )
    account = AccountConfig(id="h", channel="console", format=fmt, language="en")
    html = renderer.render(incident, account, RenderContext("i", MsgType.alert, SAMPLE_LINK))[key]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html


def test_wechat_article_limits(renderer: Renderer) -> None:
    """Title within 64 bytes, digest within 120 characters, source URL is the link."""
    payload = _render(renderer, "wechat_article", status=Status.exercise, msg_type=MsgType.update)
    assert len(payload["title"].encode("utf-8")) <= 64
    assert len(payload["digest"]) <= 120
    assert payload["source_url"] == SAMPLE_LINK


def test_wechat_template_fields_follow_the_mapping(renderer: Renderer, account: Account) -> None:
    """template_fields maps each template field to a named fact, each value ≤ 20 characters."""
    mapping = {
        "first": "title",
        "keyword1": "place",
        "keyword2": "magnitude_text",
        "keyword3": "description",
        "remark": "link",
    }
    ctx = RenderContext("i", MsgType.alert, SAMPLE_LINK)
    incident = sample_incident("earthquake", "zh-CN", Status.actual)
    payload = renderer.render(incident, account("wechat_template", template_fields=mapping), ctx)
    data = payload["template_data"]
    assert list(data) == list(mapping)
    assert data["keyword1"]["value"] == "四川甘孜州泸定县"
    assert data["keyword2"]["value"] == "6.8级"
    assert all(len(v["value"]) <= 20 and "\n" not in v["value"] for v in data.values())
    assert data["keyword3"]["value"].endswith("…")


def test_wechat_template_unknown_fact(renderer: Renderer, account: Account) -> None:
    """A mapping naming an unknown fact is a render error that lists the known ones."""
    incident = sample_incident("fire", "zh-CN", Status.actual)
    bad = account("wechat_template", template_fields={"keyword1": "colour"})
    with pytest.raises(RenderError, match=r"unknown facts colour; known: .*address"):
        renderer.render(incident, bad, RenderContext("i", MsgType.alert, SAMPLE_LINK))


def test_unknown_format_names_account(renderer: Renderer) -> None:
    """An unknown format is a RenderError naming the account and the format."""
    account = AccountConfig(id="odd", channel="console", format="fax")
    with pytest.raises(RenderError, match=r"^account odd format fax: unknown format"):
        renderer.render(
            sample_incident("fire", "zh-CN", Status.actual),
            account,
            RenderContext("i", MsgType.alert, SAMPLE_LINK),
        )


def test_default_format(renderer: Renderer) -> None:
    """An account without a format gets the caller's default format."""
    account = AccountConfig(id="c", channel="console")
    incident = sample_incident("fire", "zh-CN", Status.actual)
    ctx = RenderContext("i", MsgType.alert, SAMPLE_LINK)
    assert renderer.render(incident, account, ctx, default_format="sms")["format"] == "sms"


def test_link_falls_back_to_incident_url(renderer: Renderer) -> None:
    """Without ctx.link the incident's own url is the link to the full text."""
    incident = sample_incident("fire", "zh-CN", Status.actual).model_copy(
        update={"url": "https://fire.example.org/notice/1"}
    )
    account = AccountConfig(id="c", channel="console", format="weibo")
    payload = renderer.render(incident, account, RenderContext("i", MsgType.alert, None))
    assert payload["text"].endswith("详情：https://fire.example.org/notice/1")


def test_webhook_survives_a_text_that_cannot_fit(renderer: Renderer) -> None:
    """A place too long for SMS leaves texts.sms None with the reason; the webhook still goes."""
    place = "四川省" * 60
    incident = sample_incident("earthquake", "zh-CN", Status.actual)
    incident = incident.model_copy(
        update={"details": incident.details.model_copy(update={"place": place})}  # type: ignore[attr-defined]
    )
    account = AccountConfig(id="hook", channel="webhook", format="webhook")
    payload = renderer.render(incident, account, RenderContext("i", MsgType.alert, SAMPLE_LINK))
    assert payload["texts"]["sms"] is None and payload["texts"]["weibo"] is None
    assert "mandatory facts need" in payload["errors"]["sms"]
    assert place in payload["text"]
