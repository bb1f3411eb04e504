"""What a render needs besides the incident and the account, and how it fails."""

from __future__ import annotations

from dataclasses import dataclass

from alertcast.models import MsgType

__all__ = ["RenderContext", "RenderError"]


class RenderError(Exception):
    """A payload cannot be made: mandatory facts do not fit, or a template is missing or broken.

    The message names the account and the format; ``account`` and ``format`` carry them too.
    """

    def __init__(self, message: str, *, account: str = "", format: str = "") -> None:
        where = " ".join(
            part
            for part in (
                f"account {account}" if account else "",
                f"format {format}" if format else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.account = account
        self.format = format
        self.reason = message


@dataclass(frozen=True)
class RenderContext:
    """The message around the incident: its id, its type, and the link to the full text."""

    incident_id: str
    msg_type: MsgType
    link: str | None
    references: str | None = None
    reason: str | None = None
