"""Per-recipient SMS and email accounts through a running daemon, on every engine, against the
fake SMS gateway (facts §8) and an SMTP server on 127.0.0.1: each recipient in the incident's
area gets exactly one text or mail, the others none; a transient failure retries that recipient
alone; a refused number or address fails that recipient alone, masked in its reason; a daemon
stopped mid-send and started again never resends a recipient whose send was recorded."""

from __future__ import annotations

import asyncio
import io
import json
import urllib.parse
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from alertcast.config import AccountConfig
from alertcast.recipients import columns_of, read
from alertcast.store import open_store
from alertcast.testing.fakes import FakeSms, SmsRefusal, serve
from tests.channels.smtp_server import Mailbox, smtp_server
from tests.channels.test_email import CountingMailbox
from tests.conftest import TOKEN, incident, until
from tests.store.test_contract import PG_URL, _drop_schema, _pg_reachable

CHENGDU = {"name": "四川省成都市", "codes": ["510100"]}
KEY_ID, KEY_SECRET = "LTAI5tBulkKeyId0001", "sms-bulk-secret-4f1c"
SIGN, TEMPLATE = "成都应急", "SMS_1000001"
FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "max_attempts": 5}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The store's URL: SQLite where the daemon fixture keeps it, or a fresh schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'alertcast.db'}"
        return
    if (why := await _pg_reachable()) is not None:
        pytest.skip(why)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{PG_URL}?schema={schema}"
    await _drop_schema(schema)


def people(column: str, value: Any, chengdu: int = 40, nowhere: int = 10, beijing: int = 15) -> str:
    """A recipients file: Chengdu's districts, no region (everywhere), Beijing (outside)."""
    lines = [f"id,region,name,{column}"]
    rows = [("cd", "510104"), ("nr", ""), ("bj", "110101")]
    for (prefix, region), n in zip(rows, (chengdu, nowhere, beijing), strict=True):
        lines += [f"{prefix}-{i:03d},{region},某{i},{value(prefix, i)}" for i in range(n)]
    return "\n".join(lines) + "\n"


async def load(url: str, account: dict[str, Any], text: str) -> None:
    """The file read as ``alertcast recipients import`` reads it, into the store."""
    store = open_store(url)
    await store.open()
    try:
        columns = columns_of(AccountConfig(**account))
        await store.import_recipients(account["id"], read(io.StringIO(text), columns=columns))
    finally:
        await store.close()


async def alert(d: Any, account: str, timeout_s: float = 120) -> dict[str, Any]:
    """Post an earthquake in Chengdu; the account's delivery once settled."""
    answer = await (await d.post(incident(area=CHENGDU))).json()
    view = await d.settled(answer["id"], timeout_s=timeout_s)
    (parent,) = [x for x in view["deliveries"] if x["account"] == account]
    return dict(parent)


async def failed_sends(d: Any, parent: dict[str, Any]) -> list[dict[str, Any]]:
    status, page = await d.get(f"/v1/deliveries/{parent['id']}/recipients?state=failed")
    assert status == 200, page
    return list(page["recipients"])


# -- SMS --------------------------------------------------------------------------------------


def number(prefix: str, i: int) -> str:
    return f"+86{ {'cd': 138, 'nr': 139, 'bj': 137}[prefix] }{i:08d}"


def in_area() -> set[str]:
    return {number("cd", i)[3:] for i in range(40)} | {number("nr", i)[3:] for i in range(10)}


def texts_account(base_url: str, **more: Any) -> dict[str, Any]:
    return {
        "id": "texts",
        "channel": "sms",
        "access_key_id_env": "T_AK",
        "access_key_secret_env": "T_SK",
        "sign_name": SIGN,
        "template_code": TEMPLATE,
        "base_url": base_url,
        "per_recipient": True,
        "concurrency": 8,
        **more,
    }


@pytest.fixture
def sms_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_AK", KEY_ID)
    monkeypatch.setenv("T_SK", KEY_SECRET)


def gateway(cls: type[FakeSms] = FakeSms) -> FakeSms:
    return cls({KEY_ID: KEY_SECRET}, signs={SIGN}, templates={TEMPLATE: "${content}"})


