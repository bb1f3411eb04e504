"""The Telegram adapter against the fake Bot API: HTML messages, replies by either parameter,
edits, the 48-hour rule for deletes, 429's retry_after and the per-chat and per-bot limits
(facts §6)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from alertcast.channels.base import AuthExpired, Permanent, RateLimited, Transient
from alertcast.channels.telegram import TelegramChannel
from alertcast.config import AccountConfig
from alertcast.secrets import Secrets
from alertcast.testing.fakes import FakeTelegram, serve

from .conftest import outgoing

TOKEN = "123456:AAbot-secret"
CHAT = -1001234567890
HTML = (
    "<b>四川省雅安市芦山县发生7.0级地震</b>\n震源深度13千米。\n"
    '详情：<a href="https://alerts.example.org/i/1">https://alerts.example.org/i/1</a>'
)
SHOWN = "四川省雅安市芦山县发生7.0级地震\n震源深度13千米。\n详情：https://alerts.example.org/i/1"


@pytest.fixture
async def bot() -> AsyncIterator[tuple[FakeTelegram, str]]:
    fake = FakeTelegram({TOKEN: 123456}, chats={CHAT})
    async with serve(fake) as url:
        yield fake, url


def adapter(session: aiohttp.ClientSession, url: str, **options: Any) -> TelegramChannel:
    account = AccountConfig(
        id="tg-city",
        channel="telegram",
        base_url=url,
        token_env="T_TG",
        chat_id=options.pop("chat_id", CHAT),
        **options,
    )
    opts = TelegramChannel.Options.model_validate(account.channel_options)
    return TelegramChannel(account, opts, session, Secrets({"T_TG": TOKEN}))


def message(text: str = HTML, parse_mode: str | None = "HTML") -> dict[str, Any]:
    payload: dict[str, Any] = {"format": "telegram", "text": text}
    if parse_mode:
        payload["parse_mode"] = parse_mode
    return payload


def sent(fake: FakeTelegram, remote_id: str | None) -> dict[str, Any]:
    chat, message_id, _ = str(remote_id).split(":")
    return fake.messages[(int(chat), int(message_id))]


async def test_an_html_message_reaches_the_chat(
    session: aiohttp.ClientSession, bot: tuple[FakeTelegram, str]
) -> None:
    """sendMessage in HTML parse mode; the receipt names the chat, the message and its date."""
    fake, url = bot
    before = int(time.time())
    receipt = await adapter(session, url).deliver(outgoing(message()))
    chat, message_id, date = str(receipt.remote_id).split(":")
    assert (int(chat), int(message_id)) == (CHAT, 1) and before <= int(date) <= time.time()
    assert sent(fake, receipt.remote_id)["text"] == SHOWN
    assert fake.requests[0].json()["parse_mode"] == "HTML"


async def test_a_plain_text_is_escaped_and_reads_the_same(
    session: aiohttp.ClientSession, bot: tuple[FakeTelegram, str]
) -> None:
    """A plain-text payload goes in HTML mode with &, <, > escaped: shown exactly as given."""
    fake, url = bot
    plain = "烈度<VI & 震级>6.0 <b>not bold</b>"
    receipt = await adapter(session, url).deliver(outgoing(message(plain, None)))
    assert sent(fake, receipt.remote_id)["text"] == plain
    assert "&lt;VI &amp; 震级&gt;6.0" in fake.requests[0].json()["text"]


async def test_html_telegram_cannot_parse_is_permanent(
    session: aiohttp.ClientSession, bot: tuple[FakeTelegram, str]
) -> None:
    """An HTML payload with a bare & or an unclosed tag is refused by the API: permanent."""
    _, url = bot
    for bad in ("<b>unclosed", "R&D <i>x</i>", "<div>block</div>"):
        with pytest.raises(Permanent, match="can't parse entities"):
            await adapter(session, url).deliver(outgoing(message(bad)))


@pytest.mark.parametrize(
    ("legacy", "reply_with", "threaded"),
    [
        (False, "reply_parameters", True),
        (False, "reply_to_message_id", True),
        (True, "reply_to_message_id", True),
        (True, "reply_parameters", False),  # an old server ignores what it does not know
    ],
)
async def test_a_reply_threads_by_the_parameter_the_server_knows(
    session: aiohttp.ClientSession, legacy: bool, reply_with: str, threaded: bool
) -> None:
    """reply_parameters (Bot API 7.0+) or reply_to_message_id (older servers) quote the original."""
    fake = FakeTelegram({TOKEN: 123456}, chats={CHAT}, legacy=legacy)
    async with serve(fake) as url:
        channel = adapter(session, url, reply_with=reply_with)
        original = await channel.deliver(outgoing(message()))
        reply = await channel.deliver(
            outgoing(message("<b>更新</b>"), action="reply", target=original.remote_id, key="u")
        )
    quoted = sent(fake, reply.remote_id)["reply_to_message"]
    assert (quoted is not None and quoted["message_id"] == 1) is threaded


async def test_a_reply_to_a_deleted_original_still_goes(
    session: aiohttp.ClientSession, bot: tuple[FakeTelegram, str]
) -> None:
    """allow_sending_without_reply: the correction reaches the chat even without its original."""
    fake, url = bot
    channel = adapter(session, url)
    original = await channel.deliver(outgoing(message()))
    fake.messages.clear()
    reply = await channel.deliver(
        outgoing(message("<b>取消</b>"), action="reply", target=original.remote_id, key="c")
    )
    assert sent(fake, reply.remote_id)["reply_to_message"] is None


async def test_edit_changes_the_text_and_an_unchanged_edit_is_done(
    session: aiohttp.ClientSession, bot: tuple[FakeTelegram, str]
) -> None:
    """editMessageText changes the original; "message is not modified" counts as done."""
    fake, url = bot
    channel = adapter(session, url)
    original = await channel.deliver(outgoing(message()))
    edit = outgoing(message("<b>【取消】</b>误报"), action="edit", target=original.remote_id)
    await channel.deliver(edit)
    assert sent(fake, original.remote_id)["text"] == "【取消】误报"
    again = await channel.deliver(edit)
    assert again.duplicate is True and again.remote_id == original.remote_id


async def test_delete_within_48_hours(
    session: aiohttp.ClientSession, bot: tuple[FakeTelegram, str]
) -> None:
    """deleteMessage takes down a young message; a repeated delete is done."""
    fake, url = bot
    channel = adapter(session, url)
    original = await channel.deliver(outgoing(message()))
    await channel.deliver(outgoing(action="delete", target=original.remote_id, key="d"))
    assert fake.messages == {} and len(fake.deleted) == 1
    again = await channel.deliver(outgoing(action="delete", target=original.remote_id, key="d"))
    assert again.duplicate is True


async def test_a_delete_after_48_hours_is_refused_before_calling(
    session: aiohttp.ClientSession, bot: tuple[FakeTelegram, str]
) -> None:
    """The receipt's date says the message is older than 48 h: Permanent, saying why, no call."""
    fake, url = bot
    channel = adapter(session, url)
    original = await channel.deliver(outgoing(message()))
    chat, message_id, date = str(original.remote_id).split(":")
    old = f"{chat}:{message_id}:{int(date) - 49 * 3600}"
    with pytest.raises(Permanent, match=r"only within 48 hours.*49 hours ago"):
        await channel.deliver(outgoing(action="delete", target=old, key="d"))
    assert len(fake.requests) == 1 and fake.deleted == {}


