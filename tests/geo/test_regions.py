"""Region codes validated by path, and downward routing for accounts that opt in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alertcast.checks import load_checked
from alertcast.config import AccountConfig, ConfigError
from alertcast.models import parse_incident
from alertcast.regions import Hierarchy
from alertcast.routing import route
from tests.conftest import TOKEN, DaemonFactory

CONFIG = """
[[accounts]]
id = "sichuan"
channel = "console"
regions = ["510000"]
[[accounts]]
id = "yaan"
channel = "console"
regions = ["511800", "WORLD"]
[[accounts]]
id = "bad"
channel = "console"
regions = ["511826", "{code}"]
[regions]
known = {known}
"""


@pytest.mark.parametrize("code", ["5118", "51", "511826x", "999999", "010000"])
def test_check_config_names_a_bad_code_by_path(tmp_path: Path, code: str) -> None:
    """A malformed or unknown GB/T 2260 code is refused at accounts[2].regions[1]."""
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(code=code, known="[]"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_checked(path)
    problems = dict(caught.value.problems)
    assert list(problems) == ["accounts[2].regions[1]"]
    assert code in problems["accounts[2].regions[1]"]


def test_a_code_newer_than_the_data_is_accepted_when_listed_as_known(tmp_path: Path) -> None:
    """``[regions] known`` admits a division the bundled data lacks."""
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(code="999999", known='["999999"]'), encoding="utf-8")
    assert load_checked(path).accounts[2].regions == ["511826", "999999"]


def quake(*codes: str) -> Any:
    return parse_incident(
        {
            "kind": "earthquake",
            "severity": "severe",
            "headline": "地震",
            "area": {"name": "成都市", "codes": list(codes)},
            "occurred_at": "2022-09-05T12:52:18+08:00",
            "details": {
                "magnitude": 6.8,
                "depth_km": 16,
                "latitude": 29.59,
                "longitude": 102.08,
                "place": "四川甘孜州泸定县",
                "report": "official",
                "source": "cenc",
                "event_id": "x",
            },
        }
    )


@pytest.mark.parametrize(
    ("incident_codes", "downward", "chosen"),
    [
        (["510100"], False, False),  # a city-wide alert, a district account that did not opt in
        (["510100"], True, True),  # ... that opted in
        (["510107"], False, True),  # the district's own alert, as before
        (["510000"], True, True),  # a province-wide alert reaches it too
        (["511800"], True, False),  # another city's alert never does
    ],
)
def test_downward_routing_is_opt_in(
    incident_codes: list[str], downward: bool, chosen: bool
) -> None:
    """A district account takes a wider alert covering it only with ``downward = true``."""
    account = AccountConfig(id="wuhou", channel="console", regions=["510107"], downward=downward)
    (decision,) = route(quake(*incident_codes), [account], Hierarchy())
    assert decision.chosen is chosen


@pytest.mark.parametrize("code", ["5118", "51", "511826x"])
async def test_the_api_refuses_a_malformed_code_naming_the_field(
    start_daemon: DaemonFactory, code: str
) -> None:
    """``POST /v1/incidents`` answers 422 naming the field (``area.codes.1``); nothing stored."""
    d = await start_daemon()
    body = {
        "kind": "general",
        "headline": "通知",
        "area": {"name": "雅安市", "codes": ["511800", code]},
        "occurred_at": "2022-09-05T12:52:18+08:00",
    }
    response = await d.post(body)
    assert response.status == 422
    problem = await response.json()
    assert [e["field"] for e in problem["errors"]] == ["area.codes.1"]
    assert "GB/T 2260" in problem["errors"][0]["message"]
    status, listed = await d.get("/v1/incidents")
    assert status == 200
    assert listed["incidents"] == []


async def test_the_api_refuses_a_code_the_data_does_not_know(start_daemon: DaemonFactory) -> None:
    """A well-formed code no division has (``519999``) is refused by the raise and by an
    update that moves the area there, naming the field; ``[regions] known`` admits it."""
    d = await start_daemon()
    body = {
        "kind": "general",
        "headline": "通知",
        "area": {"name": "雅安市", "codes": ["511800", "519999"]},
        "occurred_at": "2022-09-05T12:52:18+08:00",
    }
    response = await d.post(body)
    assert response.status == 422
    problem = await response.json()
    assert [e["field"] for e in problem["errors"]] == ["area.codes.1"]
    assert "[regions] known" in problem["errors"][0]["message"]
    first = await (await d.post({**body, "area": {"name": "雅安市", "codes": ["511800"]}})).json()
    moved = await d.client.post(
        f"/v1/incidents/{first['id']}/update",
        json={"area": {"name": "别处", "codes": ["519999"]}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert moved.status == 422, await moved.text()
    assert [e["field"] for e in (await moved.json())["errors"]] == ["area.codes.0"]


async def test_regions_known_admits_a_newer_code(start_daemon: DaemonFactory) -> None:
    d = await start_daemon(regions={"known": ["519999"]})
    body = {
        "kind": "general",
        "headline": "通知",
        "area": {"name": "新区", "codes": ["519999"]},
        "occurred_at": "2022-09-05T12:52:18+08:00",
    }
    assert (await d.post(body)).status == 202
