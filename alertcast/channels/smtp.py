"""``email``: one mail, text and HTML alternatives, to each of an account's recipients by SMTP.

API reference: SMTP (RFC 5321) through aiosmtplib, an asyncio client: ``security = "starttls"``
(port 587: plain connect, then ``STARTTLS``; refused when the server does not offer it),
``"tls"`` (port 465: TLS from the first byte) or ``"none"`` (port 25, a relay on a trusted
network only). Certificates are verified (``ca_file`` adds an office's own CA). ``username``
with ``password_env`` logs in after TLS.

The message (RFC 5322) is ``multipart/alternative``: the ``email`` format's ``text`` and its
``html`` (both from the templates), ``Subject`` its ``subject``. ``Message-ID`` is made from the
delivery's idempotency key, so every retry and every recipient carry the same one and a resend
after a crash is the same message to a mail client; an update or a cancellation (action
``reply``) names the original's in ``In-Reply-To`` and ``References``, so clients thread it
under the alert. ``Auto-Submitted: auto-generated`` (RFC 3834) keeps auto-replies away.

Recipients are sent one transaction each over one connection, under a resumable cursor
(:mod:`alertcast.channels._fanout`): a retry resumes after the last recipient recorded. SMTP has
no idempotency; the stable ``Message-ID`` lets a receiving client drop a repeat. Replies: 2xx
sent; a 5xx to ``RCPT`` refuses that recipient alone; any other 4xx is transient, 530/534/535
mean the credentials, any other 5xx is permanent (:attr:`EmailChannel.ERRORS`).
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import aiosmtplib
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from alertcast.channels._fanout import Cursor, Result, fan_out, one_page
from alertcast.channels._vendor import AUTH, PERMANENT, TRANSIENT, EnvName, Fate, secret
from alertcast.channels.base import (
    Action,
    Channel,
    ChannelError,
    FieldLimits,
    Limits,
    Outgoing,
    Permanent,
    Receipt,
    Transient,
)
from alertcast.lengths import Limit

__all__ = ["EmailChannel", "EmailOptions", "message_id"]

_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


def _address(value: str) -> str:
    if not _ADDRESS.match(value) or len(value) > 254:
        raise ValueError(f"{value!r} is not a mail address (name@domain)")
    return value


Address = Annotated[str, AfterValidator(_address)]


class EmailOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)  # by security: 587, 465 or 25
    security: Literal["starttls", "tls", "none"] = "starttls"
    ca_file: Path | None = None
    username: str | None = None
    password_env: EnvName | None = None
    mail_from: Address
    from_name: str | None = Field(default=None, max_length=100)
    to: list[Address] = Field(min_length=1, max_length=100_000)
    reply_to: Address | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=300)  # one SMTP command

    @model_validator(mode="after")
    def _login_whole(self) -> EmailOptions:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together")
        return self


class EmailChannel(Channel):
    name = "email"
    Options = EmailOptions
    default_format = "email"
    capabilities: ClassVar[frozenset[Action]] = frozenset({"post", "reply"})
    limits: ClassVar[Limits] = Limits(concurrency=2)
    formats: ClassVar[Mapping[str, FieldLimits]] = {
        "email": {
            "subject": Limit(200),  # RFC 5322 allows 998 per line; clients show far fewer
            "text": Limit(100_000),
            "html": Limit(200_000),
        }
    }
    ERRORS: ClassVar[Mapping[int, Fate]] = {
        421: TRANSIENT,  # service not available, closing the channel
        450: TRANSIENT,  # mailbox unavailable (busy, greylisted)
        451: TRANSIENT,  # local error in processing
        452: TRANSIENT,  # insufficient storage
        530: AUTH,  # authentication required
        534: AUTH,  # authentication mechanism too weak
        535: AUTH,  # authentication credentials invalid
        550: PERMANENT,  # mailbox unavailable / policy
        552: PERMANENT,  # exceeded storage allocation
        554: PERMANENT,  # transaction failed (content refused)
    }

    @property
    def _opts(self) -> EmailOptions:
        assert isinstance(self.options, EmailOptions)
        return self.options

    def send_timeout_s(self, msg: Outgoing) -> float:
        return self._opts.timeout_s * (4 + len(set(self._opts.to)))

    async def send(self, msg: Outgoing) -> Receipt:
        mail = self._message(msg)
        try:
            cursor = await self._fan_out(msg, mail)
        except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise self._mapped(exc) from exc
        p = cursor.progress
        if not p["sent"]:
            codes = sorted({str(c) for c in p["refusals"].values()})
            raise Permanent(f"every recipient was refused: {p['refusals']}", code=codes[0])
        detail = {"sent": p["sent"], "refused": p["refused"], "refusals": p["refusals"]}
        return Receipt(remote_id=str(mail["Message-ID"]), detail=detail)

    async def _fan_out(self, msg: Outgoing, mail: EmailMessage) -> Cursor:
        """Connect (TLS, login), then one transaction per recipient the cursor has not done."""
        async with self._client() as smtp:

            async def send_one(rcpt: str) -> Result:
                return await self._send_one(smtp, mail, rcpt)

            return await fan_out(
                msg, one_page(self._opts.to), send_one, concurrency=1, timeout_s=self._wait_s
            )

    @property
    def _wait_s(self) -> float:
        return self._opts.timeout_s * 3  # MAIL, RCPT and DATA for one recipient

    def _message(self, msg: Outgoing) -> EmailMessage:
        opts, payload = self._opts, msg.payload
        mail = EmailMessage(policy=SMTP)  # CRLF line ends, as the wire wants them
        mail["Subject"] = str(payload.get("subject") or payload.get("title") or "")
        mail["From"] = formataddr((opts.from_name or "", opts.mail_from))
        if opts.reply_to:
            mail["Reply-To"] = opts.reply_to
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = message_id(msg.idempotency_key, opts.mail_from)
        mail["Auto-Submitted"] = "auto-generated"
        if msg.action == "reply":
            original = _original(msg)
            mail["In-Reply-To"] = original
            mail["References"] = original
        text = str(payload.get("text") or "")
        if not text.strip():
            raise Permanent("nothing to send: the text is empty")
        mail.set_content(text, cte="base64")  # 7-bit safe: no relay needs 8BITMIME
        if html := payload.get("html"):
            mail.add_alternative(str(html), subtype="html", cte="base64")
        return mail

    def _client(self) -> aiosmtplib.SMTP:
        opts = self._opts
        password = secret(self.secrets, opts.password_env) if opts.password_env else None
        return aiosmtplib.SMTP(
            hostname=opts.host,
            port=opts.port or DEFAULT_PORTS[opts.security],
            username=opts.username,
            password=password,
            use_tls=opts.security == "tls",
            start_tls=opts.security == "starttls",
            tls_context=ssl.create_default_context(cafile=opts.ca_file) if opts.ca_file else None,
            timeout=opts.timeout_s,
        )

    async def _send_one(self, smtp: aiosmtplib.SMTP, mail: EmailMessage, rcpt: str) -> Result:
        """One transaction to ``rcpt``: its refusal when RCPT answers 5xx, else the error."""
        del mail["To"]
        mail["To"] = rcpt
        try:
            await smtp.sendmail(self._opts.mail_from, [rcpt], mail.as_bytes())
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            if refused.code >= 500:
                return Result(sent=False, code=refused.code)
            raise self._mapped(refused) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise self._mapped(exc) from exc
        return Result(sent=True, remote_id=str(mail["Message-ID"]))

    def _mapped(self, exc: BaseException) -> ChannelError:
        """The typed error an SMTP reply or a connection failure means."""
        where = f"{self._opts.host}:{self._opts.port or DEFAULT_PORTS[self._opts.security]}"
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            fate = self.ERRORS.get(exc.code) or (TRANSIENT if exc.code < 500 else PERMANENT)
            reason = f"SMTP {exc.code}: {exc.message[:200]}"
            return fate.error(reason, code=exc.code)
        if isinstance(exc, ssl.SSLError):
            return Permanent(f"TLS with {where} failed: {exc.reason or type(exc).__name__}")
        if isinstance(exc, aiosmtplib.SMTPNotSupported):
            return Permanent(
                f"{where} cannot do what security = {self._opts.security!r} needs: {exc}"
            )
        if isinstance(exc, TimeoutError):
            return Transient(f"SMTP {where} timed out")
        return Transient(f"SMTP connection to {where}: {type(exc).__name__}: {str(exc)[:120]}")


def message_id(key: str, mail_from: str) -> str:
    """``<…@domain>`` from the delivery's idempotency key: the same on every retry."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<alertcast.{digest}@{mail_from.rpartition('@')[2]}>"


def _original(msg: Outgoing) -> str:
    target = msg.target_remote_id or ""
    if not (target.startswith("<") and target.endswith(">") and "@" in target):
        raise Permanent(f"a reply needs the original's Message-ID, not {target!r}")
    return target