def phone_numbers(sms: FakeSms) -> list[str]:
    """The ``PhoneNumbers`` of every request the gateway received."""
    forms = [urllib.parse.parse_qs(r.body.decode()) for r in sms.requests]
    return [f["PhoneNumbers"][0] for f in forms]


async def test_each_number_in_the_area_gets_one_text(
    start_daemon: Any, engine: str, sms_env: None
) -> None:
    """65 recipients, 50 in the area: one signed SendSms each, that number alone; three
    isp.SYSTEM_ERROR answers are retried for their recipient alone; one number the gateway
    refuses (isv.MOBILE_NUMBER_ILLEGAL) fails alone, masked; Beijing's 15 get nothing."""
    sms = gateway()
    sms.inject(SmsRefusal("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号"), after=5)
    sms.inject(SmsRefusal("isp.SYSTEM_ERROR", "System Error", status=500), times=3, after=12)
    async with serve(sms) as url:
        account = texts_account(url)
        await load(engine, account, people("mobile", number))
        d = await start_daemon(hooks=0, accounts=[account], store={"url": engine}, dispatch=FAST)
        parent = await alert(d, "texts")
    assert parent["state"] == "failed", parent
    assert parent["recipients"] == {"delivered": 49, "failed": 1}
    asked = phone_numbers(sms)
    assert len(asked) == 50 + 3 and all("," not in n for n in asked)  # one number a request
    texted = {n for n, got in sms.inbox.items() if got}
    (refused,) = in_area() - texted
    assert all(sms.inbox[n] == [f"【{SIGN}】{sms.inbox[n][0][len(SIGN) + 2 :]}"] for n in texted)
    assert Counter(len(v) for v in sms.inbox.values()) == {1: 49}
    assert Counter(asked)[refused] == 1 and Counter(asked).most_common(1)[0][1] <= 2
    (failed,) = await failed_sends(d, parent)
    assert "isv.MOBILE_NUMBER_ILLEGAL" in failed["last_error"] and failed["attempts"] == 1
    assert refused not in failed["last_error"] and refused[-4:] in failed["last_error"]
    assert refused not in json.dumps(parent, ensure_ascii=False)


