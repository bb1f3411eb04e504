"""``alertcast demo``: the daemon on the example config against local fakes, one earthquake.

Everything runs on 127.0.0.1 in this process with a throw-away SQLite file: the fake Weibo,
WeChat, WeCom, DingTalk and Feishu servers check what the real ones check, a webhook receiver
verifies signatures (and refuses the first try, to show a retry), and the newcomer sees the whole
path — accepted, stored, rendered, sent, retried, settled — then a cancellation threaded to the
original posts, then a drill that reaches only the drill account.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets as pysecrets
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from alertcast.checks import load_checked
from alertcast.config import Config, ServerConfig, StoreConfig
from alertcast.daemon import serve
from alertcast.follow import follow
from alertcast.logs import configure
from alertcast.secrets import Secrets
from alertcast.testing.fakes import FakePlatform, FakeWechat, FakeWeibo
from alertcast.testing.fakes import serve as serve_fake
from alertcast.testing.fakes.__main__ import CREDENTIALS, fakes
from alertcast.testing.sink import WebhookSink

__all__ = ["run_demo"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "config" / "samples"
DEMO_ENV = (
    "ALERTCAST_TOKEN",
    "ALERTCAST_APPROVER_TOKEN",
    "ALERTCAST_DISPLAY_TOKEN",
    "ALERTCAST_WEBHOOK_SECRET",
    "REHEARSAL_WECHAT_SERVICE_SECRET",  # the fake WeChat learns it (see _known_apps)
)
FAKE_FOR = {
    "weibo": "weibo",
    "wechat_oa": "wechat",
    "wecom_robot": "wecom",
    "dingtalk_robot": "dingtalk",
    "feishu_robot": "feishu",
}


def _say(text: str = "") -> None:
    print(text, flush=True)


def _demo_config(path: str | None, workdir: Path) -> Config:
    for name in DEMO_ENV:
        os.environ.setdefault(name, "demo-" + pysecrets.token_urlsafe(18))
    for name, value in CREDENTIALS.items():
        os.environ.setdefault(name, value)
    config = load_checked(path or ROOT / "config" / "example.toml", check_env=True)
    accounts = [
        a.model_copy(update={"path": str(workdir / "deliveries.jsonl")})
        if a.channel == "file"
        else a
        for a in config.accounts
    ]
    server = ServerConfig(**{**config.server.model_dump(), "port": 0})
    return config.model_copy(
        update={
            "store": StoreConfig(url=f"sqlite:///{workdir / 'demo.db'}"),
            "server": server,
            "accounts": accounts,
        }
    )


async def _start_fakes(config: Config, stack: AsyncExitStack) -> dict[str, FakePlatform]:
    """One fake per platform the config names, on the port its accounts' base_url says."""
    made, started = fakes(), {}
    _known_apps(made["wechat"], config)
    for account in config.accounts:
        name = FAKE_FOR.get(account.channel)
        base = account.options.get("base_url")
        if name is None or base is None or name in started:
            continue
        port = urlsplit(str(base)).port
        await stack.enter_async_context(serve_fake(made[name], port=port or 0))
        started[name] = made[name]
        _say(f"· fake {name:<9} listens on {base}")
    return started


def _known_apps(fake: FakePlatform, config: Config) -> None:
    """The fake WeChat knows every app the config names, by the secret its variable holds."""
    if not isinstance(fake, FakeWechat):
        return
    for account in config.accounts:
        app_id, secret_env = (account.options.get(k) for k in ("app_id", "app_secret_env"))
        if account.channel == "wechat_oa" and isinstance(app_id, str):
            fake.apps.setdefault(app_id, os.environ.get(str(secret_env), ""))


async def _start_sink(config: Config, secrets: Secrets, stack: AsyncExitStack) -> WebhookSink:
    hook = next(a for a in config.accounts if a.channel == "webhook")
    url = urlsplit(str(hook.options["url"]))
    sink = WebhookSink(
        secret=secrets.get(hook.options["secret_env"]),
        latency_s=0.05,
        script=[(503, {"Retry-After": "1"})],
    )
    await sink.start(url.hostname or "127.0.0.1", url.port or 80)
    stack.push_async_callback(sink.stop)
    _say(f"· webhook receiver  listens on {sink.url} (it refuses the first try with 503)")
    return sink


async def run_demo(path: str | None = None, *, keep: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="alertcast-demo-") as tmp:
        workdir = Path(tmp)
        config = _demo_config(path, workdir)
        secrets = Secrets()
        configure(secrets, level="warning", fmt="console")
        async with AsyncExitStack() as stack:
            platforms = await _start_fakes(config, stack)
            sink = await _start_sink(config, secrets, stack)
            return await _run(config, secrets, platforms, sink, workdir, keep)


