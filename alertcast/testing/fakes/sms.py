"""A fake Aliyun Dysmsapi 2017-05-25 gateway (``POST /``, RPC style), from facts §8.

It checks what the gateway checks, re-derived here rather than borrowed from the adapter: the
common parameters (``Action=SendSms``, ``Version``, ``Format``, ``SignatureMethod=HMAC-SHA1``,
``SignatureVersion=1.0``), a timestamp within 15 minutes (``InvalidTimeStamp.Expired``), a nonce
used once (``SignatureNonceUsed``), the AccessKey (``InvalidAccessKeyId.NotFound``, HTTP 404) and
the signature (``SignatureDoesNotMatch``, HTTP 400), recomputed by its own percent-encoder. Then
the message: an approved sign name (``isv.SMS_SIGNATURE_ILLEGAL``), a known template code,
``TemplateParam`` a JSON object of strings (``isv.INVALID_JSON_PARAM``) holding every variable of
the template (``isv.TEMPLATE_MISSING_PARAMETERS``), at most 1000 numbers, each a mainland mobile
(``isv.MOBILE_NUMBER_ILLEGAL``), no blocked word (``isv.BLACK_KEY_CONTROL_LIMIT``), and a number
receiving at most ``per_number_day`` messages of one sign and template a day
(``isv.BUSINESS_LIMIT_CONTROL``). Business refusals come with HTTP 200, as the gateway sends them.

A sent batch answers ``{"Code": "OK", "Message": "OK", "BizId", "RequestId"}``; §8 leaves the
casing UNCONFIRMED, so ``casing = "camel"`` answers ``code``/``bizId`` instead. Every number's
messages are kept in :attr:`FakeSms.inbox` (the text as a phone shows it: 【sign】 + the filled
template), every accepted batch in :attr:`FakeSms.batches`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from alertcast.testing.fakes._base import FakePlatform, Refusal

__all__ = ["FakeSms", "SmsRefusal"]

MAX_NUMBERS = 1000
TIMESTAMP_SKEW_S = 15 * 60
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_NATIONAL = re.compile(r"^(?:\+86|0086|86)?(1[3-9][0-9]{9})$")
_VARIABLE = re.compile(r"\$\{(\w+)\}")


class SmsRefusal(Refusal):
    """A refusal with the gateway's string ``Code``."""

    def __init__(self, sms_code: str, message: str, *, status: int = 200) -> None:
        super().__init__(status, message, status=status)
        self.sms_code = sms_code


