"""``python -m alertcast.testing.fakes``: run every fake on 127.0.0.1 for a rehearsal.

Prints each fake's base URL and the credentials it accepts, as environment variables and
``[[accounts]]`` lines to paste into a rehearsal configuration; runs until interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from contextlib import AsyncExitStack

from alertcast.testing.fakes import (
    FakeDingtalk,
    FakeFeishu,
    FakePlatform,
    FakeWechat,
    FakeWecom,
    FakeWeibo,
    RobotSecurity,
    serve,
)

CREDENTIALS = {
    "REHEARSAL_WEIBO_TOKEN": "weibo-token",
    "REHEARSAL_WEIBO_GANZI_TOKEN": "weibo-token-ganzi",  # a prefecture account: its own user
    "REHEARSAL_WECHAT_SECRET": "wx-secret",
    "REHEARSAL_WECOM_KEY": "wecom-key",
    "REHEARSAL_DINGTALK_TOKEN": "ding-token",
    "REHEARSAL_DINGTALK_SECRET": "SECding",
    "REHEARSAL_FEISHU_HOOK": "feishu-hook",
    "REHEARSAL_FEISHU_SECRET": "feishu-secret",
}
ACCOUNTS: dict[str, dict[str, str]] = {
    "weibo": {
        "channel": "weibo",
        "access_token_env": "REHEARSAL_WEIBO_TOKEN",
        "safe_domain_url": "https://alerts.example.gov.cn/",
    },
    "wechat": {
        "channel": "wechat_oa",
        "app_id": "wx-app",
        "app_secret_env": "REHEARSAL_WECHAT_SECRET",
    },
    "wecom": {"channel": "wecom_robot", "key_env": "REHEARSAL_WECOM_KEY"},
    "dingtalk": {
        "channel": "dingtalk_robot",
        "key_env": "REHEARSAL_DINGTALK_TOKEN",
        "secret_env": "REHEARSAL_DINGTALK_SECRET",
    },
    "feishu": {
        "channel": "feishu_robot",
        "key_env": "REHEARSAL_FEISHU_HOOK",
        "secret_env": "REHEARSAL_FEISHU_SECRET",
    },
}


def account_toml(name: str, base_url: str) -> str:
    """One ``[[accounts]]`` table pointing at the fake."""
    keys = {"id": f"rehearsal-{name}", **ACCOUNTS[name], "base_url": base_url}
    return "[[accounts]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())


def fakes() -> dict[str, FakePlatform]:
    return {
        "weibo": FakeWeibo({"weibo-token": 1001, "weibo-token-ganzi": 1002}),
        "wechat": FakeWechat({"wx-app": "wx-secret"}),
        "wecom": FakeWecom({"wecom-key"}),
        "dingtalk": FakeDingtalk({"ding-token": RobotSecurity(secret="SECding")}),
        "feishu": FakeFeishu({"feishu-hook": RobotSecurity(secret="feishu-secret")}),
    }


async def main() -> None:
    async with AsyncExitStack() as stack:
        for name, fake in fakes().items():
            url = await stack.enter_async_context(serve(fake))
            print(account_toml(name, url))
        print("# environment:")
        for variable, value in CREDENTIALS.items():
            print(f"export {variable}={value}")
        print("\n# fakes running; Ctrl-C stops them", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