async def _run(
    config: Config,
    secrets: Secrets,
    platforms: dict[str, FakePlatform],
    sink: WebhookSink,
    workdir: Path,
    keep: bool,
) -> int:
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(config, secrets, port=0, ready=ready, stop=stop))
    base = await ready
    _say(f"· alertcast         runs at {base} (store {workdir / 'demo.db'})")
    headers = {
        "Authorization": f"Bearer {secrets.get('ALERTCAST_TOKEN')}",
        "Content-Type": "application/json",
    }
    try:
        async with aiohttp.ClientSession() as session:
            code = await _story(session, base, headers, platforms, sink)
    finally:
        if not keep:
            stop.set()
    if keep:
        _say(f"· still serving at {base}; Ctrl-C stops it")
    await server
    return code


async def _post(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: Any
) -> dict[str, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body)
    async with session.post(url, data=data, headers=headers) as resp:
        answer: dict[str, Any] = await resp.json()
        if resp.status != 202:
            raise SystemExit(f"demo: {url} answered {resp.status}: {answer}")
        return answer


async def _story(
    session: aiohttp.ClientSession,
    base: str,
    headers: dict[str, str],
    platforms: dict[str, FakePlatform],
    sink: WebhookSink,
) -> int:
    _say("\n1) The provincial office raises an earthquake (M6.8, Luding):")
    quake = await _post(
        session, f"{base}/v1/incidents", headers, (SAMPLES / "earthquake.json").read_bytes()
    )
    _say(f"   202 {quake['id']}: {len(quake['deliveries'])} deliveries stored before the answer")
    code = await follow(session, base, headers, quake["id"], 60)
    weibo = platforms.get("weibo")
    if isinstance(weibo, FakeWeibo):
        for status in weibo.statuses.values():
            kind = "repost" if status.get("retweeted_status") else "post"
            _say(f"   weibo {kind}: {status['text']}")
    _say("\n2) It was a mistake: one call cancels it everywhere it went:")
    cancel = await _post(
        session,
        f"{base}/v1/incidents/{quake['id']}/cancel",
        headers,
        {"reason": "演示：该信息为演练数据，特此撤销"},
    )
    code |= await follow(session, base, headers, cancel["id"], 60)
    async with session.get(f"{base}/v1/incidents/{cancel['id']}", headers=headers) as resp:
        corrected = await resp.json()
    _say("\n3) A fire drill goes only to the drill account:")
    drill = await _post(
        session, f"{base}/v1/incidents", headers, (SAMPLES / "fire-drill.json").read_bytes()
    )
    code |= await follow(session, base, headers, drill["id"], 60)
    _explain(sink, quake["id"])
    _say("\nHow the cancellation reached the people who saw the alarm (each delivery's path):")
    for line in correction_paths(corrected["deliveries"]):
        _say(line)
    return code


PATHS = {
    "timeline": "followers' timeline / chat list",
    "thread": "on the original (a comment)",
    "edit": "the original, edited",
    "withdraw": "the original withdrawn",
    "paired": "followers, by a paired account",
    "window": "followers who wrote in the last 48 h",
    "fallback": "a fallback account",
}


def correction_paths(deliveries: list[dict[str, Any]]) -> list[str]:
    """One line per delivery of a correction: account, path, and how it ended, in words."""
    lines = []
    for d in deliveries:
        where = PATHS.get(d.get("path") or "", d.get("path") or d["action"])
        how = d["state"] if d["state"] == "delivered" else f"{d['state']}: {d.get('reason') or ''}"
        lines.append(f"  · {d['account']:<22} {where:<36} {how}")
    return lines


def _explain(sink: WebhookSink, incident_id: str) -> None:
    _say("\nWhat happened:")
    _say(
        f"  · {incident_id} was validated, routed by kind, severity and region, rendered for "
        "each platform and stored with one delivery per account before the 202;"
    )
    _say("  · the Ganzi account reposted the province's Weibo post (a release hall);")
    _say(
        f"  · the webhook receiver got {len(sink.received)} signed requests; the first 503 was "
        "retried after its Retry-After with the same Idempotency-Key;"
    )
    _say("  · the cancellation went out first in the queue, by each platform's correction plan")
    _say("    (docs/corrections.md), as listed below;")
    _say("  · the drill reached the drill console and no public account.")
    _say("Next: README.md (the API, the config), `alertcast serve --config config/example.toml`.")
