"""The SMS adapter against the fake Aliyun Dysmsapi gateway (facts §8): the signed SendSms
request, batches of 100 numbers, a retry that resumes after the last batch recorded, the
vendor codes, both casings of the answer, E.164 numbers checked at config time, and no number
ever whole in a log line, an error or the stored progress."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from alertcast.channels.base import AuthExpired, Outgoing, Permanent, RateLimited, Transient
from alertcast.channels.sms import SmsChannel, mask
from alertcast.checks import account_problems
from alertcast.config import AccountConfig
from alertcast.testing.fakes import FakeSms, SmsRefusal, serve

from .conftest import build, outgoing

KEY_ID, KEY_SECRET = "LTAI5tTestKeyId0001", "sms-secret-7c0e5a91d2"
ENV = {"T_AK": KEY_ID, "T_SK": KEY_SECRET}
SIGN = "成都应急"
TEMPLATE = "SMS_1000001"
TEXT = "四川甘孜州泸定县发生6.8级地震，请注意避险。https://alerts.example.org/i/1"
SMS = {"format": "sms", "text": TEXT, "segments": 1}
NUMBERS = [f"+86138{i:08d}" for i in range(250)]


def gateway(**kw: Any) -> FakeSms:
    kw.setdefault("signs", {SIGN})
    kw.setdefault("templates", {TEMPLATE: "${content}"})
    return FakeSms({KEY_ID: KEY_SECRET}, **kw)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeSms, str]]:
    sms = gateway()
    async with serve(sms) as url:
        yield sms, url


def texter(
    session: aiohttp.ClientSession, url: str, numbers: list[str] | None = None, **options: Any
) -> SmsChannel:
    env = {**ENV, **options.pop("env", {})}
    return build(
        SmsChannel,
        session,
        env,
        base_url=url,
        access_key_id_env="T_AK",
        access_key_secret_env="T_SK",
        sign_name=options.pop("sign_name", SIGN),
        template_code=TEMPLATE,
        recipients=numbers or NUMBERS[:3],
        **options,
    )


async def test_a_text_reaches_every_number(
    session: aiohttp.ClientSession, fake: tuple[FakeSms, str]
) -> None:
    """One signed SendSms: each number's phone shows 【sign】 and the text; the BizId returns."""
    sms, url = fake
    receipt = await texter(session, url).deliver(outgoing(SMS))
    for number in NUMBERS[:3]:
        assert sms.inbox[number[3:]] == [f"【{SIGN}】{TEXT}"]
    (request,) = sms.requests
    assert request.path == "/" and receipt.remote_id == "900000000000000001^0"
    assert receipt.detail["sent"] == 3 and receipt.detail["segments"] == 1


async def test_numbers_go_in_batches_of_100(
    session: aiohttp.ClientSession, fake: tuple[FakeSms, str]
) -> None:
    """250 numbers: three requests, 100, 100 and 50; each number texted once."""
    sms, url = fake
    receipt = await texter(session, url, NUMBERS).deliver(outgoing(SMS))
    assert sorted(len(b) for b in sms.batches) == [50, 100, 100]
    assert all(len(sms.inbox[n[3:]]) == 1 for n in NUMBERS)
    assert receipt.detail["batches"] == 3


async def test_a_retry_resumes_after_the_last_batch_recorded(
    session: aiohttp.ClientSession, fake: tuple[FakeSms, str]
) -> None:
    """The third request fails (isp.SYSTEM_ERROR): two batches were checkpointed; the retry
    sends the third alone, and nobody is texted twice."""
    sms, url = fake
    saved: list[dict[str, Any]] = []
    sms.inject(SmsRefusal("isp.SYSTEM_ERROR", "System Error", status=500), after=2)
    channel = texter(session, url, NUMBERS)
    first = checkpointed(outgoing(SMS, key="idem-resume"), saved)
    with pytest.raises(Transient, match=r"isp\.SYSTEM_ERROR"):
        await channel.deliver(first)
    assert [s["batches"] for s in saved] == [1, 2] and len(sms.batches) == 2
    retry = checkpointed(outgoing(SMS, key="idem-resume", attempt=2), saved)
    retry.progress.update(json.loads(json.dumps(saved[-1])))  # as the store gives it back
    await channel.deliver(retry)
    assert len(sms.batches) == 3 and sorted(len(b) for b in sms.batches) == [50, 100, 100]
    assert all(len(sms.inbox[n[3:]]) == 1 for n in NUMBERS)


