"""``sms``: one text to a list of mobile numbers, or to each recipient of the account, through
an SMS gateway in the shape China's providers use: Aliyun Dysmsapi 2017-05-25 ``SendSms``
(facts §8).

API reference: ``POST {base_url}/`` form-encoded, RPC style: ``Action=SendSms``,
``PhoneNumbers`` (comma-separated), ``SignName`` (the 签名, shown as 【…】 before the text),
``TemplateCode`` (an approved template such as ``SMS_123456789``) and ``TemplateParam`` (a JSON
object of strings, filled from the payload by the account's ``template_param``), plus the
common parameters and a signature (RPC signature version 1.0, from Aliyun's signing guide; §8
does not describe it): the parameters sorted by name, each name and value percent-encoded by
RFC 3986 (``%20`` for a space, ``~`` kept), joined as ``a=1&b=2``; the string to sign is
``POST&%2F&`` + that string percent-encoded again; ``Signature`` is base64 of HMAC-SHA1 keyed
with the AccessKey secret + ``&``. The answer is ``{"Code": "OK", "Message", "BizId",
"RequestId"}`` (the key casing is UNCONFIRMED in §8: ``code``/``bizId`` are read too).

One request carries at most :attr:`SmsChannel.BATCH` numbers (SendSms takes up to 1000, but
100 keeps what one refusal or one lost answer can cost small). The gateway has **no
idempotency** (§8: a repeated request sends again), so the outbox's dedupe carries it: the
numbers are worked through in batches under a cursor (:mod:`alertcast.channels._fanout`),
stored after every batch, and a retry resumes after the last batch recorded, never sending a
recorded batch again; only a batch in flight when the daemon died can go twice. The cursor
holds keyed digests of the numbers, never the numbers. A number is never logged or raised
whole: all but its last four digits are masked (:func:`mask`).

With ``per_recipient = true`` the account has no ``recipients`` list: its numbers are the
``mobile`` column of its recipients file (``alertcast recipients import``, checked there by line
and column), and :mod:`alertcast.bulk` sends one SendSms per recipient in the incident's area
(``PhoneNumbers`` that one number, ``OutId`` the recipient's key), signed and mapped as above, a
refused number failing that recipient alone. A retry never texts a recipient whose outcome is
recorded. Without idempotency, what a retry can cost is an extra text for each attempt that
reached the gateway but whose outcome was not recorded as sent: its answer lost (a timeout, a
dropped connection, ``isp.SYSTEM_ERROR`` after the gateway took it), or the daemon killed before
the outcome was written (bulk writes outcomes in batches: at most a batch and the sends in
flight) — never the whole list again.

Numbers are E.164 mainland mobiles (``+86`` then 11 digits starting ``1[3-9]``), checked at
config time with their path; they go to the gateway as the 11 national digits. Segments are
counted by the renderer (the ``sms`` format's ``segments``: UCS-2 70, 67 per part when
concatenated; GSM-7 160/153), the signature included; a message holds at most 500 characters
with its signature (§8).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar
from urllib.parse import quote

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationInfo,
    field_validator,
)

from alertcast.channels._fanout import Cursor, Result
from alertcast.channels._vendor import (
    AUTH,
    NEXT_MINUTE,
    PERMANENT,
    TRANSIENT,
    EnvName,
    Fate,
    Reply,
    call_json,
    raise_fate,
    secret,
)
from alertcast.channels.base import (
    Action,
    Channel,
    FieldLimits,
    Limits,
    Outgoing,
    Permanent,
    Receipt,
    RecipientCheck,
    Transient,
)
from alertcast.channels.http import raise_for_status

__all__ = ["SmsChannel", "SmsOptions", "e164_mainland", "mask", "mask_numbers", "sign_rpc"]

_MAINLAND = re.compile(r"^\+861[3-9][0-9]{9}$")
_DIGIT_RUN = re.compile(r"\+?[0-9]{7,}")


def mask(number: str) -> str:
    """``number`` with every digit but the last four shown as ``*`` (a leading ``+`` kept)."""
    head, digits = ("+", number[1:]) if number.startswith("+") else ("", number)
    return head + "*" * max(0, len(digits) - 4) + digits[-4:]


def mask_numbers(text: str) -> str:
    """``text`` with every run of seven or more digits masked as :func:`mask` does."""
    return _DIGIT_RUN.sub(lambda m: mask(m.group()), text)


def e164_mainland(value: str) -> str:
    """``value`` if it is an E.164 mainland mobile number; the error shows it masked."""
    if not _MAINLAND.match(value):
        raise ValueError(
            f"{mask_numbers(value)!r} is not an E.164 mainland mobile number "
            "(+86 and 11 digits starting 13-19, e.g. +8613800138000)"
        )
    return value


Mobile = Annotated[str, AfterValidator(e164_mainland)]
Numbers = Annotated[list[Mobile], Field(min_length=1, max_length=1_000_000)]


class SmsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    access_key_id_env: EnvName
    access_key_secret_env: EnvName
    sign_name: str = Field(min_length=2, max_length=12)  # the 签名, without 【】
    template_code: str = Field(pattern=r"^SMS_[0-9]{1,20}$")
    # template variable -> the payload field that fills it (values are sent as strings)
    template_param: dict[str, str] = Field(default_factory=lambda: {"content": "text"})
    # One SendSms per recipient of the account's recipients file (their ``mobile`` column),
    # sent through alertcast.bulk, instead of the ``recipients`` list in batches.
    per_recipient: bool = False
    recipients: Numbers | None = Field(default=None, validate_default=True)
    base_url: HttpUrl = HttpUrl("https://dysmsapi.aliyuncs.com")
    region_id: str = Field(default="cn-hangzhou", pattern=r"^[a-z0-9-]{2,32}$")

    @field_validator("recipients")
    @classmethod
    def _numbers_by_mode(cls, numbers: list[str] | None, info: ValidationInfo) -> list[str] | None:
        per_recipient = info.data.get("per_recipient", False)
        if per_recipient and numbers is not None:
            raise ValueError(
                "per_recipient = true takes the numbers from the account's recipients file "
                "(its mobile column): remove recipients, or per_recipient"
            )
        if not per_recipient and numbers is None:
            raise ValueError(
                "the numbers to text are required (or per_recipient = true, the numbers "
                "then in the recipients file's mobile column)"
            )
        return numbers


class SmsChannel(Channel):
    name = "sms"
    Options = SmsOptions
    default_format = "sms"
    capabilities: ClassVar[frozenset[Action]] = frozenset({"post"})
    limits: ClassVar[Limits] = Limits(concurrency=1)  # one batch at a time: the cursor's order
    formats: ClassVar[Mapping[str, FieldLimits]] = {"sms": {}}  # segments: the renderer's
    BATCH: ClassVar[int] = 100
    MAX_CHARS: ClassVar[int] = 500  # §8: one message, the signature with its 【】 included
    VERSION: ClassVar[str] = "2017-05-25"
    ERRORS: ClassVar[Mapping[str, Fate]] = {
        "isp.SYSTEM_ERROR": TRANSIENT,  # §8: retry
        "isv.BUSINESS_LIMIT_CONTROL": NEXT_MINUTE,  # §8 flow control (values UNCONFIRMED)
        "isv.TEMPLATE_MISSING_PARAMETERS": PERMANENT,  # §8
        "isv.INVALID_JSON_PARAM": PERMANENT,  # §8
        "isv.PARAM_LENGTH_LIMIT": PERMANENT,  # §8
        "isv.BLACK_KEY_CONTROL_LIMIT": PERMANENT,  # §8: a word the gateway blocks
        "isv.SMS_SIGNATURE_ILLEGAL": PERMANENT,  # §8
        # The signing protocol's own answers (Aliyun's RPC guide, not §8):
        "SignatureDoesNotMatch": AUTH,
        "InvalidAccessKeyId.NotFound": AUTH,
        "InvalidTimeStamp.Expired": TRANSIENT,  # our clock; the next try signs anew
        "SignatureNonceUsed": TRANSIENT,
    }
    # Refused for the numbers of one batch alone: recorded for them, the other batches go on.
    NUMBER_CODES: ClassVar[frozenset[str]] = frozenset({"isv.MOBILE_NUMBER_ILLEGAL"})

    @property
    def _opts(self) -> SmsOptions:
        assert isinstance(self.options, SmsOptions)
        return self.options

    @classmethod
    def per_recipient(cls, options: BaseModel) -> bool:
        return isinstance(options, SmsOptions) and options.per_recipient

    @classmethod
    def recipient_columns(cls, options: BaseModel) -> Mapping[str, RecipientCheck]:
        return {"mobile": _mobile_column}

    def send_timeout_s(self, msg: Outgoing) -> float:
        batches = -(-len(set(self._opts.recipients or ())) // self.BATCH)
        return self.timeout_s * max(1, batches)

    async def send(self, msg: Outgoing) -> Receipt:
        param = self._template_param(msg.payload)
        if self._opts.per_recipient:
            return await self._send_to_recipient(msg, param)
        numbers = {_digest(msg.idempotency_key, n): n for n in self._opts.recipients or ()}
        cursor = Cursor(msg.progress, list(numbers))
        msg.progress.setdefault("batches", 0)
        while batch := list(_take(cursor, self.BATCH)):
            to = [numbers[cursor.ids[pos]] for pos in batch]
            result = await self._send_batch(msg, to, param)
            for pos in batch:
                cursor.mark(pos, result)
            msg.progress["batches"] += 1
            self.log.info("sms.batch", numbers=len(to), first=mask(to[0]), biz_id=result.remote_id)
            if msg.checkpoint is not None and not await msg.checkpoint():
                raise Transient("the claim on this delivery was lost; stopping")
        return _receipt(msg.progress, cursor, msg.payload)

    async def _send_to_recipient(self, msg: Outgoing, param: str) -> Receipt:
        """One SendSms to the number of ``msg.recipient`` (a per-recipient account's send);
        a refused number is :class:`Permanent` for that recipient alone."""
        number = _recipient_number(msg.recipient)
        result = await self._send_batch(msg, [number], param)
        if not result.sent:
            why = f"sms {result.code}: the gateway refused the number {mask(number)}"
            raise Permanent(why, code=result.code)
        return Receipt(remote_id=result.remote_id, detail={"segments": msg.payload.get("segments")})

    def _template_param(self, payload: Mapping[str, Any]) -> str:
        text = str(payload.get("text") or "")
        if not text.strip():
            raise Permanent("nothing to send: the text is empty")
        used = len(f"【{self._opts.sign_name}】") + len(text)
        if used > self.MAX_CHARS:
            raise Permanent(f"text is {used} characters with the signature; sms takes at most 500")
        values: dict[str, str] = {}
        for variable, field in self._opts.template_param.items():
            if payload.get(field) is None:
                raise Permanent(f"template_param.{variable} names {field!r}, not in the payload")
            values[variable] = str(payload[field])
        return json.dumps(values, ensure_ascii=False, separators=(",", ":"))

    async def _send_batch(self, msg: Outgoing, to: Sequence[str], param: str) -> Result:
        opts = self._opts
        form = {
            "Action": "SendSms",
            "PhoneNumbers": ",".join(n[3:] for n in to),  # +86 off: the 11 national digits
            "SignName": opts.sign_name,
            "TemplateCode": opts.template_code,
            "TemplateParam": param,
            "OutId": _out_id(msg.idempotency_key),
        }
        reply = await call_json(self.session, "POST", self._url(), form=self._signed(form))
        return self._result(reply)

    def _url(self) -> str:
        return str(self._opts.base_url).rstrip("/") + "/"

    def _signed(self, params: Mapping[str, str]) -> dict[str, str]:
        opts = self._opts
        common = {
            "AccessKeyId": secret(self.secrets, opts.access_key_id_env),
            "Format": "JSON",
            "RegionId": opts.region_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "Version": self.VERSION,
        }
        signed = {**common, **params}
        key = secret(self.secrets, opts.access_key_secret_env)
        return {**signed, "Signature": sign_rpc("POST", signed, key)}

    def _result(self, reply: Reply) -> Result:
        """The batch's BizId, a refusal for its numbers, or the typed error the code means."""
        data = reply.data or {}
        code = _first(data, "Code", "code")
        if code is None:
            raise_for_status(reply.status, mask_numbers(reply.text))
            raise Transient("the SMS gateway answered without a Code", http_status=reply.status)
        if code == "OK":
            return Result(sent=True, remote_id=_first(data, "BizId", "bizId"))
        if code in self.NUMBER_CODES:
            return Result(sent=False, code=code)
        message = mask_numbers(str(_first(data, "Message", "message") or ""))[:160]
        fate = self.ERRORS.get(code, PERMANENT)
        raise_fate(fate, f"sms {code}: {message}", code=code, http_status=reply.status)


def sign_rpc(method: str, params: Mapping[str, str], key_secret: str) -> str:
    """Aliyun's RPC signature (version 1.0, HMAC-SHA1) of ``params`` sent by ``method``."""
    canonical = "&".join(f"{_pct(k)}={_pct(v)}" for k, v in sorted(params.items()))
    to_sign = f"{method}&{_pct('/')}&{_pct(canonical)}"
    digest = hmac.new(f"{key_secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _pct(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8: only ``A-Z a-z 0-9 - _ . ~`` stay as they are."""
    return quote(value, safe="-_.~")


def _mobile_column(value: str) -> str:
    """A recipients file's ``mobile``: an E.164 mainland mobile (the error masks it)."""
    return e164_mainland(value.strip())


def _recipient_number(recipient: Mapping[str, Any] | None) -> str:
    """The number of a per-recipient send's recipient; :class:`Permanent` without a good one
    (a recipient imported while the account was another channel, say)."""
    if recipient is None:
        raise Permanent("a per-recipient account sends to one recipient at a time; none given")
    try:
        return e164_mainland(str(recipient.get("mobile") or ""))
    except ValueError as exc:
        raise Permanent(f"the recipient's mobile column: {exc}") from None


def _out_id(key: str) -> str:
    """``OutId`` (at most 64 characters, echoed in delivery reports): the send's key, or its
    digest when longer (a per-recipient key: the delivery's, ``:``, the recipient's id)."""
    return key if len(key) <= 64 else hashlib.sha256(key.encode()).hexdigest()


def _digest(key: str, number: str) -> str:
    """A number's id in the cursor: keyed by the delivery, so the stored cursor holds none."""
    return hmac.new(key.encode(), number.encode(), hashlib.sha256).hexdigest()[:24]


def _take(cursor: Cursor, size: int) -> list[int]:
    batch: list[int] = []
    for pos in cursor.pending():
        batch.append(pos)
        if len(batch) == size:
            break
    return batch


def _first(data: Mapping[str, Any], *keys: str) -> str | None:
    value = next((data[k] for k in keys if data.get(k) is not None), None)
    return None if value is None else str(value)


def _receipt(progress: Mapping[str, Any], cursor: Cursor, payload: Mapping[str, Any]) -> Receipt:
    if not progress["sent"]:
        codes = sorted({str(c) for c in progress["refusals"].values()})
        raise Permanent(f"the gateway refused every number: {', '.join(codes)}", code=codes[0])
    detail = {
        "sent": progress["sent"],
        "refused": progress["refused"],
        "batches": progress["batches"],
        "segments": payload.get("segments"),
    }
    return Receipt(remote_id=cursor.first_remote_id, detail=detail)
