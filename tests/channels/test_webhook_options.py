"""Webhook options against a receiver on 127.0.0.1: the Standard Webhooks signature checked by
the ``standardwebhooks`` package's own verifier, extra headers, basic and bearer auth by env
reference, a per-account timeout, and no credential in an error or a log line."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from structlog.testing import capture_logs

from alertcast.channels.base import AuthExpired, Permanent, Transient
from alertcast.channels.webhook import WebhookChannel
from alertcast.checks import account_problems
from alertcast.config import AccountConfig

from .conftest import build, outgoing

WHSEC = "whsec_" + base64.b64encode(b"standard-webhooks-key-0123456789").decode()
HMAC_SECRET = "hmac-secret-7d1c2b9e40"
BEARER = "bearer-token-9f8e7d6c5b4a"
BASIC = "office:pa55-w0rd-31337"
ENV = {"T_HOOK": WHSEC, "T_HMAC": HMAC_SECRET, "T_BEARER": BEARER, "T_BASIC": BASIC}


@dataclass
class Receiver:
    """Keeps every request (raw body and headers); answers ``status`` after ``delay_s``, the
    request's ``Authorization`` echoed in the body as careless receivers do."""

    status: int = 200
    delay_s: float = 0.0
    seen: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((await request.read(), dict(request.headers)))
        await asyncio.sleep(self.delay_s)
        echo = request.headers.get("Authorization", "")
        return web.json_response({"id": f"r-{len(self.seen)}", "auth": echo}, status=self.status)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield rec, f"http://{host}:{port}/hook"
    await runner.cleanup()


def hook(session: aiohttp.ClientSession, url: str, **options: Any) -> WebhookChannel:
    options.setdefault("secret_env", "T_HOOK")
    return build(WebhookChannel, session, ENV, url=url, **options)


async def test_the_standard_signature_passes_the_reference_verifier(
    session: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    """signature = "standard": webhook-id is the idempotency key; the package verifies it."""
    rec, url = receiver
    await hook(session, url, signature="standard").deliver(outgoing(key="idem-std"))
    body, headers = rec.seen[0]
    assert headers["webhook-id"] == "idem-std"
    assert Webhook(WHSEC).verify(body, headers)["idempotency_key"] == "idem-std"
    other = "whsec_" + base64.b64encode(b"some-other-key-0123456789abcdef").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)