async def test_the_api_refuses_an_old_delete_it_was_not_told_the_age_of(
    session: aiohttp.ClientSession,
) -> None:
    """A bare message id (no date): the Bot API's own 48-hour refusal is permanent."""
    now = time.time()
    fake = FakeTelegram({TOKEN: 123456}, chats={CHAT}, clock=lambda: now - 50 * 3600)
    async with serve(fake) as url:
        channel = adapter(session, url)
        original = await channel.deliver(outgoing(message()))
        fake.clock = lambda: now
        bare = str(original.remote_id).split(":")[1]
        with pytest.raises(Permanent, match="can't be deleted"):
            await channel.deliver(outgoing(action="delete", target=bare, key="d"))


async def test_429_waits_retry_after(
    session: aiohttp.ClientSession, bot: tuple[FakeTelegram, str]
) -> None:
    """A flood answer's parameters.retry_after is the wait, exactly."""
    fake, url = bot
    fake.flood(41)
    with pytest.raises(RateLimited) as info:
        await adapter(session, url).deliver(outgoing(message()))
    assert info.value.retry_after == 41.0


async def test_the_per_chat_limit(session: aiohttp.ClientSession) -> None:
    """Past 20 a minute in one chat the API floods; the adapter declares the same limits."""
    fake = FakeTelegram({TOKEN: 123456}, chats={CHAT}, per_chat_per_minute=2)
    async with serve(fake) as url:
        channel = adapter(session, url)
        for n in range(2):
            await channel.deliver(outgoing(message(), key=f"k{n}"))
        with pytest.raises(RateLimited) as info:
            await channel.deliver(outgoing(message(), key="k3"))
    assert info.value.retry_after is not None and 55 <= info.value.retry_after <= 60
    limits = TelegramChannel.limits
    assert (limits.per_minute, limits.per_second, limits.concurrency) == (20, 1, 1)


