"""Every channel's declared limits, against the fakes: over a limit is refused with the reason,
never cut; what the renderer makes is taken; and one Weibo counter, never under the fake's."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from copy import deepcopy
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertcast.channels import BUILTINS, Channel, channel_class
from alertcast.channels.base import Permanent
from alertcast.config import RenderConfig
from alertcast.lengths import Limit, weibo_length
from alertcast.models import MsgType, Status
from alertcast.render import RenderContext, Renderer
from alertcast.render.samples import SAMPLE_LINK, sample_incident
from alertcast.testing.fakes import (
    FakeDingtalk,
    FakeFeishu,
    FakeMastodon,
    FakePlatform,
    FakeSms,
    FakeTelegram,
    FakeWechat,
    FakeWecom,
    FakeWeibo,
    RobotSecurity,
    serve,
)
from alertcast.testing.fakes.weibo import weibo_length as fake_weibo_length
from tests.channels.conftest import build, outgoing
from tests.channels.smtp_server import Mailbox, smtp_server

WECHAT_MODES: dict[str, dict[str, Any]] = {
    "wechat_article": {"mode": "article", "thumb_media_id": "thumb-1"},
    "wechat_template": {"mode": "template", "template_id": "TPL-ALERT", "template_to": ["o-alice"]},
    "text": {"mode": "text"},
}
# channel -> (the fake, the account's options, the environment its *_env keys name)
RIGS: dict[str, Callable[[str], tuple[FakePlatform | Mailbox, dict[str, Any], dict[str, str]]]] = {
    "weibo": lambda fmt: (
        FakeWeibo(),
        {"access_token_env": "T", "safe_domain_url": "https://alerts.example.gov.cn/"},
        {"T": "weibo-token"},
    ),
    "wechat_oa": lambda fmt: (
        FakeWechat(),
        {"app_id": "wx-app", "app_secret_env": "T", **WECHAT_MODES[fmt]},
        {"T": "wx-secret"},
    ),
    "wecom_robot": lambda fmt: (FakeWecom(), {"key_env": "T"}, {"T": "wecom-key"}),
    "dingtalk_robot": lambda fmt: (
        FakeDingtalk({"ding-token": RobotSecurity(keywords=("预警",))}),
        {"key_env": "T", "keyword": "预警"},
        {"T": "ding-token"},
    ),
    "feishu_robot": lambda fmt: (
        FakeFeishu({"feishu-hook": RobotSecurity(keywords=("预警",))}),
        {"key_env": "T", "keyword": "预警"},
        {"T": "feishu-hook"},
    ),
    "mastodon": lambda fmt: (
        FakeMastodon({"masto-token": "1"}),
        {"access_token_env": "T"},
        {"T": "masto-token"},
    ),
    "telegram": lambda fmt: (
        FakeTelegram({"1:tg-token": 1}, chats={-1001}),
        {"token_env": "T", "chat_id": -1001},
        {"T": "1:tg-token"},
    ),
    "sms": lambda fmt: (
        FakeSms({"ak": "sk-secret"}, signs={"成都应急"}, templates={"SMS_1": "${content}"}),
        {
            "access_key_id_env": "A",
            "access_key_secret_env": "T",
            "sign_name": "成都应急",
            "template_code": "SMS_1",
            "recipients": ["+8613800138000"],
        },
        {"A": "ak", "T": "sk-secret"},
    ),
    "email": lambda fmt: (
        Mailbox(),
        {"security": "none", "mail_from": "alerts@example.org", "to": ["duty@example.org"]},
        {},
    ),
}
TAKEN = [
    (name, fmt)
    for name in BUILTINS
    for fmt in channel_class(name).formats or {}  # console, file, webhook: any format
]
FIELDS = [
    (name, fmt, path, limit)
    for name, fmt in TAKEN
    for path, limit in channel_class(name).field_limits(fmt).items()
]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(RenderConfig())


@asynccontextmanager
async def _rig(
    name: str, fmt: str, session: aiohttp.ClientSession
) -> AsyncIterator[tuple[FakePlatform | Mailbox, Channel]]:
    fake, options, env = RIGS[name](fmt)
    if isinstance(fake, Mailbox):  # email: an SMTP server, not an HTTP fake
        with smtp_server(fake) as box:
            cls = channel_class(name)
            yield box, build(cls, session, env, host=box.host, port=box.port, format=fmt, **options)
        return
    async with serve(fake) as url:
        yield fake, build(channel_class(name), session, env, base_url=url, format=fmt, **options)


def _rendered(renderer: Renderer, channel: Channel) -> dict[str, Any]:
    incident = sample_incident("earthquake", "zh-CN", Status.actual)
    return renderer.render(
        incident, channel.account, RenderContext("i", MsgType.alert, SAMPLE_LINK)
    )


def _over(limit: Limit) -> Any:
    """A value just over ``limit`` in its unit."""
    if limit.unit == "json-bytes":
        return [[{"tag": "text", "text": "预警" + "长" * (limit.most // 3)}]]
    return "预警" + "长" * (limit.most if limit.unit != "bytes" else limit.most // 3)


def _with(payload: dict[str, Any], path: str, value: Any) -> tuple[dict[str, Any], str]:
    """``payload`` with the field at ``path`` (``*``: a ``keyword1``) set to ``value``."""
    out = deepcopy(payload)
    keys = ["keyword1" if part == "*" else part for part in path.split(".")]
    node = out
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return out, ".".join(keys)


def test_every_channel_with_limits_has_a_rig() -> None:
    """The tables here walk every built-in channel that declares limits."""
    assert {name for name, _ in TAKEN} == set(RIGS)


@pytest.mark.parametrize(
    ("name", "fmt", "path", "limit"), FIELDS, ids=[f"{n}-{f}-{p}" for n, f, p, _ in FIELDS]
)
async def test_over_a_declared_limit_is_refused_unsent(
    renderer: Renderer,
    session: aiohttp.ClientSession,
    name: str,
    fmt: str,
    path: str,
    limit: Limit,
) -> None:
    """A payload with one field just over its limit: Permanent naming the field and the limit,
    and the fake never hears of it."""
    async with _rig(name, fmt, session) as (fake, channel):
        payload, where = _with(_rendered(renderer, channel), path, _over(limit))
        with pytest.raises(Permanent) as refused:
            await channel.deliver(outgoing(payload))
        assert where in refused.value.reason and f"at most {limit}" in refused.value.reason
        assert not fake.requests


@pytest.mark.parametrize(("name", "fmt"), TAKEN, ids=[f"{n}-{f}" for n, f in TAKEN])
async def test_what_the_renderer_makes_is_taken(
    renderer: Renderer, session: aiohttp.ClientSession, name: str, fmt: str
) -> None:
    """Every format a channel takes, rendered for its account, goes through the fake."""
    async with _rig(name, fmt, session) as (_fake, channel):
        receipt = await channel.deliver(outgoing(_rendered(renderer, channel)))
        assert receipt.http_status in (None, 200)


@pytest.mark.parametrize("name", [n for n in BUILTINS if channel_class(n).formats is not None])
async def test_a_format_the_channel_does_not_take_is_refused(
    session: aiohttp.ClientSession, name: str
) -> None:
    """A payload in a format the channel does not take is refused, the formats it takes named."""
    async with _rig(name, channel_class(name).default_format, session) as (fake, channel):
        with pytest.raises(Permanent, match=f"{name} takes the formats .*; not 'twitter'"):
            await channel.deliver(outgoing({"format": "twitter", "text": "预警"}))
        assert not fake.requests


# -- the one Weibo counter ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("abcd", 2),
        ("泸定", 2),
        ("a泸", 2),
        ("地震 https://alerts.example.gov.cn/x", 13),
        ("https://t.cn/abc", 8),
        ("我司CEO与我司吉祥物...好大一坨！", 16),  # WeCase's reference case (facts §1.7)
    ],
)
def test_weibo_length(text: str, units: int) -> None:
    """CJK counts 1, ASCII ½, a non-t.cn link 10, rounded up: the adapter's and the fake's."""
    assert weibo_length(text) == fake_weibo_length(text) == units


_LINKS = [" https://alerts.example.gov.cn/i/1 ", " https://t.cn/A6abcdef ", " https://weibo.com/x "]
_PIECES = st.sampled_from(
    ["泸定", "地震", "é", "😷", "abc ", "6.8", "，", *_LINKS, " https://a.cn/" + "x" * 150 + " "]
)


@given(st.lists(_PIECES, max_size=40))
def test_our_weibo_count_is_never_under_the_fakes(pieces: list[str]) -> None:
    """The fake re-derives Weibo's count from the facts; ours is never lower (we count the
    stricter reading: Latin-1 letters weigh a whole unit)."""
    text = "".join(pieces)
    assert weibo_length(text) >= fake_weibo_length(text)


def test_adapters_and_fakes_import_no_renderer_and_no_core() -> None:
    """Every adapter loads without the renderer, intake, planning or dispatch; the fakes
    without the adapters' counters."""
    code = (
        "import sys\n"
        "from alertcast.channels import BUILTINS, channel_class\n"
        "import alertcast.testing.fakes\n"
        "[channel_class(n) for n in BUILTINS]\n"
        "bad = ('alertcast.render', 'alertcast.service', 'alertcast.dispatch', 'alertcast.plan',"
        " 'alertcast.lifecycle', 'alertcast.api', 'alertcast.app')\n"
        "print(sorted(m for m in sys.modules if m.startswith(bad)))\n"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
