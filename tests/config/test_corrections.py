"""check-config refuses what cannot carry a correction to everyone who saw the original."""

from __future__ import annotations

from typing import Any

import pytest

from alertcast.checks import Reach, correction_problems, weibo_problems
from alertcast.config import Config

PUBLIC_URL = "https://alerts.example.gov.cn"
SUB: dict[str, Any] = {
    "id": "wx",
    "channel": "wechat_oa",
    "app_id": "wx-app",
    "app_secret_env": "T_WX",
    "mode": "text",
    "format": "text",
    "regions": ["510000"],
}
SERVICE: dict[str, Any] = {
    "id": "wx-service",
    "channel": "wechat_oa",
    "app_id": "wx-service",
    "app_secret_env": "T_WXS",
    "account_type": "service",
    "mode": "template",
    "format": "wechat_template",
    "template_id": "TPL-ALERT",
    "template_audience": "followers",
    "regions": ["510000"],
}
ROBOT: dict[str, Any] = {"id": "robot", "channel": "wecom_robot", "key_env": "T_KEY"}
PAIRS_ONLY = {"name": "pairs-only", "exclude": ["wx-service"]}
PAIRED = {**SUB, "corrections_via": ["wx-service"]}
WEIBO: dict[str, Any] = {
    "id": "wb",
    "channel": "weibo",
    "access_token_env": "T_WB",
    "safe_domain_url": "https://alerts.example.gov.cn/",
}


def _config(
    *accounts: dict[str, Any], routes: tuple[dict[str, Any], ...] = (), **extra: Any
) -> Config:
    server = {"public_url": extra.pop("public_url", PUBLIC_URL)}
    return Config(server=server, accounts=list(accounts), routes=list(routes), **extra)


def _problems(config: Config) -> dict[str, str]:
    return dict(correction_problems(config) + weibo_problems(config))


NO_PATH = "accounts[0] (wx)"
VIA = "accounts[0].corrections_via[0] (wx)"
FALLBACK = "accounts[0].fallback[0] (wx)"


@pytest.mark.parametrize(
    ("accounts", "routes", "refused"),
    [
        pytest.param([SUB], (), {NO_PATH: "one mass send a day"}, id="subscription-alone"),
        pytest.param([PAIRED, SERVICE], (PAIRS_ONLY,), {}, id="paired-service"),
        pytest.param(
            [{**SUB, "fallback": ["wx-service"]}, SERVICE], (PAIRS_ONLY,), {}, id="fallback-path"
        ),
        pytest.param(
            [{**SUB, "fallback": ["robot"]}, ROBOT],
            (),
            {FALLBACK: "robot already gets every incident wx gets", NO_PATH: "none of robot"},
            id="fallback-copy",
        ),
        pytest.param([{**SUB, "exercise": True}], (), {}, id="exercise-subscription"),
        pytest.param([{**SUB, "enabled": False}], (), {}, id="disabled-subscription"),
        pytest.param([{**SUB, "account_type": "service"}], (), {}, id="service-alone"),
        pytest.param(
            [{**SUB, "corrections_via": ["wx"]}],
            (),
            {VIA: "names wx itself", NO_PATH: "corrections_via"},
            id="via-itself",
        ),
        pytest.param(
            [PAIRED, {**SERVICE, "enabled": False}],
            (PAIRS_ONLY,),
            {VIA: "wx-service is disabled", NO_PATH: "none of wx-service"},
            id="via-disabled",
        ),
        pytest.param(
            [PAIRED, {**SERVICE, "exercise": True}],
            (PAIRS_ONLY,),
            {VIA: "wx-service is an exercise account and wx is public", NO_PATH: "wx-service"},
            id="via-exercise",
        ),
        pytest.param(
            [PAIRED, SERVICE],
            (),
            {VIA: "would carry wx's corrections to no one", NO_PATH: "none of wx-service"},
            id="via-gets-the-alerts-too",
        ),
        pytest.param([PAIRED, {**SERVICE, "regions": ["510100"]}], (), {}, id="via-narrower"),
        pytest.param(
            [{**PAIRED, "regions": ["510100"]}, SERVICE],
            (),
            {VIA: "already gets every incident", NO_PATH: "none of wx-service"},
            id="via-wider",
        ),
        pytest.param(
            [PAIRED, {**SERVICE, "regions": []}],
            (),
            {VIA: "already gets every incident", NO_PATH: "none of wx-service"},
            id="via-everywhere",
        ),
        pytest.param(
            [PAIRED, {**SERVICE, "min_severity": "severe"}], (), {}, id="via-stricter-severity"
        ),
        pytest.param([PAIRED, {**SERVICE, "kinds": ["earthquake"]}], (), {}, id="via-fewer-kinds"),
        pytest.param(
            [
                PAIRED,
                {
                    **SERVICE,
                    "statuses": ["actual"],
                    "kinds": ["fire", "earthquake", "police", "weather", "general"],
                },
            ],
            (),
            {VIA: "already gets every incident", NO_PATH: "none of wx-service"},
            id="via-same-filters-spelled-out",
        ),
        pytest.param(
            [PAIRED, SERVICE],
            ({"name": "east", "regions": ["520000"], "add": ["wx"]},),
            {},
            id="route-adds-the-account-only",
        ),
        pytest.param(
            [PAIRED, SERVICE],
            ({"name": "east", "regions": ["520000"], "add": ["wx", "wx-service"]},),
            {VIA: "already gets every incident", NO_PATH: "none of wx-service"},
            id="route-adds-both",
        ),
        pytest.param(
            [PAIRED, SERVICE],
            ({"name": "quakes", "kinds": ["earthquake"], "exclude": ["wx-service"]},),
            {},
            id="route-excludes-the-carrier-for-a-kind",
        ),
        pytest.param(
            [PAIRED, SERVICE],
            (
                {"name": "out", "exclude": ["wx-service"]},
                {"name": "back", "add": ["wx-service"]},
            ),
            {VIA: "already gets every incident", NO_PATH: "none of wx-service"},
            id="route-excludes-then-adds-back",
        ),
        pytest.param(
            [{**SUB, "kinds": [], "fallback": ["robot"], "corrections_via": ["robot"]}, ROBOT],
            (),
            {},
            id="never-routed",
        ),
    ],
)
def test_correction_paths(
    accounts: list[dict[str, Any]], routes: tuple[dict[str, Any], ...], refused: dict[str, str]
) -> None:
    """Each configuration is refused at exactly these paths, each message saying why."""
    problems = _problems(_config(*accounts, routes=routes))
    assert set(problems) == set(refused), problems
    for path, says in refused.items():
        assert says in problems[path], problems[path]