async def test_a_lost_claim_stops_after_the_batch(
    session: aiohttp.ClientSession, fake: tuple[FakeSms, str]
) -> None:
    """The checkpoint says the claim is lost: no further batch goes."""
    sms, url = fake

    async def lost() -> bool:
        return False

    msg = replace(outgoing(SMS), checkpoint=lost)
    with pytest.raises(Transient, match="claim"):
        await texter(session, url, NUMBERS).deliver(msg)
    assert len(sms.batches) == 1


async def test_the_stored_progress_and_the_logs_hold_no_number(
    session: aiohttp.ClientSession, fake: tuple[FakeSms, str]
) -> None:
    """The cursor keeps digests; log lines and errors show numbers masked to their last 4."""
    sms, url = fake
    sms.inject(SmsRefusal("isv.BLACK_KEY_CONTROL_LIMIT", "号码 13800000101 内容含限制词"), after=1)
    msg = outgoing(SMS)
    with capture_logs() as logs, pytest.raises(Permanent) as caught:
        await texter(session, url, NUMBERS).deliver(msg)
    shown = json.dumps(logs, ensure_ascii=False, default=str) + str(caught.value)
    stored = json.dumps(msg.progress)
    for number in NUMBERS:
        assert number[3:] not in shown and number[3:] not in stored
    assert "*******0101" in str(caught.value)
    assert any(e.get("first", "").endswith(tuple(n[-4:] for n in NUMBERS)) for e in logs)
    assert all("*" in e["first"] for e in logs if "first" in e)


def test_mask_keeps_the_last_four_digits() -> None:
    """+8613812345678 -> +*********5678."""
    assert mask("+8613812345678") == "+*********5678"
    assert mask("13812345678") == "*******5678"


async def test_a_refused_batch_of_numbers_does_not_hold_the_rest(
    session: aiohttp.ClientSession, fake: tuple[FakeSms, str]
) -> None:
    """isv.MOBILE_NUMBER_ILLEGAL for one batch: recorded for its numbers, the rest sent."""
    sms, url = fake
    sms.inject(SmsRefusal("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号"), after=1)
    receipt = await texter(session, url, NUMBERS).deliver(outgoing(SMS))
    assert (receipt.detail["sent"], receipt.detail["refused"]) == (150, 100)


@pytest.mark.parametrize(
    ("code", "error", "wait"),
    [
        ("isp.SYSTEM_ERROR", Transient, None),
        ("isv.BUSINESS_LIMIT_CONTROL", RateLimited, 60.0),
        ("isv.BLACK_KEY_CONTROL_LIMIT", Permanent, None),
        ("isv.TEMPLATE_MISSING_PARAMETERS", Permanent, None),
        ("isv.INVALID_JSON_PARAM", Permanent, None),
        ("isv.PARAM_LENGTH_LIMIT", Permanent, None),
        ("isv.SMS_SIGNATURE_ILLEGAL", Permanent, None),
        ("isv.SOMETHING_NEW", Permanent, None),
    ],
)
async def test_the_code_decides_the_fate(
    session: aiohttp.ClientSession,
    fake: tuple[FakeSms, str],
    code: str,
    error: type[Exception],
    wait: float | None,
) -> None:
    """Each vendor code of the table (facts §8) raises its error; an unknown one is permanent."""
    sms, url = fake
    sms.inject(SmsRefusal(code, "refused"))
    with pytest.raises(error) as caught:
        await texter(session, url).deliver(outgoing(SMS))
    assert type(caught.value) is error and caught.value.code == code  # type: ignore[attr-defined]
    assert getattr(caught.value, "retry_after", None) == wait


async def test_the_fake_checks_the_signature(
    session: aiohttp.ClientSession, fake: tuple[FakeSms, str]
) -> None:
    """A wrong secret: SignatureDoesNotMatch; an unknown key id: InvalidAccessKeyId.NotFound;
    both make the account unhealthy, the secret nowhere in the reason."""
    sms, url = fake
    with pytest.raises(AuthExpired, match="SignatureDoesNotMatch") as caught:
        await texter(session, url, env={"T_SK": "wrong-secret-0000"}).deliver(outgoing(SMS))
    assert "wrong-secret-0000" not in str(caught.value)
    with pytest.raises(AuthExpired, match=r"InvalidAccessKeyId\.NotFound"):
        await texter(session, url, env={"T_AK": "LTAI-unknown"}).deliver(outgoing(SMS))
    assert not sms.batches


