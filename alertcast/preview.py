"""The rendering side of intake: which payload each account gets, and the preview of them all.

Kept apart from :mod:`alertcast.service` so ``alertcast render`` and ``POST /v1/render`` share
exactly what intake does, without a store.
"""

from __future__ import annotations

from typing import Any

from alertcast.channels import channel_class
from alertcast.config import AccountConfig, Config
from alertcast.models import Incident, MsgType, incident_json
from alertcast.regions import Hierarchy
from alertcast.render import RenderContext, Renderer, RenderError, render_key
from alertcast.routing import route

__all__ = ["Memo", "preview", "public_link", "render_for", "render_key"]


def public_link(config: Config, incident: Incident, incident_id: str) -> str | None:
    """The link to the full text: the incident's own URL, else our public page for it."""
    if incident.url is not None:
        return str(incident.url)
    base = config.server.public_url
    return f"{base.rstrip('/')}/p/{incident_id}" if base else None


Memo = dict[str, dict[str, Any]]


def render_for(
    renderer: Renderer, incident: Incident, account: AccountConfig, ctx: RenderContext
) -> dict[str, Any]:
    default = channel_class(account.channel).default_format
    return renderer.render(incident, account, ctx, default_format=default)


def preview(
    config: Config,
    renderer: Renderer,
    incident: Incident,
    account_id: str | None = None,
    regions: Hierarchy | None = None,
) -> dict[str, Any]:
    """Every payload ``incident`` would produce, with routing reasons; nothing is stored."""
    ctx = RenderContext(
        incident_id="preview", msg_type=MsgType.alert, link=public_link(config, incident, "preview")
    )
    out = []
    for decision in route(incident, config.accounts, regions, config.routes):
        if account_id is not None and decision.account.id != account_id:
            continue
        entry: dict[str, Any] = {
            "account": decision.account.id,
            "channel": decision.account.channel,
            "chosen": decision.chosen,
            "why": decision.why,
        }
        try:
            entry["payload"] = render_for(renderer, incident, decision.account, ctx)
        except RenderError as exc:
            entry["error"] = str(exc)
        out.append(entry)
    return {"incident": incident_json(incident), "accounts": out}
