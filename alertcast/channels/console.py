"""``console``: prints each payload's text to standard output (demos, dry runs)."""

from __future__ import annotations

import sys
from typing import ClassVar

from alertcast.channels.base import Action, Channel, Outgoing, Receipt


class ConsoleChannel(Channel):
    name = "console"
    default_format = "text"
    capabilities: ClassVar[frozenset[Action]] = frozenset({"post", "reply"})

    async def send(self, msg: Outgoing) -> Receipt:
        text = str(msg.payload.get("text", ""))
        print(f"[{self.account.id}] {text}", file=sys.stdout, flush=True)
        return Receipt(remote_id=msg.delivery_id)