def test_the_refusal_says_what_to_add() -> None:
    """A subscription account without a path is told to pair a template service account."""
    (message,) = _problems(_config(SUB)).values()
    assert 'corrections_via = ["<id>"]' in message
    assert 'account_type = "service"' in message and 'mode = "template"' in message


def test_any_account_s_fallback_that_adds_no_reach_is_refused() -> None:
    """A webhook's fallback that already takes all it takes is refused; a narrower one is not."""
    hook = {"channel": "webhook", "url": "http://127.0.0.1:9/h", "secret_env": "T_H"}
    first = {**hook, "id": "a", "regions": ["510100"], "fallback": ["b"]}
    assert list(_problems(_config(first, {**hook, "id": "b"}))) == ["accounts[0].fallback[0] (a)"]
    assert _problems(_config(first, {**hook, "id": "b", "regions": ["510104"]})) == {}


@pytest.mark.parametrize(
    ("inner", "outer", "adds"),
    [
        (["SE-AB-0180"], ["SE-AB"], False),  # the county's carrier takes the whole province
        (["SE-AB"], ["SE-AB-0180"], True),
        (["SE-AB-0180"], ["SE-CD"], True),
        (["510104"], ["510100", "520000"], False),  # any of the carrier's regions covering it
        (["510104", "520100"], ["510100"], True),  # one region the carrier does not cover
    ],
)
def test_reach_follows_the_region_hierarchy(inner: list[str], outer: list[str], adds: bool) -> None:
    """Regions nest by prefix, or by the [regions] parents table."""
    a = {**ROBOT, "id": "a", "regions": inner}
    b = {**ROBOT, "id": "b", "regions": outer}
    config = _config(a, b, regions={"parents": {"SE-AB-0180": "SE-AB"}})
    first, second = config.accounts
    assert Reach(config).adds(first, second) is adds


@pytest.mark.parametrize(
    ("public_url", "safe", "refused"),
    [
        (PUBLIC_URL, "https://alerts.example.gov.cn/", None),
        (PUBLIC_URL, "https://example.gov.cn/", None),  # a subdomain of the safe domain
        ("http://alerts.example.gov.cn:8443/alertcast", "https://alerts.example.gov.cn/", None),
        ("https://ALERTS.example.gov.cn", "https://alerts.example.gov.cn/", None),
        (PUBLIC_URL, "https://weibo-app.example.org/", "accounts[0].safe_domain_url (wb)"),
        (
            "https://badexample.gov.cn",
            "https://example.gov.cn/",
            "accounts[0].safe_domain_url (wb)",
        ),
        (
            "https://example.gov.cn",
            "https://alerts.example.gov.cn/",
            "accounts[0].safe_domain_url (wb)",
        ),
        (None, "https://alerts.example.gov.cn/", "accounts[0] (wb)"),
    ],
)
def test_weibo_safe_domain_covers_public_url(
    public_url: str | None, safe: str, refused: str | None
) -> None:
    """Same host or a subdomain of it, whatever the scheme, port, path or case; unset refused."""
    problems = _problems(_config({**WEIBO, "safe_domain_url": safe}, public_url=public_url))
    assert list(problems) == ([refused] if refused else []), problems
    if refused:
        assert "10017" in problems[refused] and "public_url" in problems[refused]


def test_a_disabled_weibo_account_needs_no_public_url() -> None:
    """Only accounts that post are checked."""
    assert _problems(_config({**WEIBO, "enabled": False}, public_url=None)) == {}