async def test_a_retry_keeps_the_webhook_id_and_signs_again(
    session: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    """A second attempt carries the same webhook-id, and its signature verifies too."""
    rec, url = receiver
    channel = hook(session, url, signature="standard")
    for attempt in (1, 2):
        await channel.deliver(outgoing(key="idem-r", attempt=attempt))
    ids = {headers["webhook-id"] for _, headers in rec.seen}
    assert ids == {"idem-r"}
    for body, headers in rec.seen:
        Webhook(WHSEC).verify(body, headers)


async def test_the_default_is_still_alertcasts_hmac(
    session: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    """Without signature, HMAC-SHA256 over "timestamp.body" in hex, as before."""
    rec, url = receiver
    await hook(session, url, secret_env="T_HMAC").deliver(outgoing())
    body, headers = rec.seen[0]
    ts = headers["X-Alertcast-Timestamp"].encode()
    want = hmac.new(HMAC_SECRET.encode(), ts + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Alertcast-Signature"] == f"sha256={want}"
    assert "webhook-signature" not in {k.lower() for k in headers}


async def test_extra_headers_and_bearer_auth_are_sent(
    session: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    """headers go as given; auth = "bearer" sends the variable's token."""
    rec, url = receiver
    channel = hook(
        session, url, headers={"X-Office": "chengdu"}, auth="bearer", auth_env="T_BEARER"
    )
    await channel.deliver(outgoing())
    _, headers = rec.seen[0]
    assert headers["X-Office"] == "chengdu"
    assert headers["Authorization"] == f"Bearer {BEARER}"


async def test_basic_auth_sends_user_and_password_from_the_variable(
    session: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    """auth = "basic": the variable holds user:password, sent base64-encoded."""
    rec, url = receiver
    await hook(session, url, auth="basic", auth_env="T_BASIC").deliver(outgoing())
    _, headers = rec.seen[0]
    scheme, encoded = headers["Authorization"].split(" ")
    assert (scheme, base64.b64decode(encoded).decode()) == ("Basic", BASIC)


@pytest.mark.parametrize(("auth", "variable"), [("bearer", "T_BEARER"), ("basic", "T_BASIC")])
async def test_an_echoed_credential_never_reaches_the_error_or_the_log(
    session: aiohttp.ClientSession, receiver: tuple[Receiver, str], auth: str, variable: str
) -> None:
    """A 401 whose body echoes Authorization: the error and the log show neither form."""
    rec, url = receiver
    rec.status = 401
    channel = hook(session, url, auth=auth, auth_env=variable)
    with capture_logs() as logs, pytest.raises(Permanent) as caught:
        await channel.deliver(outgoing())
    shown = str(caught.value) + json.dumps(logs, default=str)
    encoded = base64.b64encode(BASIC.encode()).decode()
    assert "HTTP 401" in shown
    for leaked in (BEARER, BASIC, encoded):
        assert leaked not in shown


async def test_the_accounts_timeout_bounds_a_slow_receiver(
    session: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    """timeout_s = 0.2 against a receiver that answers after 2 s: transient, said so."""
    rec, url = receiver
    rec.delay_s = 2.0
    with pytest.raises(Transient, match=r"timed out after 0\.2 s"):
        await hook(session, url, timeout_s=0.2).deliver(outgoing())


async def test_the_timeout_covers_an_answer_whose_body_never_ends(
    session: aiohttp.ClientSession,
) -> None:
    """The status line and headers come at once, the body (100 bytes promised) never: the
    account's timeout_s still bounds the send, which is transient (aiohttp's own timer covers
    reading the answer; the channel sets none of its own around it)."""
    hung: list[asyncio.StreamWriter] = []

    async def answer_headers_only(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        hung.append(writer)

    server = await asyncio.start_server(answer_headers_only, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(Transient, match=r"timed out after 0\.3 s"):
            await hook(session, f"http://127.0.0.1:{port}/h", timeout_s=0.3).deliver(outgoing())
    finally:
        for writer in hung:
            writer.close()
        server.close()
        await server.wait_closed()
    assert loop.time() - started < 5, "the timeout did not bound reading the body"
    assert hung, "the receiver never answered: the test proved nothing"


async def test_a_secret_that_is_not_whsec_is_refused_without_showing_it(
    session: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    """signature = "standard", a plain secret: AuthExpired naming the variable, not the value."""
    rec, url = receiver
    channel = hook(session, url, signature="standard", secret_env="T_HMAC")
    with pytest.raises(AuthExpired, match="T_HMAC: a Standard Webhooks secret") as caught:
        await channel.deliver(outgoing())
    assert HMAC_SECRET not in str(caught.value) and not rec.seen


async def test_a_missing_auth_variable_makes_the_account_unhealthy(
    session: aiohttp.ClientSession, receiver: tuple[Receiver, str]
) -> None:
    """auth_env names an unset variable: AuthExpired, nothing sent."""
    rec, url = receiver
    with pytest.raises(AuthExpired, match="T_NOPE"):
        await hook(session, url, auth="bearer", auth_env="T_NOPE").deliver(outgoing())
    assert not rec.seen


@pytest.mark.parametrize(
    ("options", "where", "words"),
    [
        ({"headers": {"Authorization": "Bearer x"}}, ".headers", "set auth and auth_env"),
        ({"headers": {"webhook-id": "x"}}, ".headers", "set by alertcast"),
        ({"headers": {"bad name": "x"}}, ".headers", "not an HTTP header name"),
        ({"headers": {"X-A": "a\r\nX-B: b"}}, ".headers", "line break"),
        ({"auth": "bearer"}, "", "auth and auth_env go together"),
        ({"auth": "digest", "auth_env": "T"}, ".auth", "'basic' or 'bearer'"),
        ({"signature": "ed25519"}, ".signature", "'hmac' or 'standard'"),
        ({"timeout_s": 0}, ".timeout_s", "greater than 0"),
    ],
)
def test_check_config_names_the_bad_option(options: dict[str, Any], where: str, words: str) -> None:
    """Each bad option is refused at config time, by its path."""
    account = AccountConfig(
        id="hook", channel="webhook", url="http://127.0.0.1:9/h", secret_env="T", **options
    )
    problems = list(account_problems(account))
    assert any(path == where and words in message for path, message in problems), problems
