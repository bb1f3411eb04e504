"""``file``: appends one JSON line per delivery to a file (audits, rehearsals, log shippers)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from alertcast.channels.base import Action, Channel, Outgoing, Permanent, Receipt


class FileOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Path


class FileChannel(Channel):
    name = "file"
    Options = FileOptions
    default_format = "webhook"
    capabilities: ClassVar[frozenset[Action]] = frozenset({"post", "reply", "delete"})

    async def send(self, msg: Outgoing) -> Receipt:
        assert isinstance(self.options, FileOptions)
        line = json.dumps(
            {
                "delivery_id": msg.delivery_id,
                "incident_id": msg.incident_id,
                "idempotency_key": msg.idempotency_key,
                "action": msg.action,
                "target": msg.target_remote_id,
                "payload": msg.payload,
            },
            ensure_ascii=False,
        )
        try:
            await asyncio.to_thread(_append, self.options.path, line)
        except OSError as exc:
            raise Permanent(f"cannot append to {self.options.path}: {exc.strerror}") from exc
        return Receipt(remote_id=msg.delivery_id)


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