class SlowSms(FakeSms):
    """The gateway, answering late after ``open_for`` texts: ``delay_s`` late, or not until
    :attr:`gate` is set (``delay_s`` None). A request held whose client went away meanwhile is
    dropped unsent, as one lost before it reached the gateway."""

    def __init__(self, *args: Any, open_for: int, delay_s: float | None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.open_for, self.delay_s = open_for, delay_s
        self.gate = asyncio.Event()
        self.held = 0

    async def _call(self, request: web.Request) -> web.Response:
        if sum(map(len, self.batches)) >= self.open_for and not self.gate.is_set():
            self.held += 1
            if self.delay_s is None:
                await self.gate.wait()
            else:
                await asyncio.sleep(self.delay_s)
            transport = request.transport
            if transport is None or transport.is_closing():
                raise SmsRefusal("isp.SYSTEM_ERROR", "the client went away")
        return await super()._call(request)


def slow_gateway(open_for: int, delay_s: float | None) -> SlowSms:
    keys = {KEY_ID: KEY_SECRET}
    templates = {TEMPLATE: "${content}"}
    return SlowSms(keys, signs={SIGN}, templates=templates, open_for=open_for, delay_s=delay_s)


async def recorded(url: str, delivery_id: str) -> dict[str, str]:
    """Every recipient's stored state for the delivery, read beside no daemon."""
    store = open_store(url)
    await store.open()
    try:
        found: dict[str, str] = {}
        after = ""
        while page := await store.recipient_sends(delivery_id, after=after, limit=1000):
            found.update({s.recipient_id: s.state for s in page})
            after = page[-1].recipient_id
        return found
    finally:
        await store.close()


NUMBER_OF = {f"{p}-{i:03d}": number(p, i)[3:] for p in ("cd", "nr") for i in range(40)}


async def stop_and_restart(
    start_daemon: Any, engine: str, sms: SlowSms, url: str, wait: Any
) -> tuple[dict[str, str], dict[str, int], dict[str, Any]]:
    """Alert, stop the daemon once ``wait`` holds, start another: the recipients' states
    stored at the stop, the texts each number had then, and the delivery once settled."""
    account = texts_account(url)
    await load(engine, account, people("mobile", number))
    config = {"store": {"url": engine}, "dispatch": {**FAST, "lease_s": 5}}
    grace = {"shutdown_grace_s": 0.2}
    d = await start_daemon(hooks=0, accounts=[account], server=grace, **config)
    answer = await (await d.post(incident(area=CHENGDU))).json()
    await until(wait, 60, "the moment to stop")
    _, view = await d.get(f"/v1/incidents/{answer['id']}")
    (parent,) = [x for x in view["deliveries"] if x["account"] == "texts"]
    await d.client.close()  # the first daemon stops
    texted = {n: len(v) for n, v in sms.inbox.items()}
    states = await recorded(engine, parent["id"])
    sms.gate.set()
    d = await start_daemon(hooks=0, accounts=[account], **config)
    view = await d.settled(answer["id"], timeout_s=120)
    (parent,) = [x for x in view["deliveries"] if x["account"] == "texts"]
    return states, texted, parent


async def test_a_restart_mid_send_never_resends_a_recorded_recipient(
    start_daemon: Any, engine: str, sms_env: None
) -> None:
    """The gateway slows down after 20 texts; the daemon is stopped mid-send and another
    started on the same store: everyone in the area is texted, nobody recorded delivered at
    the stop is texted again, and repeats are only among those texted but not yet recorded
    (at most the account's concurrency)."""
    sms = slow_gateway(open_for=20, delay_s=0.3)
    async with serve(sms) as url:
        states, texted, parent = await stop_and_restart(
            start_daemon, engine, sms, url, lambda: sum(map(len, sms.batches)) >= 30
        )
    assert parent["state"] == "delivered" and parent["recipients"] == {"delivered": 50}, parent
    assert set(sms.inbox) == in_area()
    recorded_at_stop = {NUMBER_OF[rid] for rid, s in states.items() if s == "delivered"}
    assert len(recorded_at_stop) >= 20, len(recorded_at_stop)
    assert {n for n in recorded_at_stop if len(sms.inbox[n]) > 1} == set()
    repeats = {n for n, v in sms.inbox.items() if len(v) > 1}
    assert repeats <= set(texted) - recorded_at_stop and len(repeats) <= 8, repeats
    assert all(len(v) == 1 for n, v in sms.inbox.items() if n not in texted)


async def test_a_stop_while_the_gateway_hangs_keeps_the_outcomes_decided(
    start_daemon: Any, engine: str, sms_env: None
) -> None:
    """20 texts answered, then the gateway hangs and the daemon is stopped: the 20 outcomes
    are stored by the stop, and the next daemon texts none of those 20 again."""
    sms = slow_gateway(open_for=20, delay_s=None)
    async with serve(sms) as url:
        states, texted, parent = await stop_and_restart(
            start_daemon, engine, sms, url, lambda: sms.held >= 8
        )
    assert parent["state"] == "delivered", parent
    assert sum(texted.values()) == 20
    recorded_at_stop = {NUMBER_OF[rid] for rid, s in states.items() if s == "delivered"}
    assert recorded_at_stop == set(texted)
    assert all(len(v) == 1 for v in sms.inbox.values())


# -- email ------------------------------------------------------------------------------------


def address(prefix: str, i: int) -> str:
    return f"{prefix}.{i:03d}@people.example.org"


def mails_account(box: Mailbox, **more: Any) -> dict[str, Any]:
    return {
        "id": "mails",
        "channel": "email",
        "host": box.host,
        "port": box.port,
        "security": "none",
        "mail_from": "alerts@office.example.org",
        "from_name": "成都市应急管理局",
        "per_recipient": True,
        "concurrency": 4,
        **more,
    }


async def test_each_address_in_the_area_gets_one_mail(start_daemon: Any, engine: str) -> None:
    """50 of 65 addresses are in the area: one transaction each, To that address, one
    Message-ID for all; two 451s to DATA retried for their recipient alone; a 550 to one RCPT
    fails that recipient alone, its address masked; connections are reused, not one a mail."""
    refused = address("cd", 7)
    box = CountingMailbox(
        refuse_rcpt={refused: "550 5.1.1 <cd.007@people.example.org>: no such user"},
        data_replies=["451 4.3.0 try again", "451 4.3.0 try again"],
    )
    with smtp_server(box):
        account = mails_account(box)
        await load(engine, account, people("email", address))
        d = await start_daemon(hooks=0, accounts=[account], store={"url": engine}, dispatch=FAST)
        parent = await alert(d, "mails")
    assert parent["state"] == "failed", parent
    assert parent["recipients"] == {"delivered": 49, "failed": 1}
    wanted = {address(p, i) for p, n in (("cd", 40), ("nr", 10)) for i in range(n)} - {refused}
    got = Counter(r for _, rcpts, _ in box.messages for r in rcpts)
    assert got == Counter(dict.fromkeys(wanted, 1))
    assert all(m["To"] == rcpts[0] and len(rcpts) == 1 for _, rcpts, m in box.messages)
    (message_id,) = {m["Message-ID"] for _, _, m in box.messages}
    assert message_id.endswith("@office.example.org>")
    assert box.ehlos <= 4 + 2 + 2, box.ehlos  # the pool's width, and one after each 451
    (failed,) = await failed_sends(d, parent)
    assert failed["id"] == "cd-007" and "SMTP 550" in failed["last_error"]
    assert (
        refused not in failed["last_error"] and "c****@people.example.org" in failed["last_error"]
    )


async def test_a_cancellation_mails_every_recipient_again(start_daemon: Any, engine: str) -> None:
    """The alert's 12 recipients each get the cancellation too: a second mail, under another
    Message-ID shared by all, that says it is a cancellation."""
    box = Mailbox()
    with smtp_server(box):
        account = mails_account(box)
        await load(engine, account, people("email", address, chengdu=12, nowhere=0, beijing=3))
        d = await start_daemon(hooks=0, accounts=[account], store={"url": engine}, dispatch=FAST)
        answer = await (await d.post(incident(area=CHENGDU))).json()
        await d.settled(answer["id"], timeout_s=60)
        resp = await d.client.post(
            f"/v1/incidents/{answer['id']}/cancel",
            json={"reason": "误报"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        cancel = await d.settled((await resp.json())["id"], timeout_s=60)
    (parent,) = cancel["deliveries"]
    assert parent["state"] == "delivered" and parent["recipients"] == {"delivered": 12}, parent
    by_rcpt = Counter(r for _, rcpts, _ in box.messages for r in rcpts)
    assert by_rcpt == Counter({address("cd", i): 2 for i in range(12)})
    ids = Counter(m["Message-ID"] for _, _, m in box.messages)
    assert sorted(ids.values()) == [12, 12]
    cancellations = [m for _, _, m in box.messages[12:]]
    assert all("解除" in str(m["Subject"]) or "取消" in str(m["Subject"]) for m in cancellations)


async def test_a_cancellation_threads_under_the_alert(start_daemon: Any, engine: str) -> None:
    """Each recipient's cancellation names the alert's Message-ID in In-Reply-To."""
    box = Mailbox()
    with smtp_server(box):
        account = mails_account(box)
        await load(engine, account, people("email", address, chengdu=3, nowhere=0, beijing=0))
        d = await start_daemon(hooks=0, accounts=[account], store={"url": engine}, dispatch=FAST)
        answer = await (await d.post(incident(area=CHENGDU))).json()
        await d.settled(answer["id"], timeout_s=60)
        resp = await d.client.post(
            f"/v1/incidents/{answer['id']}/cancel",
            json={"reason": "误报"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        await d.settled((await resp.json())["id"], timeout_s=60)
    alert_id = box.messages[0][2]["Message-ID"]
    replies = [m for _, _, m in box.messages if m["Message-ID"] != alert_id]
    assert len(replies) == 3 and all(m["In-Reply-To"] == alert_id for m in replies)
