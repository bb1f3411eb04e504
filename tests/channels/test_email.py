"""The email adapter against aiosmtpd on 127.0.0.1: a multipart text and HTML mail, a
Message-ID from the delivery's key kept across retries and a crash, updates threaded by
In-Reply-To and References, STARTTLS and implicit TLS with a certificate made for the test,
4xx transient, 5xx permanent, one recipient refused alone, and a retry that resumes."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller

from alertcast.channels.base import AuthExpired, Outgoing, Permanent, Transient
from alertcast.channels.smtp import EmailChannel, message_id
from alertcast.checks import account_problems
from alertcast.config import AccountConfig

from .conftest import build, outgoing
from .smtp_server import Mailbox, certificates, smtp_server

DUTY, CHIEF = "duty@office.example.org", "chief@office.example.org"
MAIL = {
    "format": "email",
    "subject": "【地震】四川泸定6.8级地震",
    "text": "四川甘孜州泸定县发生6.8级地震，震源深度16千米。\nhttps://alerts.example.org/i/1",
    "html": '<section><p><strong>四川泸定6.8级地震</strong></p><p><a href="https://alerts.example.org/i/1">详情</a></p></section>',
}


def mailer(session: aiohttp.ClientSession, box: Mailbox, **options: Any) -> EmailChannel:
    options.setdefault("security", "none")
    options.setdefault("to", [DUTY])
    return build(
        EmailChannel,
        session,
        {"T_SMTP": "relay-pass-4e1f9a"},
        host=box.host,
        port=box.port,
        mail_from="alerts@office.example.org",
        from_name="成都市应急管理局",
        **options,
    )


async def test_one_mail_with_text_and_html_alternatives(session: aiohttp.ClientSession) -> None:
    """multipart/alternative: the text, then the HTML; Subject, From, To and Auto-Submitted."""
    with smtp_server() as box:
        receipt = await mailer(session, box).deliver(outgoing(MAIL))
    ((sender, rcpts, mail),) = box.messages
    assert (sender, rcpts) == ("alerts@office.example.org", [DUTY])
    assert mail.get_content_type() == "multipart/alternative"
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and html is not None
    # MIME text is CRLF-delimited on the wire (RFC 2046 §4.1.1)
    assert plain.get_content().replace("\r\n", "\n").strip() == MAIL["text"]
    assert html.get_content().strip() == MAIL["html"]
    assert mail["Subject"] == MAIL["subject"] and mail["To"] == DUTY
    assert "成都市应急管理局" in str(mail["From"]) and mail["Auto-Submitted"] == "auto-generated"
    assert receipt.remote_id == mail["Message-ID"]


async def test_the_message_id_comes_from_the_delivery_key(session: aiohttp.ClientSession) -> None:
    """Two attempts of one delivery carry one Message-ID; another delivery another."""
    with smtp_server() as box:
        channel = mailer(session, box)
        await channel.deliver(outgoing(MAIL, key="idem-a"))
        await channel.deliver(outgoing(MAIL, key="idem-a", attempt=2))
        await channel.deliver(outgoing(MAIL, key="idem-b"))
    ids = [m["Message-ID"] for _, _, m in box.messages]
    assert ids[0] == ids[1] != ids[2]
    assert all(i.startswith("<") and i.endswith("@office.example.org>") for i in ids)


async def test_a_resend_after_a_crash_is_the_same_message(session: aiohttp.ClientSession) -> None:
    """The daemon died after the server took the mail, before the attempt was stored: the next
    attempt starts with no progress and resends, under the same Message-ID."""
    with smtp_server() as box:
        channel = mailer(session, box)
        first = await channel.deliver(outgoing(MAIL, key="idem-crash"))
        again = await channel.deliver(outgoing(MAIL, key="idem-crash", attempt=2))
    assert len(box.messages) == 2 and first.remote_id == again.remote_id
    assert box.messages[0][2]["Message-ID"] == box.messages[1][2]["Message-ID"]


async def test_an_update_threads_under_the_original(session: aiohttp.ClientSession) -> None:
    """A reply names the original's Message-ID in In-Reply-To and References."""
    with smtp_server() as box:
        channel = mailer(session, box)
        original = await channel.deliver(outgoing(MAIL, key="idem-alert"))
        update = {**MAIL, "subject": "【更新】四川泸定6.9级地震"}
        await channel.deliver(
            outgoing(update, key="idem-upd", action="reply", target=original.remote_id)
        )
    reply = box.messages[1][2]
    assert reply["In-Reply-To"] == reply["References"] == original.remote_id
    assert reply["Message-ID"] != original.remote_id


