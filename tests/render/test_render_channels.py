"""The renderer reads the channels' declared limits: every payload fits what its channel takes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from alertcast.channels import BUILTINS, channel_class
from alertcast.channels.base import field_values
from alertcast.channels.weibo import WeiboChannel
from alertcast.config import AccountConfig
from alertcast.lengths import links_to_domain, weibo_length, weibo_topics
from alertcast.models import MsgType, Status
from alertcast.render import RenderContext, Renderer, RenderError
from alertcast.render.formats import FORMATS
from alertcast.render.samples import SAMPLE_LINK, sample_incident

SAFE = "https://alerts.example.gov.cn/"
# The options an account of each channel needs to render (and validate).
OPTIONS: dict[str, dict[str, Any]] = {
    "weibo": {"access_token_env": "T", "safe_domain_url": SAFE},
    "wechat_oa": {"app_id": "wx-app", "app_secret_env": "T"},
    "wecom_robot": {"key_env": "T"},
    "dingtalk_robot": {"key_env": "T", "keyword": "预警"},
    "feishu_robot": {"key_env": "T", "keyword": "预警"},
    "mastodon": {"access_token_env": "T", "base_url": "https://mastodon.example"},
    "telegram": {"token_env": "T", "chat_id": "@alerts"},
    "email": {"host": "127.0.0.1", "mail_from": "alerts@example.org", "to": ["duty@example.org"]},
    "sms": {
        "access_key_id_env": "T",
        "access_key_secret_env": "T",
        "sign_name": "成都应急",
        "template_code": "SMS_1",
        "recipients": ["+8613800138000"],
    },
}
DECLARING = [name for name in BUILTINS if channel_class(name).formats is not None]
TAKEN = [(name, fmt) for name in DECLARING for fmt in channel_class(name).formats or {}]
LONG = "震中附近多地震感强烈，部分房屋受损，道路出现裂缝。" * 400


def _account(name: str, fmt: str, **extra: Any) -> AccountConfig:
    options = {**OPTIONS[name], **extra}
    return AccountConfig(id=f"{name}-1", channel=name, format=fmt, exercise=True, **options)


def _render(
    renderer: Renderer, account: AccountConfig, msg_type: MsgType = MsgType.alert, **changes: Any
) -> dict[str, Any]:
    sample = sample_incident("earthquake", account.language, Status.exercise)
    ctx = RenderContext("inc_c", msg_type, SAMPLE_LINK, reason="误报")
    return renderer.render(sample.model_copy(update=changes), account, ctx)


def test_every_channel_that_declares_limits_has_an_options_row() -> None:
    """The table below walks every built-in channel with limits; a new one joins it."""
    assert set(DECLARING) == set(OPTIONS)


@pytest.mark.parametrize("name", list(BUILTINS))
def test_every_channel_takes_its_default_format(name: str) -> None:
    """A channel's default format is one it takes, and one the renderer offers."""
    cls = channel_class(name)
    assert cls.takes(cls.default_format) and cls.default_format in FORMATS


@pytest.mark.parametrize(("name", "fmt"), TAKEN, ids=[f"{n}-{f}" for n, f in TAKEN])
@pytest.mark.parametrize("language", ["zh-CN", "en"])
@pytest.mark.parametrize("description", ["", LONG], ids=["short", "long"])
@pytest.mark.parametrize("msg_type", list(MsgType))
def test_every_payload_fits_what_its_channel_declares(
    renderer: Renderer, name: str, fmt: str, language: str, description: str, msg_type: MsgType
) -> None:
    """Each declared field is within its limit, reported with the channel's limit and unit,
    and the channel's own check takes the payload (or the mandatory facts alone overflow)."""
    cls = channel_class(name)
    account = _account(name, fmt).model_copy(update={"language": language})
    try:
        payload = _render(renderer, account, msg_type, description=description)
    except RenderError as exc:  # "[EXERCISE] [CANCELLED] " is 23 characters: no template value
        match = re.search(r"need (\d+) .*the limit is (\d+)", exc.reason)
        assert match and int(match[1]) > int(match[2]), exc.reason
        pytest.skip(exc.reason)
    for path, limit in cls.field_limits(fmt).items():
        values = field_values(payload, path)
        assert values, (fmt, path)
        for where, value in values:
            assert limit.size(value) <= limit.most, (where, limit)
            reported = payload["lengths"][where.removesuffix(".value")]
            assert (reported["limit"], reported["unit"]) == (limit.most, limit.unit)
    cls.check(payload)


@pytest.mark.parametrize(
    ("fmt", "home"),
    [(fmt, spec.home) for fmt, spec in FORMATS.items() if spec.home is not None],
)
def test_a_console_account_renders_a_platform_format_within_its_home_limits(
    renderer: Renderer, fmt: str, home: str
) -> None:
    """A platform format rendered for an account of no platform follows its home channel."""
    account = AccountConfig(id="c", channel="console", format=fmt, exercise=True)
    payload = _render(renderer, account, description=LONG)
    channel_class(home).check(payload)