async def test_accounts_of_one_bot_keep_its_global_limit_together(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two chats on one bot: past the bot's per-second limit a send waits, never floods."""
    monkeypatch.setattr(TelegramChannel, "GLOBAL_PER_SECOND", 2)
    fake = FakeTelegram({TOKEN: 123456}, chats={CHAT, -1002}, per_bot_per_second=2)
    async with serve(fake) as url:
        channels = [adapter(session, url), adapter(session, url, chat_id=-1002)]
        started = time.monotonic()
        for n in range(3):
            await channels[n % 2].deliver(outgoing(message(), key=f"k{n}"))
    assert time.monotonic() - started >= 0.9 and len(fake.messages) == 3


@pytest.mark.parametrize(
    ("setup", "raised", "words"),
    [
        (lambda f: f.blocked.add(CHAT), AuthExpired, "bot was blocked by the user"),
        (lambda f: f.chats.discard(CHAT), Permanent, "chat not found"),
        (lambda f: f.migrated.update({CHAT: -100999}), Permanent, "supergroup -100999"),
        (lambda f: f.inject(_gateway(502)), Transient, "Bad Gateway"),
    ],
)
async def test_error_table(
    session: aiohttp.ClientSession,
    bot: tuple[FakeTelegram, str],
    setup: Any,
    raised: type[Exception],
    words: str,
) -> None:
    """Each refusal maps to its typed error; the bot token never shows in the reason."""
    fake, url = bot
    setup(fake)
    with pytest.raises(raised, match=words) as info:
        await adapter(session, url).deliver(outgoing(message()))
    assert TOKEN not in str(info.value) and type(info.value) is raised


async def test_an_unknown_token_is_auth_expired(
    session: aiohttp.ClientSession, bot: tuple[FakeTelegram, str]
) -> None:
    """A revoked token answers 401 Unauthorized: the account needs a new one."""
    _, url = bot
    account = AccountConfig(
        id="t", channel="telegram", base_url=url, token_env="T_TG", chat_id=CHAT
    )
    opts = TelegramChannel.Options.model_validate(account.channel_options)
    revoked = TelegramChannel(account, opts, session, Secrets({"T_TG": "999:revoked"}))
    with pytest.raises(AuthExpired, match="Unauthorized") as info:
        await revoked.deliver(outgoing(message()))
    assert "999:revoked" not in str(info.value)


async def test_a_text_over_4096_units_is_refused_before_calling(
    session: aiohttp.ClientSession, bot: tuple[FakeTelegram, str]
) -> None:
    """4096 UTF-16 units after entity parsing: tags do not count, an astral character 2."""
    fake, url = bot
    channel = adapter(session, url)
    fits = "<b>" + "震" * 4094 + "</b>\U0001f30b"  # 4094 + 2
    await channel.deliver(outgoing(message(fits)))
    with pytest.raises(Permanent, match="4097 UTF-16 units"):
        await channel.deliver(outgoing(message(fits + "!"), key="k2"))
    assert len(fake.requests) == 1


def _gateway(status: int) -> Any:
    from alertcast.testing.fakes import Refusal

    return Refusal(status, "Bad Gateway", status=status)


@pytest.mark.parametrize("language", ["zh-CN", "en"])
async def test_what_the_renderer_fits_the_bot_api_takes(
    session: aiohttp.ClientSession, bot: tuple[FakeTelegram, str], language: str
) -> None:
    """A long sample rendered in the telegram format parses and fits as the Bot API counts."""
    from alertcast.config import RenderConfig
    from alertcast.models import MsgType, Status
    from alertcast.render import RenderContext, Renderer
    from alertcast.render.samples import SAMPLE_LINK, sample_incident

    fake, url = bot
    channel = adapter(session, url, exercise=True)
    account = channel.account.model_copy(update={"language": language})
    sample = sample_incident("earthquake", language, Status.exercise)
    long = sample.model_copy(update={"description": "震中附近 <多地> & 震感强烈。" * 400})
    ctx = RenderContext("inc_t", MsgType.alert, SAMPLE_LINK)
    payload = Renderer(RenderConfig()).render(long, account, ctx)
    receipt = await channel.deliver(outgoing(payload))
    shown = sent(fake, receipt.remote_id)["text"]
    assert len(shown.encode("utf-16-le")) // 2 <= 4096 and "<多地> &" in shown