def _encode(text: str) -> str:
    """RFC 3986 percent-encoding, byte by byte (upper-case hex)."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode())


class FakeSms(FakePlatform):
    def __init__(
        self,
        keys: Mapping[str, str],
        *,
        signs: set[str],
        templates: Mapping[str, str],
        blocked: set[str] | None = None,
        per_number_day: int = 50,
        casing: Literal["pascal", "camel"] = "pascal",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock)
        self.keys = dict(keys)
        self.signs = set(signs)
        self.templates = dict(templates)
        self.blocked = set(blocked or ())
        self.per_number_day = per_number_day
        self.casing = casing
        self.inbox: dict[str, list[str]] = {}
        self.batches: list[list[str]] = []
        self._nonces: set[str] = set()
        self._daily: Counter[tuple[str, str, str, str]] = Counter()

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/", self._call)]

    def refuse(self, request: web.Request, refusal: Refusal) -> web.Response:
        code = refusal.sms_code if isinstance(refusal, SmsRefusal) else "isp.SYSTEM_ERROR"
        return web.json_response(self._shape(code, refusal.message), status=refusal.status)

    def _shape(self, code: str, message: str, biz_id: str | None = None) -> dict[str, Any]:
        keys = ("Code", "Message", "BizId", "RequestId")
        if self.casing == "camel":
            keys = ("code", "message", "bizId", "requestId")
        body = {keys[0]: code, keys[1]: message, keys[3]: f"req-{len(self.requests)}"}
        if biz_id is not None:
            body[keys[2]] = biz_id
        return body

    async def _call(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self._authenticate(form)
        numbers = self._numbers(form.get("PhoneNumbers", ""))
        text = self._text(form)
        day = datetime.fromtimestamp(self.clock(), UTC).date().isoformat()
        for n in numbers:
            if self._daily[(n, form["SignName"], form["TemplateCode"], day)] >= self.per_number_day:
                raise SmsRefusal("isv.BUSINESS_LIMIT_CONTROL", "触发号码天级流控Permits:50")
        for n in numbers:
            self._daily[(n, form["SignName"], form["TemplateCode"], day)] += 1
            self.inbox.setdefault(n, []).append(text)
        self.batches.append(numbers)
        biz_id = f"{900000000000000000 + len(self.batches)}^0"
        return web.json_response(self._shape("OK", "OK", biz_id))

    def _authenticate(self, form: Mapping[str, str]) -> None:
        expected = {
            "Action": "SendSms",
            "Version": "2017-05-25",
            "Format": "JSON",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
        }
        for name, value in expected.items():
            if form.get(name) != value:
                raise SmsRefusal("InvalidParameter", f"{name} must be {value}", status=400)
        self._fresh(form.get("Timestamp", ""), form.get("SignatureNonce", ""))
        key_secret = self.keys.get(form.get("AccessKeyId", ""))
        if key_secret is None:
            raise SmsRefusal(
                "InvalidAccessKeyId.NotFound", "Specified access key is not found.", status=404
            )
        if not hmac.compare_digest(form.get("Signature", ""), self._signature(form, key_secret)):
            raise SmsRefusal(
                "SignatureDoesNotMatch", "Specified signature is not matched.", status=400
            )

    def _fresh(self, timestamp: str, nonce: str) -> None:
        try:
            at = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise SmsRefusal("InvalidTimeStamp.Format", "bad Timestamp", status=400) from None
        if abs(at.timestamp() - self.clock()) > TIMESTAMP_SKEW_S:
            raise SmsRefusal("InvalidTimeStamp.Expired", "Timestamp is expired.", status=400)
        if not nonce or nonce in self._nonces:
            raise SmsRefusal(
                "SignatureNonceUsed", "Specified signature nonce was used already.", status=400
            )
        self._nonces.add(nonce)

    @staticmethod
    def _signature(form: Mapping[str, str], key_secret: str) -> str:
        pairs = sorted((k, v) for k, v in form.items() if k != "Signature")
        query = "&".join(_encode(k) + "=" + _encode(v) for k, v in pairs)
        string_to_sign = "POST&" + _encode("/") + "&" + _encode(query)
        mac = hmac.new((key_secret + "&").encode(), string_to_sign.encode(), hashlib.sha1)
        return base64.b64encode(mac.digest()).decode()

    def _numbers(self, raw: str) -> list[str]:
        given = [n.strip() for n in raw.split(",") if n.strip()]
        if not given or len(given) > MAX_NUMBERS:
            raise SmsRefusal("isv.MOBILE_COUNT_OVER_LIMIT", "PhoneNumbers: 1 to 1000 numbers")
        numbers = []
        for n in given:
            m = _NATIONAL.match(n)
            if m is None:
                raise SmsRefusal("isv.MOBILE_NUMBER_ILLEGAL", f"非法手机号 {n}")
            numbers.append(m.group(1))
        return numbers

    def _text(self, form: Mapping[str, str]) -> str:
        sign = form.get("SignName", "")
        if sign not in self.signs:
            raise SmsRefusal("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        template = self.templates.get(form.get("TemplateCode", ""))
        if template is None:
            raise SmsRefusal("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            values = json.loads(form.get("TemplateParam", ""))
        except ValueError:
            values = None
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise SmsRefusal("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        missing = [v for v in _VARIABLE.findall(template) if v not in values]
        if missing:
            raise SmsRefusal("isv.TEMPLATE_MISSING_PARAMETERS", f"模板缺少变量 {missing[0]}")
        text = _VARIABLE.sub(lambda m: values[m.group(1)], template)
        if any(word in text for word in self.blocked):
            raise SmsRefusal("isv.BLACK_KEY_CONTROL_LIMIT", "模板变量中存在限制发送的关键字")
        return f"【{sign}】{text}"