async def test_a_reply_without_a_message_id_is_refused(session: aiohttp.ClientSession) -> None:
    """A target that is not a Message-ID: permanent, nothing sent."""
    with smtp_server() as box, pytest.raises(Permanent, match="Message-ID"):
        await mailer(session, box).deliver(outgoing(MAIL, action="reply", target="42"))
    assert not box.messages


async def test_starttls_with_a_certificate_made_for_the_test(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A server that requires STARTTLS takes the mail over TLS when the CA is trusted, and the
    login goes over it; an untrusted certificate is permanent, nothing sent in the clear."""
    certs = certificates(tmp_path)
    with smtp_server(starttls=certs.server, login=("alerts", "relay-pass-4e1f9a")) as box:
        login = {"username": "alerts", "password_env": "T_SMTP", "security": "starttls"}
        await mailer(session, box, ca_file=certs.ca_file, **login).deliver(outgoing(MAIL))
        with pytest.raises(Permanent, match=r"TLS with 127\.0\.0\.1"):
            await mailer(session, box, **login).deliver(outgoing(MAIL, key="idem-2"))
    assert box.tls_seen == [True]


async def test_a_wrong_password_makes_the_account_unhealthy(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """535 to AUTH: AuthExpired, the password nowhere in the reason."""
    certs = certificates(tmp_path)
    with smtp_server(starttls=certs.server, login=("alerts", "another-password")) as box:
        channel = mailer(
            session,
            box,
            ca_file=certs.ca_file,
            security="starttls",
            username="alerts",
            password_env="T_SMTP",
        )
        with pytest.raises(AuthExpired, match="SMTP 535") as caught:
            await channel.deliver(outgoing(MAIL))
    assert "relay-pass-4e1f9a" not in str(caught.value) and not box.messages


async def test_implicit_tls(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    """security = "tls": TLS from the first byte (port 465's way)."""
    certs = certificates(tmp_path)
    with smtp_server(implicit_tls=certs.server) as box:
        await mailer(session, box, security="tls", ca_file=certs.ca_file).deliver(outgoing(MAIL))
    assert box.tls_seen == [True]


@pytest.mark.parametrize(
    ("reply", "error", "code"),
    [
        ("451 4.3.0 Temporary local problem, try again", Transient, "451"),
        ("452 4.3.1 Insufficient system storage", Transient, "452"),
        ("554 5.7.1 Message rejected as spam", Permanent, "554"),
        ("552 5.3.4 Message size exceeds fixed limit", Permanent, "552"),
    ],
)
async def test_a_data_reply_decides_the_fate(
    session: aiohttp.ClientSession, reply: str, error: type[Exception], code: str
) -> None:
    """4xx to DATA is transient, 5xx permanent; the code is kept."""
    with smtp_server(Mailbox(data_replies=[reply])) as box, pytest.raises(error) as caught:
        await mailer(session, box).deliver(outgoing(MAIL))
    assert type(caught.value) is error and caught.value.code == code  # type: ignore[attr-defined]
    assert not box.messages


async def test_one_refused_recipient_does_not_hold_the_others(
    session: aiohttp.ClientSession,
) -> None:
    """550 to one RCPT: the others get the mail; the receipt counts the refusal."""
    box = Mailbox(refuse_rcpt={CHIEF: "550 5.1.1 No such user"})
    with smtp_server(box):
        receipt = await mailer(session, box, to=[DUTY, CHIEF]).deliver(outgoing(MAIL))
    assert [r for _, r, _ in box.messages] == [[DUTY]]
    assert receipt.detail["refused"] == 1 and receipt.detail["refusals"] == {CHIEF: 550}


async def test_every_recipient_refused_is_permanent(session: aiohttp.ClientSession) -> None:
    """550 to every RCPT: permanent, naming the refusals."""
    box = Mailbox(refuse_rcpt={DUTY: "550 5.1.1 No such user"})
    with smtp_server(box), pytest.raises(Permanent, match="every recipient was refused"):
        await mailer(session, box).deliver(outgoing(MAIL))


async def test_a_retry_resumes_after_the_recipients_done(session: aiohttp.ClientSession) -> None:
    """The second recipient's DATA answers 451: the retry, with the stored progress, sends to
    it alone; the first got the alert once."""
    box = Mailbox(data_replies=["250 OK", "451 4.3.0 try again"])
    with smtp_server(box):
        channel = mailer(session, box, to=[CHIEF, DUTY])
        first = outgoing(MAIL, key="idem-resume")
        with pytest.raises(Transient):
            await channel.deliver(first)
        retry = outgoing(MAIL, key="idem-resume", attempt=2)
        retry.progress.update(first.progress)
        await channel.deliver(retry)
    assert (len(box.to(CHIEF)), len(box.to(DUTY))) == (1, 1)


async def test_no_server_is_transient(session: aiohttp.ClientSession) -> None:
    """Nothing listening: transient, the host and port named."""
    box = Mailbox(port=9)
    with pytest.raises(Transient, match=r"127\.0\.0\.1:9"):
        await mailer(session, box).deliver(outgoing(MAIL))


@pytest.mark.parametrize(
    ("options", "where", "words"),
    [
        ({"to": ["not-an-address"]}, ".to[0]", "not a mail address"),
        ({"to": []}, ".to", "at least 1"),
        ({"username": "u"}, "", "username and password_env go together"),
        ({"security": "ssl"}, ".security", "'starttls', 'tls' or 'none'"),
    ],
)
def test_check_config_names_the_bad_option(options: dict[str, Any], where: str, words: str) -> None:
    """Each bad option is refused at config time, by its path."""
    base = {"host": "smtp.example.org", "mail_from": "a@example.org", "to": ["b@example.org"]}
    account = AccountConfig(id="mail", channel="email", **{**base, **options})
    problems = list(account_problems(account))
    assert any(path == where and words in message for path, message in problems), problems


# -- per_recipient = true: one transaction per recipient of the account's recipients file -----


class CountingMailbox(Mailbox):
    """The mailbox, counting the connections it greets (one EHLO each)."""

    ehlos: int = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.ehlos += 1
        session.host_name = hostname
        return responses


def per_recipient(session: aiohttp.ClientSession, box: Mailbox, **options: Any) -> EmailChannel:
    options.setdefault("security", "none")
    return build(
        EmailChannel,
        session,
        {},
        host=box.host,
        port=box.port,
        mail_from="alerts@office.example.org",
        per_recipient=True,
        **options,
    )


def to_one(address: object, rid: str, key: str = "dlv_01", **kw: Any) -> Outgoing:
    """A per-recipient send as alertcast.bulk makes it: its key and the recipient's columns."""
    recipient = {"id": rid, "region": None, "email": address}
    return replace(outgoing(MAIL, key=f"{key}:{rid}", **kw), recipient=recipient)


async def test_each_recipient_one_transaction_one_message_id(
    session: aiohttp.ClientSession,
) -> None:
    """Three recipients: three transactions over one connection, each To its own address;
    one Message-ID, the delivery's (its key less the recipient); another delivery another."""
    box = CountingMailbox()
    with smtp_server(box):
        channel = per_recipient(session, box)
        receipts = [
            await channel.deliver(to_one(a, f"r-{i}")) for i, a in enumerate((DUTY, CHIEF, DUTY))
        ]
        await channel.deliver(to_one(CHIEF, "r-1", key="dlv_02"))
        await channel.close()
    assert [(rcpts, m["To"]) for _, rcpts, m in box.messages] == [
        ([DUTY], DUTY),
        ([CHIEF], CHIEF),
        ([DUTY], DUTY),
        ([CHIEF], CHIEF),
    ]
    ids = [m["Message-ID"] for _, _, m in box.messages]
    assert ids[:3] == [message_id("dlv_01", "alerts@office.example.org")] * 3 != ids[3:]
    assert {r.remote_id for r in receipts} == {ids[0]} and box.ehlos == 1


async def test_an_update_of_a_recipient_threads_under_the_original(
    session: aiohttp.ClientSession,
) -> None:
    """A reply to one recipient names the original's Message-ID."""
    with smtp_server() as box:
        channel = per_recipient(session, box)
        original = await channel.deliver(to_one(DUTY, "r-0"))
        update = to_one(DUTY, "r-0", key="dlv_upd", action="reply", target=original.remote_id)
        await channel.deliver(update)
    reply = box.messages[1][2]
    assert reply["In-Reply-To"] == reply["References"] == original.remote_id


async def test_a_refused_address_is_permanent_for_its_recipient_masked(
    session: aiohttp.ClientSession,
) -> None:
    """550 to RCPT: Permanent with the code, the address masked even where the server echoed
    it; the connection goes on serving the next recipient."""
    box = CountingMailbox(refuse_rcpt={CHIEF: f"550 5.1.1 <{CHIEF.upper()}>: no such user"})
    with smtp_server(box):
        channel = per_recipient(session, box)
        with pytest.raises(Permanent) as caught:
            await channel.deliver(to_one(CHIEF, "r-1"))
        await channel.deliver(to_one(DUTY, "r-0"))
    assert caught.value.code == "550" and "c****@office.example.org" in str(caught.value)
    assert CHIEF not in str(caught.value).lower()
    assert [r for _, r, _ in box.messages] == [[DUTY]] and box.ehlos == 1


async def test_a_failed_connection_is_not_reused(session: aiohttp.ClientSession) -> None:
    """451 to DATA: Transient for that recipient; the next send opens a new connection."""
    box = CountingMailbox(data_replies=["451 4.3.0 try again"])
    with smtp_server(box):
        channel = per_recipient(session, box)
        with pytest.raises(Transient):
            await channel.deliver(to_one(DUTY, "r-0"))
        await channel.deliver(to_one(DUTY, "r-0", attempt=2))
    assert len(box.to(DUTY)) == 1 and box.ehlos == 2


async def test_a_connection_the_server_dropped_is_replaced(session: aiohttp.ClientSession) -> None:
    """The server restarts between two sends: the idle connection is dead; the second send
    opens another and is delivered, not failed."""
    box = CountingMailbox()
    with smtp_server(box):
        channel = per_recipient(session, box)
        await channel.deliver(to_one(DUTY, "r-0"))
    again = Controller(box, hostname=box.host, port=box.port)  # the same port
    again.start()
    try:
        await asyncio.sleep(0.05)  # the close reaches the client
        await channel.deliver(to_one(CHIEF, "r-1"))
    finally:
        again.stop()
    assert [r for _, r, _ in box.messages] == [[DUTY], [CHIEF]] and box.ehlos == 2


@pytest.mark.parametrize("address", [None, "", "not-an-address", "a@b.org\r\nBcc: x@y.org"])
async def test_a_recipient_without_a_good_address_fails_unsent(
    session: aiohttp.ClientSession, address: object
) -> None:
    """A stored recipient whose email is missing or not an address: Permanent, nothing sent."""
    with smtp_server() as box, pytest.raises(Permanent, match="email column"):
        await per_recipient(session, box).deliver(to_one(address, "r-0"))
    assert not box.messages


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"per_recipient": True, "to": [DUTY]}, "remove to"),
        ({}, "the addresses to mail are required"),
    ],
)
def test_per_recipient_and_a_to_list_exclude_each_other(
    options: dict[str, Any], words: str
) -> None:
    """per_recipient with a to list, or neither: refused at .to, saying why."""
    base = {"host": "smtp.example.org", "mail_from": "a@example.org"}
    account = AccountConfig(id="mail", channel="email", **{**base, **options})
    problems = dict(account_problems(account))
    assert list(problems) == [".to"] and words in problems[".to"], problems


def test_the_recipients_file_needs_an_email_column() -> None:
    """The channel's column for the import: email, stripped and checked."""
    columns = EmailChannel.recipient_columns(EmailChannel.Options.model_construct())
    assert list(columns) == ["email"] and columns["email"](f" {DUTY} ") == DUTY
    with pytest.raises(ValueError, match="not a mail address"):
        columns["email"]("张三 <duty@office.example.org>")
