"""The Mastodon adapter against the fake instance: statuses, threading, edits, deletions, the
instance's character limit, idempotency and rate limits (facts §5)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from alertcast.channels.base import AuthExpired, Permanent, RateLimited, Transient
from alertcast.channels.mastodon import MastodonChannel, mastodon_length
from alertcast.config import AccountConfig
from alertcast.secrets import Secrets
from alertcast.testing.fakes import FakeMastodon, serve
from alertcast.testing.fakes.mastodon import status_length

from .conftest import outgoing

TOKEN = "masto-secret-token"
ENV = {"T_MASTO": TOKEN}
TEXT = "【地震】四川省雅安市芦山县发生7.0级地震 详情：https://alerts.example.org/i/inc_1"


@pytest.fixture
async def instance() -> AsyncIterator[tuple[FakeMastodon, str]]:
    fake = FakeMastodon({TOKEN: "42"})
    async with serve(fake) as url:
        yield fake, url


def adapter(session: aiohttp.ClientSession, url: str, **options: Any) -> MastodonChannel:
    """An adapter as the daemon builds it: render keys stay on the account."""
    account = AccountConfig(
        id="masto-city", channel="mastodon", base_url=url, access_token_env="T_MASTO", **options
    )
    opts = MastodonChannel.Options.model_validate(account.channel_options)
    return MastodonChannel(account, opts, session, Secrets(ENV))


def toot(text: str = TEXT) -> dict[str, Any]:
    return {"format": "mastodon", "text": text}


async def test_a_post_is_a_public_status_in_the_accounts_language(
    session: aiohttp.ClientSession, instance: tuple[FakeMastodon, str]
) -> None:
    """A post becomes a status with the configured visibility and the account's language."""
    fake, url = instance
    receipt = await adapter(session, url, language="zh-CN").deliver(outgoing(toot()))
    status = fake.statuses[str(receipt.remote_id)]
    assert (status["text"], status["visibility"], status["language"]) == (TEXT, "public", "zh")
    unlisted = adapter(session, url, visibility="unlisted", language="en")
    second = fake.statuses[str((await unlisted.deliver(outgoing(toot(), key="k2"))).remote_id)]
    assert (second["visibility"], second["language"]) == ("unlisted", "en")


async def test_a_retry_with_the_same_key_posts_nothing_twice(
    session: aiohttp.ClientSession, instance: tuple[FakeMastodon, str]
) -> None:
    """The delivery's key travels as Idempotency-Key: a retry answers the first status."""
    fake, url = instance
    channel = adapter(session, url)
    first = await channel.deliver(outgoing(toot(), key="idem-A"))
    again = await channel.deliver(outgoing(toot(), key="idem-A", attempt=2))
    assert again.remote_id == first.remote_id and len(fake.statuses) == 1
    assert fake.requests[0].method == "POST"


async def test_an_update_replies_in_the_originals_thread(
    session: aiohttp.ClientSession, instance: tuple[FakeMastodon, str]
) -> None:
    """A reply carries in_reply_to_id; one to an original deleted by hand still goes, alone."""
    fake, url = instance
    channel = adapter(session, url)
    original = str((await channel.deliver(outgoing(toot()))).remote_id)
    reply = await channel.deliver(outgoing(toot("更新"), action="reply", target=original, key="r"))
    assert fake.statuses[str(reply.remote_id)]["in_reply_to_id"] == original
    fake.statuses.pop(original)
    alone = await channel.deliver(outgoing(toot("取消"), action="reply", target=original, key="c"))
    assert fake.statuses[str(alone.remote_id)]["in_reply_to_id"] is None
    assert alone.detail["threaded"] is False


async def test_edit_changes_the_original_and_delete_takes_it_down(
    session: aiohttp.ClientSession, instance: tuple[FakeMastodon, str]
) -> None:
    """Edit is PUT /api/v1/statuses/:id; delete is DELETE, and a repeated delete is done."""
    fake, url = instance
    channel = adapter(session, url)
    original = str((await channel.deliver(outgoing(toot()))).remote_id)
    await channel.deliver(outgoing(toot("【取消】误报"), action="edit", target=original, key="e"))
    assert fake.statuses[original]["text"] == "【取消】误报"
    assert fake.history[original] == [TEXT] and fake.statuses[original]["edited_at"]
    gone = await channel.deliver(outgoing(action="delete", target=original, key="d"))
    assert gone.remote_id == original and original in fake.deleted
    again = await channel.deliver(outgoing(action="delete", target=original, key="d", attempt=2))
    assert again.duplicate is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abc", 3),
        ("地震" * 10, 20),
        ("见 https://alerts.example.org/" + "x" * 200, 2 + 23),
        ("e\u0301", 1),  # e + combining acute: one grapheme
        ("\U0001f468\u200d\U0001f469\u200d\U0001f467", 1),  # a ZWJ family
        ("\U0001f1e8\U0001f1f3", 1),  # a flag
        ("@alerts@mastodon.example hi", 10),  # the mention counts @alerts
    ],
)
def test_the_adapter_and_the_fake_count_as_mastodon(text: str, expected: int) -> None:
    """Both counters give Mastodon's count: graphemes, URLs 23, a mention's user part."""
    assert mastodon_length(text) == expected == status_length(text)