async def test_the_gateways_own_checks_refuse_what_they_must(
    session: aiohttp.ClientSession,
) -> None:
    """An unapproved sign name and a template variable left unfilled are refused, permanent."""
    sms = gateway(templates={TEMPLATE: "${content}（${area}）"})
    async with serve(sms) as url:
        with pytest.raises(Permanent, match=r"isv\.TEMPLATE_MISSING_PARAMETERS"):
            await texter(session, url).deliver(outgoing(SMS))
        with pytest.raises(Permanent, match=r"isv\.SMS_SIGNATURE_ILLEGAL"):
            await texter(session, url, sign_name="某某公司").deliver(outgoing(SMS))
    assert not sms.batches


async def test_a_numbers_daily_limit_is_rate_limited(session: aiohttp.ClientSession) -> None:
    """The gateway's per-number flow control (isv.BUSINESS_LIMIT_CONTROL): retried later."""
    sms = gateway(per_number_day=1)
    async with serve(sms) as url:
        channel = texter(session, url)
        await channel.deliver(outgoing(SMS, key="idem-1"))
        with pytest.raises(RateLimited, match="BUSINESS_LIMIT_CONTROL"):
            await channel.deliver(outgoing(SMS, key="idem-2"))


async def test_the_camel_case_answer_is_read_too(session: aiohttp.ClientSession) -> None:
    """§8 leaves the answer's casing unconfirmed: code/bizId are read like Code/BizId."""
    sms = gateway(casing="camel")
    async with serve(sms) as url:
        receipt = await texter(session, url).deliver(outgoing(SMS))
        sms.inject(SmsRefusal("isv.BLACK_KEY_CONTROL_LIMIT", "x"))
        with pytest.raises(Permanent, match="BLACK_KEY"):
            await texter(session, url).deliver(outgoing(SMS, key="idem-2"))
    assert receipt.remote_id == "900000000000000001^0"


async def test_a_text_over_500_with_its_signature_is_refused_unsent(
    session: aiohttp.ClientSession, fake: tuple[FakeSms, str]
) -> None:
    """§8: 500 characters at most, the 【sign】 counted."""
    sms, url = fake
    with pytest.raises(Permanent, match="502 characters with the signature"):
        await texter(session, url).deliver(outgoing({**SMS, "text": "震" * 496}))
    assert not sms.requests


@pytest.mark.parametrize(
    ("recipients", "where"),
    [
        (["+8613700137000", "13700137000"], ".recipients[1]"),
        (["+85291234567"], ".recipients[0]"),
        (["+861370013700"], ".recipients[0]"),
        (["+8612700137000"], ".recipients[0]"),
    ],
)
def test_numbers_are_checked_at_config_time(recipients: list[str], where: str) -> None:
    """Not an E.164 mainland mobile: refused by its path, the number masked in the message."""
    account = AccountConfig(
        id="sms",
        channel="sms",
        access_key_id_env="A",
        access_key_secret_env="B",
        sign_name=SIGN,
        template_code=TEMPLATE,
        recipients=recipients,
    )
    problems = dict(account_problems(account))
    assert "not an E.164 mainland mobile number" in problems[where], problems
    bad = recipients[int(where[-2])]
    assert bad.lstrip("+") not in problems[where] and bad[-4:] in problems[where]


def checkpointed(msg: Outgoing, saved: list[dict[str, Any]]) -> Outgoing:
    """``msg`` whose checkpoint keeps a copy of its progress, as the store would."""

    async def store() -> bool:
        saved.append(json.loads(json.dumps(msg.progress)))
        return True

    return replace(msg, checkpoint=store)


# -- per_recipient = true: one SendSms per recipient of the account's recipients file --------


def per_recipient(session: aiohttp.ClientSession, url: str) -> SmsChannel:
    return build(
        SmsChannel,
        session,
        ENV,
        base_url=url,
        access_key_id_env="T_AK",
        access_key_secret_env="T_SK",
        sign_name=SIGN,
        template_code=TEMPLATE,
        per_recipient=True,
    )


