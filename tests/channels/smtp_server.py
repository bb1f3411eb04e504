"""An SMTP server for the email tests: aiosmtpd on 127.0.0.1, keeping what it accepts and
answering ``RCPT`` and ``DATA`` as a test scripts it; optionally TLS from the first byte,
STARTTLS required, or a login required, with a certificate made for the test by ``trustme``."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


@dataclass
class Mailbox:
    """What the server accepted, and how it answers next."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)  # address -> reply
    data_replies: list[str] = field(default_factory=list)  # the next DATA replies, in order
    tls_seen: list[bool] = field(default_factory=list)  # per accepted message: over TLS?
    host: str = "127.0.0.1"
    port: int = 0

    @property
    def requests(self) -> list[Any]:  # the name the limit tests' rigs read
        return self.messages

    def to(self, address: str) -> list[EmailMessage]:
        return [m for _, rcpts, m in self.messages if address in rcpts]

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.data_replies:
            reply = self.data_replies.pop(0)
            if not reply.startswith("250"):
                return reply
        raw = envelope.original_content or b""
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
        self.tls_seen.append(server.transport.get_extra_info("ssl_object") is not None)
        return "250 OK"


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    server: ssl.SSLContext


def certificates(tmp: Path) -> Certificates:
    """A throw-away CA and a certificate for 127.0.0.1 signed by it."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    ca_file = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Certificates(ca_file, server)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Login:
    """Accepts one user and password (LOGIN and PLAIN)."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            self.user,
            self.password,
        )
        return AuthResult(success=ok, handled=False)


@contextmanager
def smtp_server(
    mailbox: Mailbox | None = None,
    *,
    implicit_tls: ssl.SSLContext | None = None,
    starttls: ssl.SSLContext | None = None,
    login: tuple[str, str] | None = None,
) -> Iterator[Mailbox]:
    """Run a server on 127.0.0.1 (a free port) for the ``with`` block."""
    box = mailbox or Mailbox()
    box.port = _free_port()
    kwargs: dict[str, Any] = {}
    if starttls is not None:
        kwargs.update(tls_context=starttls, require_starttls=True)
    if login is not None:
        kwargs.update(authenticator=_Login(*login), auth_require_tls=starttls is not None)
    controller = Controller(
        box, hostname=box.host, port=box.port, ssl_context=implicit_tls, **kwargs
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