async def test_the_instance_limit_is_the_accounts_max_characters(
    session: aiohttp.ClientSession, instance: tuple[FakeMastodon, str]
) -> None:
    """Over max_characters the adapter refuses before calling; a long URL counts 23."""
    fake, url = instance
    link = "https://alerts.example.org/" + "x" * 300
    fits = "震" * 476 + " " + link  # 476 + 1 + 23 = 500
    channel = adapter(session, url)
    assert (await channel.deliver(outgoing(toot(fits)))).remote_id in fake.statuses
    with pytest.raises(Permanent, match=r"501 characters.*at most 500 \(max_characters\)"):
        await channel.deliver(outgoing(toot("震" + fits), key="k2"))
    assert len(fake.requests) == 1
    small = FakeMastodon({TOKEN: "42"}, max_characters=100)
    async with serve(small) as small_url:
        with pytest.raises(Permanent, match=r"422.*character limit of 100"):
            await adapter(session, small_url).deliver(outgoing(toot(fits)))


@pytest.mark.parametrize(
    ("status", "error", "raised"),
    [
        (401, "The access token is invalid", AuthExpired),
        (403, "This action is not allowed", Permanent),
        (422, "Validation failed: Text can't be blank", Permanent),
        (500, "Internal Server Error", Transient),
        (503, "Service Unavailable", Transient),
    ],
)
async def test_error_table(
    session: aiohttp.ClientSession,
    instance: tuple[FakeMastodon, str],
    status: int,
    error: str,
    raised: type[Exception],
) -> None:
    """Each HTTP status the instance answers maps to its typed error, without the token."""
    fake, url = instance
    fake.fail_next(status, error)
    with pytest.raises(raised) as info:
        await adapter(session, url).deliver(outgoing(toot()))
    assert error in str(info.value) and TOKEN not in str(info.value)
    assert type(info.value) is raised


async def test_an_unknown_token_is_auth_expired(
    session: aiohttp.ClientSession, instance: tuple[FakeMastodon, str]
) -> None:
    """The instance refuses a token it does not know: the account needs new credentials."""
    _, url = instance
    account = AccountConfig(id="m", channel="mastodon", base_url=url, access_token_env="T_MASTO")
    opts = MastodonChannel.Options.model_validate(account.channel_options)
    wrong = MastodonChannel(account, opts, session, Secrets({"T_MASTO": "other-token"}))
    with pytest.raises(AuthExpired, match="access token is invalid"):
        await wrong.deliver(outgoing(toot()))


async def test_429_waits_until_the_rate_limit_reset(session: aiohttp.ClientSession) -> None:
    """Past the token's window the instance answers 429; the wait is X-RateLimit-Reset."""
    fake = FakeMastodon({TOKEN: "42"}, per_5_minutes=1)
    async with serve(fake) as url:
        channel = adapter(session, url)
        await channel.deliver(outgoing(toot()))
        with pytest.raises(RateLimited) as info:
            await channel.deliver(outgoing(toot(), key="k2"))
    reset = (int(time.time() // 300) + 1) * 300
    assert info.value.retry_after is not None
    assert abs(info.value.retry_after - max(1.0, reset - time.time())) < 2


async def test_the_status_budget_is_per_account(session: aiohttp.ClientSession) -> None:
    """Past the statuses budget (300 in 3 hours by default) a post waits for the oldest to age."""
    fake = FakeMastodon({TOKEN: "42"}, statuses_per_3_hours=1)
    async with serve(fake) as url:
        channel = adapter(session, url)
        await channel.deliver(outgoing(toot()))
        with pytest.raises(RateLimited) as info:
            await channel.deliver(outgoing(toot(), key="k2"))
    assert info.value.retry_after is not None and 3 * 3600 - 5 < info.value.retry_after <= 3 * 3600


def test_options_refuse_unknown_keys_and_bad_languages() -> None:
    """A typo or a language that is not ISO 639-1 is a config error."""
    from pydantic import ValidationError

    base = {"access_token_env": "T", "base_url": "https://m.example"}
    with pytest.raises(ValidationError, match="extra"):
        MastodonChannel.Options.model_validate({**base, "visiblity": "public"})
    with pytest.raises(ValidationError, match="language"):
        MastodonChannel.Options.model_validate({**base, "language": "zh-CN"})


@pytest.mark.parametrize("max_characters", [200, 500])
@pytest.mark.parametrize("language", ["zh-CN", "en"])
async def test_what_the_renderer_fits_the_adapter_and_the_instance_take(
    session: aiohttp.ClientSession, max_characters: int, language: str
) -> None:
    """A long sample rendered for the account's max_characters is posted, not refused."""
    from alertcast.config import RenderConfig
    from alertcast.models import MsgType, Status
    from alertcast.render import RenderContext, Renderer
    from alertcast.render.samples import SAMPLE_LINK, sample_incident

    fake = FakeMastodon({TOKEN: "42"}, max_characters=max_characters)
    async with serve(fake) as url:
        channel = adapter(session, url, max_characters=max_characters, exercise=True)
        account = channel.account.model_copy(update={"language": language})
        sample = sample_incident("earthquake", language, Status.exercise)
        long = sample.model_copy(update={"description": "震中附近多地震感强烈。" * 200})
        ctx = RenderContext("inc_m", MsgType.update, SAMPLE_LINK, reason="更正")
        payload = Renderer(RenderConfig()).render(long, account, ctx)
        receipt = await channel.deliver(outgoing(payload))
    assert payload["lengths"]["text"]["limit"] == max_characters
    assert status_length(fake.statuses[str(receipt.remote_id)]["text"]) <= max_characters
