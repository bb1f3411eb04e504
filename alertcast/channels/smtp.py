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
no idempotency; the stable ``Message-ID`` lets a receiving client drop a repeat.

With ``per_recipient = true`` the account has no ``to`` list: its addresses are the ``email``
column of its recipients file (``alertcast recipients import``, checked there by line and
column), and :mod:`alertcast.bulk` sends one transaction per recipient in the incident's area,
as many at once as the account's ``concurrency``, over connections kept open between them (a
small pool; one idle for :data:`POOL_IDLE_S` is closed, one that failed is never reused). The
``Message-ID`` rules are the same: it comes from the delivery's key (a recipient's send key less
its ``:<recipient id>``), so every recipient and every retry carry one ``Message-ID``; a refused
address fails that recipient alone, and is masked in every reason (``c****@example.org``).

Replies: 2xx
sent; a 5xx to ``RCPT`` refuses that recipient alone; any other 4xx is transient, 530/534/535
mean the credentials, any other 5xx is permanent (:attr:`EmailChannel.ERRORS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import aiosmtplib
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

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
    RecipientCheck,
    Transient,
)
from alertcast.lengths import Limit

__all__ = ["EmailChannel", "EmailOptions", "message_id"]

_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
POOL_IDLE_S = 20.0  # a connection idle longer is closed, not reused: servers drop idle ones
POOL_MOST = 32  # idle connections kept for per-recipient sends
MAILS_KEPT = 16  # mails built once for many recipients, the last ones kept


@dataclass(frozen=True, slots=True)
class _Mail:
    """A mail as sent, less its ``To`` header (each recipient's own), and its Message-ID."""

    wire: bytes
    message_id: str


def _address(value: str) -> str:
    if not _ADDRESS.match(value) or len(value) > 254:
        raise ValueError(f"{value!r} is not a mail address (name@domain)")
    return value


Address = Annotated[str, AfterValidator(_address)]
Addresses = Annotated[list[Address], Field(min_length=1, max_length=100_000)]


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
    # One transaction per recipient of the account's recipients file (their ``email``
    # column), sent through alertcast.bulk, instead of the ``to`` list.
    per_recipient: bool = False
    to: Addresses | None = Field(default=None, validate_default=True)
    reply_to: Address | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=300)  # one SMTP command

    @field_validator("to")
    @classmethod
    def _to_by_mode(cls, to: list[str] | None, info: ValidationInfo) -> list[str] | None:
        per_recipient = info.data.get("per_recipient", False)
        if per_recipient and to is not None:
            raise ValueError(
                "per_recipient = true takes the addresses from the account's recipients file "
                "(its email column): remove to, or per_recipient"
            )
        if not per_recipient and to is None:
            raise ValueError(
                "the addresses to mail are required (or per_recipient = true, the addresses "
                "then in the recipients file's email column)"
            )
        return to

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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []  # per-recipient connections
        self._mails: dict[tuple[str, str, str | None, int], tuple[Mapping[str, Any], _Mail]] = {}

    @property
    def _opts(self) -> EmailOptions:
        assert isinstance(self.options, EmailOptions)
        return self.options

    @classmethod
    def per_recipient(cls, options: BaseModel) -> bool:
        return isinstance(options, EmailOptions) and options.per_recipient

    @classmethod
    def recipient_columns(cls, options: BaseModel) -> Mapping[str, RecipientCheck]:
        return {"email": _email_column}

    def send_timeout_s(self, msg: Outgoing) -> float:
        if self._opts.per_recipient:  # connect, EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA
            return self._opts.timeout_s * 8
        return self._opts.timeout_s * (4 + len(set(self._opts.to or ())))

    async def send(self, msg: Outgoing) -> Receipt:
        if self._opts.per_recipient:
            return await self._send_to_recipient(msg)
        mail = self._mail(msg, msg.idempotency_key)
        try:
            cursor = await self._fan_out(msg, mail)
        except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise self._mapped(exc) from exc
        p = cursor.progress
        if not p["sent"]:
            codes = sorted({str(c) for c in p["refusals"].values()})
            raise Permanent(f"every recipient was refused: {p['refusals']}", code=codes[0])
        detail = {"sent": p["sent"], "refused": p["refused"], "refusals": p["refusals"]}
        return Receipt(remote_id=mail.message_id, detail=detail)

    async def _fan_out(self, msg: Outgoing, mail: _Mail) -> Cursor:
        """Connect (TLS, login), then one transaction per recipient the cursor has not done."""
        async with self._client() as smtp:

            async def send_one(rcpt: str) -> Result:
                return await self._send_one(smtp, mail, rcpt)

            to = self._opts.to or ()
            return await fan_out(msg, one_page(to), send_one, concurrency=1, timeout_s=self._wait_s)

    async def _send_to_recipient(self, msg: Outgoing) -> Receipt:
        """One transaction to ``msg.recipient``'s address (a per-recipient account's send),
        over a pooled connection; a 5xx to its ``RCPT`` fails that recipient alone. The
        address is masked in every reason."""
        rcpt = _recipient_address(msg.recipient)
        mail = self._mail(msg, _delivery_key(msg))
        try:
            async with self._pooled() as smtp:
                result = await self._send_one(smtp, mail, rcpt)
        except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise _masked_error(self._mapped(exc), rcpt) from exc
        except ChannelError as exc:
            raise _masked_error(exc, rcpt) from None
        if not result.sent:
            raise Permanent(f"SMTP {result.code}: {_mask(rcpt)} refused", code=result.code)
        return Receipt(remote_id=mail.message_id)

    @contextlib.asynccontextmanager
    async def _pooled(self) -> AsyncIterator[aiosmtplib.SMTP]:
        """A connection for one transaction: an idle one, or a new one (TLS, login); back to
        the pool after it, closed after any error (its state is then unknown)."""
        smtp = self._take_idle()
        if smtp is None:
            smtp = self._client()
            try:
                await smtp.connect()
            except BaseException:
                smtp.close()
                raise
        try:
            yield smtp
        except BaseException:
            smtp.close()
            raise
        if len(self._idle) < POOL_MOST:
            self._idle.append((smtp, time.monotonic()))
        else:
            smtp.close()

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        now = time.monotonic()
        while self._idle:
            smtp, since = self._idle.pop()  # the last used: the likeliest to be open
            if smtp.is_connected and now - since < POOL_IDLE_S:
                return smtp
            smtp.close()
        return None

    async def close(self) -> None:
        """Say QUIT on every idle connection (briefly), then close it."""
        idle, self._idle = self._idle, []
        for smtp, _ in idle:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await smtp.quit()
            smtp.close()

    @property
    def _wait_s(self) -> float:
        return self._opts.timeout_s * 3  # MAIL, RCPT and DATA for one recipient

    def _mail(self, msg: Outgoing, key: str) -> _Mail:
        """:meth:`_message` as sent: built once for every recipient of a delivery's pass (the
        last few kept, by the delivery's key, the action, its target and the payload)."""
        cached = (key, msg.action, msg.target_remote_id, id(msg.payload))
        kept = self._mails.get(cached)
        if kept is not None and kept[0] is msg.payload:
            return kept[1]
        message = self._message(msg, key)
        mail = _Mail(message.as_bytes(), str(message["Message-ID"]))
        if len(self._mails) >= MAILS_KEPT:
            del self._mails[next(iter(self._mails))]
        self._mails[cached] = (msg.payload, mail)  # the payload held: its id is not reused
        return mail

    def _message(self, msg: Outgoing, key: str) -> EmailMessage:
        """The mail of ``msg``, its ``Message-ID`` from the delivery's ``key``."""
        opts, payload = self._opts, msg.payload
        mail = EmailMessage(policy=SMTP)  # CRLF line ends, as the wire wants them
        mail["Subject"] = str(payload.get("subject") or payload.get("title") or "")
        mail["From"] = formataddr((opts.from_name or "", opts.mail_from))
        if opts.reply_to:
            mail["Reply-To"] = opts.reply_to
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = message_id(key, opts.mail_from)
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

    async def _send_one(self, smtp: aiosmtplib.SMTP, mail: _Mail, rcpt: str) -> Result:
        """One transaction to ``rcpt``: its refusal when RCPT answers 5xx, else the error."""
        data = b"To: " + rcpt.encode() + b"\r\n" + mail.wire  # an address is ASCII: checked
        try:
            await smtp.sendmail(self._opts.mail_from, [rcpt], data)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            if refused.code >= 500:
                return Result(sent=False, code=refused.code)
            raise self._mapped(refused) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise self._mapped(exc) from exc
        return Result(sent=True, remote_id=mail.message_id)

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


def _email_column(value: str) -> str:
    """A recipients file's ``email``: a mail address (name@domain)."""
    return _address(value.strip())


def _recipient_address(recipient: Mapping[str, Any] | None) -> str:
    """The address of a per-recipient send's recipient; :class:`Permanent` without a good one
    (a recipient imported while the account was another channel, say)."""
    if recipient is None:
        raise Permanent("a per-recipient account mails one recipient at a time; none given")
    try:
        return _address(str(recipient.get("email") or ""))
    except ValueError:
        raise Permanent("the recipient's email column holds no mail address") from None


def _delivery_key(msg: Outgoing) -> str:
    """The delivery's idempotency key: a per-recipient send's (``<delivery's>:<recipient
    id>``, alertcast.bulk) less its recipient, so every recipient gets one Message-ID."""
    rid = str((msg.recipient or {}).get("id") or "")
    return msg.idempotency_key.removesuffix(f":{rid}") if rid else msg.idempotency_key


def _mask(address: str) -> str:
    """``c****@office.example.org``: the first character of the local part and the domain."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}****@{domain}"


def _masked_error(exc: ChannelError, address: str) -> ChannelError:
    """``exc`` with ``address`` masked in its reason (servers often echo it)."""
    exc.reason = re.sub(re.escape(address), _mask(address), exc.reason, flags=re.IGNORECASE)
    exc.args = (exc.reason,)
    return exc


def _original(msg: Outgoing) -> str:
    target = msg.target_remote_id or ""
    if not (target.startswith("<") and target.endswith(">") and "@" in target):
        raise Permanent(f"a reply needs the original's Message-ID, not {target!r}")
    return target
