"""Feed texts end to end: real USGS features and CENC lists polled by a real daemon, rendered for
Chinese and English accounts in every kind of format, read back from the stored payloads.

``cenc_maduo.json``: the Maduo M7.4 of 2021-05-22 02:04:11 Beijing time (2021-05-21 18:04 UTC),
official row as CENC published it (青海果洛州玛多县, 34.59°N 98.34°E, 17 km); the automatic row is
shaped like CENC's automatic lists, its place ending in 附近 (as automatic places may) so a
doubled 附近 would show. ``cenc_google.json``: the Lushan M5.9 automatic / M7.0 official of 2013.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from alertcast.feeds.runner import FeedRunner
from alertcast.keys import FEEDS, PLANNER, STORE
from alertcast.latest import Latest
from tests.conftest import Daemon

from ._make import cenc_bytes
from .feed_server import FeedServer, collection, server_fixture, until  # noqa: F401
from .test_daemon_feeds import OFFICIAL as USGS_OFFICIAL
from .test_daemon_feeds import herat, incidents

MS = 1000
MADUO_AUTO, MADUO = json.loads(cenc_bytes("cenc_maduo.json"))
LUSHAN_AUTO, LUSHAN = json.loads(cenc_bytes("cenc_google.json"))
ACCOUNTS = [
    {"id": "zh-weibo", "channel": "console", "format": "weibo"},
    {"id": "zh-article", "channel": "console", "format": "wechat_article"},
    {"id": "zh-template", "channel": "console", "format": "wechat_template"},
    {"id": "zh-sms", "channel": "console", "format": "sms"},
    {"id": "en-text", "channel": "console", "format": "text", "language": "en"},
    {"id": "en-template", "channel": "console", "format": "wechat_template", "language": "en"},
]
NORTH = re.compile(r"北纬(\d+(?:\.\d+)?)度")


def rows(*entries: dict[str, Any]) -> bytes:
    return json.dumps(list(entries), ensure_ascii=False).encode()


@pytest.fixture(name="cenc")
async def cenc_fixture(aiohttp_server: Any) -> FeedServer:
    """A local host serving CENC lists."""
    feed = FeedServer()
    running = await aiohttp_server(feed.app())
    feed.url = str(running.make_url("")).rstrip("/")
    return feed


async def start(start_daemon: Any, feed: dict[str, Any], **extra: Any) -> tuple[Daemon, FeedRunner]:
    """A daemon with the six accounts and one feed; returns once the feed has polled once."""
    common = {"interval_s": 3600, "timeout_s": 30, "min_magnitude": 5.0, "max_age_s": None}
    extra.setdefault("approval", {"severities": []})
    d = await start_daemon(feeds=[common | feed], accounts=ACCOUNTS, **extra)
    runner = d.client.app[FEEDS]
    polled = runner.feeds[feed["name"]]
    await until(lambda: polled.poller.health.polls >= 1 and not polled.poll_lock.locked())
    return d, runner


def cenc_feed(cenc: FeedServer, **keys: Any) -> dict[str, Any]:
    return {"name": "cenc", "type": "cenc", "url": f"{cenc.url}/ajax/google", **keys}


def usgs_feed(server: FeedServer) -> dict[str, Any]:
    return {"name": "usgs", "type": "usgs", "url": server.feed_url()}


async def payloads(d: Daemon, message_id: str) -> dict[str, dict[str, Any]]:
    """Every account's rendered payload of one message, once its deliveries are settled."""
    view = await d.settled(message_id)
    return {x["account"]: x["payload"] for x in view["deliveries"]}


def keywords(payload: dict[str, Any]) -> dict[str, str]:
    return {k: v["value"] for k, v in payload["template_data"].items()}


def texts(p: dict[str, dict[str, Any]]) -> list[str]:
    """Every public text of a message: posts, titles, digests, articles, keywords."""
    out = [p["zh-weibo"]["text"], p["zh-sms"]["text"], p["en-text"]["text"]]
    article = p["zh-article"]
    out += [article["title"], article["digest"], article["content_html"], article["text"]]
    return out + list(keywords(p["zh-template"]).values())


def one_rounding(text: str) -> None:
    """Every latitude in ``text`` is stated once, to CENC's two decimals."""
    found = NORTH.findall(text)
    assert len(found) == 1 and re.fullmatch(r"\d+\.\d\d", found[0]), text