def to_one(number: object, rid: str = "r-0001", key: str = "dlv_01:r-0001") -> Outgoing:
    """A per-recipient send as alertcast.bulk makes it: the recipient's key and columns."""
    recipient = {"id": rid, "region": "510104", "mobile": number, "name": "张三"}
    return replace(outgoing(SMS, key=key), recipient=recipient)


def form(request: Any) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(request.body.decode()))


async def test_a_recipient_gets_one_sendsms_of_its_own_number(
    session: aiohttp.ClientSession, fake: tuple[FakeSms, str]
) -> None:
    """One signed request per send, PhoneNumbers that one number; OutId each recipient's own,
    64 characters at most; the receipt the BizId."""
    sms, url = fake
    channel = per_recipient(session, url)
    long_id = "r-" + "x" * 120
    first = await channel.deliver(to_one(NUMBERS[0]))
    await channel.deliver(to_one(NUMBERS[1], long_id, f"dlv_01m8vf{'0' * 20}:{long_id}"))
    assert [form(r)["PhoneNumbers"] for r in sms.requests] == [NUMBERS[0][3:], NUMBERS[1][3:]]
    out_ids = [form(r)["OutId"] for r in sms.requests]
    assert out_ids[0] == "dlv_01:r-0001" and len(out_ids[1]) <= 64 and out_ids[1] != out_ids[0]
    assert sms.inbox[NUMBERS[0][3:]] == [f"【{SIGN}】{TEXT}"]
    assert first.remote_id == "900000000000000001^0" and first.detail["segments"] == 1


async def test_a_refused_number_is_permanent_for_its_recipient_masked(
    session: aiohttp.ClientSession, fake: tuple[FakeSms, str]
) -> None:
    """isv.MOBILE_NUMBER_ILLEGAL for the one number: Permanent with the code; the reason and
    the log lines show the number masked to its last four digits."""
    sms, url = fake
    sms.inject(SmsRefusal("isv.MOBILE_NUMBER_ILLEGAL", f"非法手机号 {NUMBERS[2][3:]}"))
    with capture_logs() as logs, pytest.raises(Permanent) as caught:
        await per_recipient(session, url).deliver(to_one(NUMBERS[2]))
    assert caught.value.code == "isv.MOBILE_NUMBER_ILLEGAL"
    shown = str(caught.value) + json.dumps(logs, ensure_ascii=False, default=str)
    assert NUMBERS[2][3:] not in shown and NUMBERS[2][-4:] in str(caught.value)


@pytest.mark.parametrize("mobile", [None, "", "13912345678", "+85291234567", 8613912345678])
async def test_a_recipient_without_a_good_number_fails_unsent(
    session: aiohttp.ClientSession, fake: tuple[FakeSms, str], mobile: object
) -> None:
    """A stored recipient whose mobile is missing or not E.164 mainland (imported under
    another channel, say): Permanent, nothing sent, the number masked."""
    sms, url = fake
    with pytest.raises(Permanent, match="mobile column") as caught:
        await per_recipient(session, url).deliver(to_one(mobile))
    assert not sms.requests
    assert "13912345678" not in str(caught.value) and "91234567" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"per_recipient": True, "recipients": ["+8613700137000"]}, "remove recipients"),
        ({}, "the numbers to text are required"),
        ({"per_recipient": False}, "or per_recipient = true"),
    ],
)
def test_per_recipient_and_a_recipients_list_exclude_each_other(
    options: dict[str, Any], words: str
) -> None:
    """per_recipient with a recipients list, or neither: refused at .recipients, saying why."""
    account = AccountConfig(
        id="sms",
        channel="sms",
        access_key_id_env="A",
        access_key_secret_env="B",
        sign_name=SIGN,
        template_code=TEMPLATE,
        **options,
    )
    problems = dict(account_problems(account))
    assert list(problems) == [".recipients"] and words in problems[".recipients"], problems


def test_the_recipients_file_needs_a_mobile_column_checked_and_masked() -> None:
    """The channel's column for the import: mobile, stripped, its error masked."""
    (column,) = columns = SmsChannel.recipient_columns(SmsChannel.Options.model_construct())
    assert column == "mobile"
    check = columns["mobile"]
    assert check(" +8613912345678 ") == "+8613912345678"
    with pytest.raises(ValueError, match=r"\*{7}5678") as caught:
        check("13912345678")
    assert "13912345678" not in str(caught.value)
