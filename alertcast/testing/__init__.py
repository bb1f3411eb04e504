"""Helpers for testing alertcast and rehearsing a configuration: fake platforms and sinks.

``alertcast.testing.fakes`` holds faithful fakes of Weibo, WeChat Official Accounts and the WeCom,
DingTalk and Feishu robots, each an aiohttp app that :func:`alertcast.testing.fakes.serve` runs on
127.0.0.1 on a free port.
"""