async def test_cenc_automatic_then_official(
    start_daemon: Any, cenc: FeedServer, server: FeedServer
) -> None:
    """Maduo: the automatic report, then the official one, in every format and both languages:
    one bulletin, one rounding, no doubled 附近, the marker everywhere, Beijing time."""
    cenc.serve(rows(MADUO_AUTO))
    d, runner = await start(start_daemon, cenc_feed(cenc))
    (alert,) = await incidents(d)
    auto = await payloads(d, alert["id"])
    weibo = auto["zh-weibo"]["text"]
    assert weibo.startswith(
        "中国地震台网自动测定：05月22日02时04分在青海果洛州玛多县附近（北纬34.65度，东经98.39度）"
        "发生7.3级左右地震，最终结果以正式速报为准。"
    )
    for text in texts(auto):
        assert "附近附近" not in text and "05月21日" not in text
    for text in (weibo, auto["zh-sms"]["text"], auto["zh-article"]["content_html"]):
        one_rounding(text)
        assert text.count("最终结果以正式速报为准") == 1  # one bulletin
    assert weibo.count("自动测定") == auto["zh-sms"]["text"].count("自动测定") == 1
    assert auto["zh-article"]["title"] == "青海果洛州玛多县附近7.3级地震（自动测定）"  # compact
    assert keywords(auto["zh-template"])["keyword1"] == "地震·自动测定"
    assert keywords(auto["zh-template"])["keyword4"] == "7.3级左右"
    # The English account reads the English place (the geocoder's), never CENC's Chinese.
    assert re.match(r"M7\.3 earthquake – [ -~]+, China \(automatic\)\n", auto["en-text"]["text"])
    assert "2021-05-22 02:04 UTC+08:00" in auto["en-text"]["text"]
    assert keywords(auto["en-template"])["keyword1"] == "Quake, automatic"

    cenc.serve(rows(MADUO_AUTO, MADUO))
    await runner.poll_now("cenc")
    update = (await incidents(d))[1]
    assert (update["msg_type"], update["references"]) == ("update", alert["id"])
    official = await payloads(d, update["id"])
    assert official["zh-weibo"]["text"].startswith(
        "【更新】中国地震台网正式测定：05月22日02时04分在青海果洛州玛多县（北纬34.59度，东经98.34度）"
        "发生7.4级地震，震源深度17千米。"
    )
    for text in texts(official):
        assert "自动测定" not in text and "附近" not in text
    title = official["zh-article"]["title"]
    assert len(title.encode()) <= 64 and title.startswith("【更新】")
    assert title.endswith("…7.4级地震（正式测定）")  # the place gave way, not the facts
    template = keywords(official["zh-template"])
    assert (template["keyword1"], template["keyword4"]) == (
        "【更新】地震·正式测定",
        "7.4级，震源深度17千米",
    )
    assert keywords(official["en-template"])["keyword4"] == "M7.4, depth 17 km"


async def test_usgs_findings_in_chinese_and_english(start_daemon: Any, server: FeedServer) -> None:
    """Herat (real USGS feature): USGS's automatic and reviewed findings are USGS's own words
    in Chinese (美国地质调查局自动测定 / 美国地质调查局测定), never CENC's 正式测定."""
    server.serve(collection(herat()))
    d, runner = await start(start_daemon, usgs_feed(server))
    (alert,) = await incidents(d)
    auto = await payloads(d, alert["id"])
    assert auto["zh-weibo"]["text"].startswith("美国地质调查局自动测定：10月07日15时40分在")
    assert "（北纬34.64度，东经62.03度）发生5.9级左右地震" in auto["zh-weibo"]["text"]
    title = auto["zh-article"]["title"]  # compact: the place in Chinese, the facts stay
    assert title == "阿富汗5.9级地震（美国地质调查局自动测定）"
    assert len(title.encode()) <= 64
    assert keywords(auto["zh-template"])["keyword1"] == "地震·美国地质调查局自动测定"
    assert "2023-10-07 07:40 UTC" in auto["en-text"]["text"]
    assert "Automatic USGS report; the reviewed report will follow." in auto["en-text"]["text"]

    t = herat()["properties"]["time"]
    server.serve(collection(herat(**USGS_OFFICIAL, updated=t + 30 * 60 * MS)))
    await runner.poll_now("usgs")
    update = (await incidents(d))[1]
    reviewed = await payloads(d, update["id"])
    for text in texts(reviewed):
        assert "正式测定" not in text and "自动测定" not in text
    assert reviewed["zh-weibo"]["text"].startswith("【更新】美国地质调查局测定：10月07日15时40分在")
    assert reviewed["zh-article"]["title"].endswith("7.0级地震（美国地质调查局测定）")
    assert "(reviewed)" in reviewed["en-text"]["text"]
    assert "Reviewed USGS report." in reviewed["en-text"]["text"]