def test_a_channels_own_limit_wins_over_the_formats_default(renderer: Renderer) -> None:
    """Plain text for a WeCom robot is held to WeCom's 2048 bytes, for the console to 10 000
    characters."""
    wecom = _render(renderer, _account("wecom_robot", "text"), description=LONG)
    console = AccountConfig(id="c", channel="console", format="text", exercise=True)
    plain = _render(renderer, console, description=LONG)
    assert wecom["lengths"]["text"]["limit"] == 2048 and wecom["lengths"]["text"]["unit"] == "bytes"
    assert plain["lengths"]["text"]["limit"] == 10000


# -- what a channel insists every text carries ------------------------------------------------


def test_weibo_text_gets_the_safe_domain_link_within_140(renderer: Renderer) -> None:
    """A text whose link is off the safe domain gets the safe link appended, all within 140."""
    payload = _render(renderer, _account("weibo", "weibo"), description=LONG)
    text = payload["text"]
    assert text.endswith(" " + SAFE) and SAMPLE_LINK in text
    assert weibo_length(text) <= WeiboChannel.TEXT.most == payload["lengths"]["text"]["limit"]


def test_weibo_text_already_on_the_safe_domain_is_left_alone(renderer: Renderer) -> None:
    """A link already on the safe domain (or a subdomain) is enough: nothing appended."""
    account = _account("weibo", "weibo", safe_domain_url="https://example.org/")
    text = _render(renderer, account)["text"]
    assert links_to_domain(text, "https://example.org/") and text.count("https://") == 1


def test_weibo_render_fails_when_the_safe_link_cannot_fit(renderer: Renderer) -> None:
    """Mandatory facts that fit alone but not with the safe link: a RenderError saying so."""
    place = "泸" * 89
    account = _account("weibo", "weibo")
    incident = sample_incident("earthquake", "zh-CN", Status.actual)
    details = incident.details.model_copy(update={"place": place})  # type: ignore[attr-defined]
    ctx = RenderContext("inc_c", MsgType.alert, SAMPLE_LINK)
    long_place = incident.model_copy(update={"details": details, "headline": "·"})
    console = AccountConfig(id="c", channel="console", format="weibo")
    renderer.render(long_place, console, ctx)  # fits without the safe link
    says = f"the limit is 140, counting the safe-domain link '{SAFE}' weibo requires"
    with pytest.raises(RenderError, match=re.escape(says)):
        renderer.render(long_place, account, ctx)


def test_weibo_text_carries_no_topic_marks(renderer: Renderer) -> None:
    """'#' outside links shows as '＃': statuses/share refuses a #topic#."""
    text = _render(renderer, _account("weibo", "weibo"), description="#地震#速报 #泸定#")["text"]
    assert not weibo_topics(text) and "＃地震＃速报" in text


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("dingtalk_robot", "dingtalk_markdown"),
        ("feishu_robot", "feishu_post"),
        ("dingtalk_robot", "text"),
    ],
)
def test_robot_text_gets_the_keyword(renderer: Renderer, name: str, fmt: str) -> None:
    """A robot in keyword mode gets its keyword on a last line of the fitted text."""
    payload = _render(renderer, _account(name, fmt, keyword="应急值守"), description=LONG)
    assert payload["text"].endswith("\n应急值守")
    channel_class(name).check(payload)


def test_robot_keyword_already_shown_is_not_repeated(renderer: Renderer) -> None:
    """A keyword the text already carries is not added again."""
    payload = _render(renderer, _account("dingtalk_robot", "dingtalk_markdown", keyword="地震"))
    assert not payload["text"].endswith("\n地震")


def test_render_key_tells_apart_what_the_channel_makes_differ() -> None:
    """Two accounts render alike only with one channel, one safe domain and one keyword."""
    from alertcast.render import render_key

    weibo = _account("weibo", "weibo")
    other_domain = _account("weibo", "weibo", safe_domain_url="https://other.example.cn/")
    console = AccountConfig(id="c", channel="console", format="weibo", exercise=True)
    ding = _account("dingtalk_robot", "text")
    assert render_key(weibo) == render_key(weibo.model_copy(update={"id": "weibo-2"}))
    assert len({render_key(a) for a in (weibo, other_domain, console)}) == 3
    assert render_key(ding) != render_key(_account("dingtalk_robot", "text", keyword="值守"))


def test_check_renders_the_samples_in_each_channels_default_format(renderer: Renderer) -> None:
    """Accounts without a format are checked in their channel's default format, safe link and
    keyword included; every sample of every kind fits."""
    accounts = [AccountConfig(id=n, channel=n, exercise=True, **OPTIONS[n]) for n in DECLARING]
    assert renderer.check(accounts) == []


def test_check_reports_a_safe_link_that_cannot_fit(renderer: Renderer) -> None:
    """A safe-domain URL too long to fit beside the facts is a check problem of the format."""
    account = _account("weibo", "weibo", safe_domain_url=SAFE + "x" * 400)
    problems = dict(renderer.check([account]))
    assert "counting the safe-domain link" in problems["accounts[0].format"]