async def test_official_report_never_waits_for_approval(
    start_daemon: Any, cenc: FeedServer, server: FeedServer
) -> None:
    """Lushan: the automatic M5.9 goes out under [approval]; the official M7.0 (extreme, an
    approval severity) corrects it at once: the network's review is the first person."""
    cenc.serve(rows(LUSHAN_AUTO))
    d, runner = await start(start_daemon, cenc_feed(cenc), approval={"severities": ["extreme"]})
    (alert,) = await incidents(d)
    assert alert["state"] != "awaiting_approval"
    await d.settled(alert["id"])
    cenc.serve(rows(LUSHAN_AUTO, LUSHAN))
    await runner.poll_now("cenc")
    update = (await incidents(d))[1]
    assert update["msg_type"] == "update" and update["severity"] == "extreme"
    view = await d.settled(update["id"])
    assert view["state"] != "awaiting_approval"
    assert {x["state"] for x in view["deliveries"]} == {"delivered"}


async def test_a_feed_may_opt_in_to_approval(
    start_daemon: Any, cenc: FeedServer, server: FeedServer
) -> None:
    """``approval = "always"`` on the feed: even its automatic M5.9 waits for a second person."""
    cenc.serve(rows(LUSHAN_AUTO))
    d, _ = await start(start_daemon, cenc_feed(cenc, approval="always"))
    (alert,) = await incidents(d)
    assert alert["state"] == "awaiting_approval"


async def test_an_expired_quake_is_active_nowhere(
    start_daemon: Any, cenc: FeedServer, server: FeedServer
) -> None:
    """The 2021 quake is past its 24 h: the API says expired (and lists it under no active),
    the public page says so first, the keyword reply leaves it out."""
    cenc.serve(rows(MADUO))
    d, _ = await start(start_daemon, cenc_feed(cenc))
    (alert,) = await incidents(d)
    _, view = await d.get(f"/v1/incidents/{alert['id']}")
    assert (view["state"], view["expires_at"]) == ("expired", "2021-05-23T02:04:11+08:00")
    _, active = await d.get("/v1/incidents?state=active")
    assert active["incidents"] == []
    page = await (await d.client.get(f"/p/{alert['id']}")).text()
    assert "已过有效期：2021年05月23日02时04分（北京时间）" in page
    latest = Latest(d.client.app[STORE], d.client.app[PLANNER].regions, d.config.expiry)
    assert await latest("earthquake", [], 5) == []


async def test_expiry_is_configurable_per_kind(
    start_daemon: Any, cenc: FeedServer, server: FeedServer
) -> None:
    """``[expiry] earthquake_h`` unset: the quake stays in force until cancelled."""
    cenc.serve(rows(MADUO))
    d, _ = await start(start_daemon, cenc_feed(cenc), expiry={"earthquake_h": None})
    (alert,) = await incidents(d)
    _, view = await d.get(f"/v1/incidents/{alert['id']}")
    assert (view["state"], view["expires_at"]) == ("active", None)
    latest = Latest(d.client.app[STORE], d.client.app[PLANNER].regions, d.config.expiry)
    assert [x["id"] for x in await latest("earthquake", [], 5)] == [alert["id"]]


async def test_the_public_page_names_fields_for_the_public(
    start_daemon: Any, cenc: FeedServer, server: FeedServer
) -> None:
    """The page speaks Chinese: labels, units, hemispheres, the report; no JSON key shows."""
    cenc.serve(rows(MADUO))
    d, _ = await start(start_daemon, cenc_feed(cenc), expiry={"earthquake_h": None})
    (alert,) = await incidents(d)
    page = await (await d.client.get(f"/p/{alert['id']}")).text()
    for shown in ("<dt>震级</dt><dd>7.4级</dd>", "<dd>17 千米</dd>", "<dd>北纬34.59度</dd>"):
        assert shown in page
    assert "<dd>正式测定</dd>" in page and "2021年05月22日02时04分（北京时间）" in page
    for key in ("magnitude", "depth_km", "latitude", "report", "event_id", "已过有效期"):
        assert key not in page
