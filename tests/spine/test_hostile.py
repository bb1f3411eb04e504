"""Hostile input through the running app's HTTP API, on SQLite and PostgreSQL alike: every
refusal a 4xx problem naming the field, and the store unchanged (issue 10, finding 11).

Requests go over a raw socket, byte for byte, so that headers which are not UTF-8 and paths
with ``%00`` reach the server exactly as an attacker would send them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import EARTHQUAKE, TOKEN, Daemon, incident
from tests.store.test_contract import PG_URL, _drop_schema, _pg_reachable

FEEDS = [{"name": "pushed", "type": "usgs", "min_magnitude": 5.0, "max_age_s": None}]


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    target: str  # "{id}" stands for an incident raised (and settled) before the snapshot
    status: int
    field: str  # the field the problem's errors must name
    body: bytes = b""
    ctype: bytes = b"application/json"
    headers: tuple[tuple[bytes, bytes], ...] = ()
    token: bool = True


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


def _quake(**details: Any) -> bytes:
    return _json(incident(details={**EARTHQUAKE["details"], **details}))


def _fire(**details: Any) -> bytes:
    area = {"name": "成都市锦江区", "codes": ["510104"]}
    return _json(incident(kind="fire", area=area, details={"address": "春熙路", **details}))


def _nested(levels: int) -> bytes:
    return b'{"headline": ' + b'{"a": ' * levels + b"1" + b"}" * levels + b"}"


CAP = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>hostile-1</identifier><sender>office@example.org</sender>
  <sent>2022-09-05T12:52:18+08:00</sent><status>Actual</status><msgType>Alert</msgType>
  <scope>Public</scope>
  <info><category>Fire</category><event>Forest fire</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Observed</certainty><onset>{onset}</onset>
    <headline>Forest fire near the ridge</headline>
    <area><areaDesc>Ridge</areaDesc>{shape}</area></info>
</alert>"""


def _cap(shape: str = "", onset: str = "2022-09-05T12:52:18+08:00") -> bytes:
    return CAP.format(shape=shape, onset=onset).encode()


def _post(name: str, body: bytes, status: int, where: str, **kw: Any) -> Case:
    return Case(name, "POST", "/v1/incidents", status, where, body, **kw)


BODIES = [
    _post("arrays 100,000 deep", b"[" * 100_000 + b"]" * 100_000, 400, "(body)"),
    _post("objects 40 deep in a field", _nested(40), 400, "(body)"),
    _post("NaN magnitude", _quake(magnitude=float("nan")), 400, "(body)"),
    _post("Infinity depth", _quake(depth_km=float("inf")), 400, "(body)"),
    _post("body not UTF-8", b'{"headline": "\xff\xfe"}', 400, "(body)"),
    _post("NUL in headline", _json(incident(headline="地震\u0000")), 422, "headline"),
    _post("NUL in a place", _quake(place="泸定\u0000县"), 422, "details.place"),
    _post(
        "NUL in a list item",
        _json(incident(kind="fire", details={"address": "x", "avoid": ["春熙路", "\u0000"]})),
        422,
        "details.avoid.1",
    ),
    _post("NUL in a key", _quake(**{"pla\u0000ce": "x"}), 422, "details"),
]
TIMES = [
    _post("occurred_at 0", _json(incident(occurred_at=0)), 422, "occurred_at"),
    _post("occurred_at 1.5", _json(incident(occurred_at=1.5)), 422, "occurred_at"),
    _post(
        "occurred_at epoch.5 text", _json(incident(occurred_at="1662353538.5")), 422, "occurred_at"
    ),
    _post("occurred_at epoch text", _json(incident(occurred_at="1662353538")), 422, "occurred_at"),
    _post(
        "occurred_at year 9999, offset -23:59",
        _json(incident(occurred_at="9999-12-31T23:59:59-23:59")),
        422,
        "occurred_at",
    ),
    _post(
        "occurred_at year 1, offset +14:00",
        _json(incident(occurred_at="0001-01-01T00:00:00+14:00")),
        422,
        "occurred_at",
    ),
    _post(
        "expires_at year 9999",
        _json(incident(expires_at="9999-12-31T23:59:59Z")),
        422,
        "expires_at",
    ),
]
NUMBERS = [
    _post("magnitude false", _quake(magnitude=False), 422, "details.magnitude"),
    _post("magnitude text", _quake(magnitude="6.8"), 422, "details.magnitude"),
    _post("depth true", _quake(depth_km=True), 422, "details.depth_km"),
    _post("latitude text", _quake(latitude="29.59"), 422, "details.latitude"),
    _post("fire level true", _fire(level=True), 422, "details.level"),
    _post("fire level text", _fire(level="3"), 422, "details.level"),
    _post("fire level 3.0", _fire(level=3.0), 422, "details.level"),
    _post("evacuate 1", _fire(evacuate=1), 422, "details.evacuate"),
    _post("evacuate text", _fire(evacuate="yes"), 422, "details.evacuate"),
    _post(
        "radius true",
        _json(
            incident(
                area={
                    "name": "泸定县",
                    "circle": {"latitude": 1, "longitude": 2, "radius_km": True},
                }
            )
        ),
        422,
        "area.circle.radius_km",
    ),
    _post(
        "polygon point true",
        _json(incident(area={"name": "泸定县", "polygon": [[True, 1], [2, 2], [3, 1]]})),
        422,
        "area.polygon.0.0",
    ),
]
XML = b"application/cap+xml"
CAPS = [
    _post(
        "CAP polygon not numbers",
        _cap("<polygon>a,b c,d e,f a,b</polygon>"),
        422,
        "info.area.polygon",
        ctype=XML,
    ),
    _post(
        "CAP polygon 1.2.3",
        _cap("<polygon>1.2.3,4 5,6 7,8 1.2.3,4</polygon>"),
        422,
        "info.area.polygon",
        ctype=XML,
    ),
    _post(
        "CAP circle not numbers", _cap("<circle>a,b 5</circle>"), 422, "info.area.circle", ctype=XML
    ),
    _post(
        "CAP onset year 9999",
        _cap(onset="9999-12-31T23:59:59-23:59"),
        422,
        "occurred_at",
        ctype=XML,
    ),
    _post("CAP onset a number", _cap(onset="1662353538"), 422, "occurred_at", ctype=XML),
]
HEADERS = [
    _post(
        "Idempotency-Key not UTF-8",
        _json(incident()),
        400,
        "Idempotency-Key",
        headers=((b"Idempotency-Key", b"k-\xff\xfe"),),
    ),
    _post(
        "Idempotency-Key 201 characters",
        _json(incident()),
        400,
        "Idempotency-Key",
        headers=((b"Idempotency-Key", b"k" * 201),),
    ),
    _post(
        "Authorization not UTF-8",
        _json(incident()),
        400,
        "Authorization",
        headers=((b"Authorization", b"Bearer \xff\xfe"),),
        token=False,
    ),
    _post(
        "Content-Type charset not UTF-8",
        _json(incident()),
        400,
        "Content-Type",
        ctype=b"application/json; charset=\xff",
    ),
]
PATHS = [
    Case("public page /p/%00, no token", "GET", "/p/%00", 400, "id", token=False),
    Case("incident %00", "GET", "/v1/incidents/%00", 400, "id"),
    Case("delivery %00", "GET", "/v1/deliveries/%00", 400, "id"),
    Case("cancel %00", "POST", "/v1/incidents/%00/cancel", 400, "id", _json({"reason": "x"})),
    Case("update %00", "POST", "/v1/incidents/%00/update", 400, "id", _json({"headline": "x"})),
    Case("approve %00", "POST", "/v1/incidents/%00/approve", 400, "id"),
    Case("retry %00", "POST", "/v1/deliveries/%00/retry", 400, "id"),
    Case("resume %00", "POST", "/v1/channels/%00/resume", 400, "id"),
    Case("kind=%00", "GET", "/v1/incidents?kind=%00", 400, "kind"),
    Case("account=%00", "GET", "/v1/deliveries?account=%00", 400, "account"),
    Case("a NUL parameter name", "GET", "/v1/incidents?%00=1", 400, "(query)"),
    Case("limit of 5,000 digits", "GET", "/v1/incidents?limit=" + "1" * 5000, 400, "limit"),
    Case("stream incident_id=%00", "GET", "/v1/stream?incident_id=%00", 400, "incident_id"),
    Case("WeChat signature=%00", "GET", "/wechat/x?signature=%00", 400, "signature", token=False),
    Case("health x=%00", "GET", "/healthz?x=%00", 400, "x", token=False),
]
UPDATE, CANCEL = "/v1/incidents/{id}/update", "/v1/incidents/{id}/cancel"
FOLLOW_UPS = [
    Case("update occurred_at 0", "POST", UPDATE, 422, "occurred_at", _json({"occurred_at": 0})),
    Case(
        "update magnitude false",
        "POST",
        UPDATE,
        422,
        "details.magnitude",
        _json({"details": {"magnitude": False}}),
    ),
    Case("update NUL headline", "POST", UPDATE, 422, "headline", _json({"headline": "\u0000"})),
    Case("update 40 deep", "POST", UPDATE, 400, "(body)", _nested(40)),
    Case("cancel NUL reason", "POST", CANCEL, 422, "reason", _json({"reason": "误报\u0000"})),
    Case("cancel reason 5", "POST", CANCEL, 422, "reason", _json({"reason": 5})),
    Case(
        "render magnitude false",
        "POST",
        "/v1/render",
        422,
        "details.magnitude",
        _quake(magnitude=False),
    ),
    Case(
        "feed push 40 deep",
        "POST",
        "/v1/feeds/pushed/events",
        400,
        "(body)",
        b'{"type": "Feature", "properties": ' + _nested(40) + b"}",
    ),
    Case(
        "feed push NUL place",
        "POST",
        "/v1/feeds/pushed/events",
        422,
        "properties.place",
        _json({"type": "Feature", "properties": {"place": "\u0000"}}),
    ),
    Case(
        "feed push lone surrogate",
        "POST",
        "/v1/feeds/pushed/events",
        422,
        "properties.place",
        _json({"type": "Feature", "properties": {"place": "\ud800"}}),
    ),
]
CASES = BODIES + TIMES + NUMBERS + CAPS + HEADERS + PATHS + FOLLOW_UPS


@dataclass
class Hostile:
    daemon: Daemon
    counts: Callable[[], Awaitable[dict[str, int]]]
    seeded: str = field(default="")

    async def send(self, case: Case) -> tuple[int, bytes, bytes]:
        """Send ``case`` byte for byte; return the status, the content type and the body."""
        port = self.daemon.client.server.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_raw(case, self.seeded))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        ctype = next(
            (
                v.strip()
                for k, _, v in (h.partition(b":") for h in lines[1:])
                if k.lower() == b"content-type"
            ),
            b"",
        )
        return int(lines[0].split()[1]), ctype.split(b";")[0], body


def _raw(case: Case, incident_id: str) -> bytes:
    target = case.target.replace("{id}", incident_id).encode()
    lines = [b"%s %s HTTP/1.1" % (case.method.encode(), target), b"Host: 127.0.0.1"]
    lines.append(b"Connection: close")
    if case.token:
        lines.append(b"Authorization: Bearer " + TOKEN.encode())
    if case.body or case.method == "POST":
        lines += [b"Content-Type: " + case.ctype, b"Content-Length: %d" % len(case.body)]
    lines += [name + b": " + value for name, value in case.headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + case.body


async def _pg_counts(schema: str) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(PG_URL)
    try:
        names = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 "
            "AND table_name <> 'schema_migrations'",
            schema,
        )
        return {
            r[0]: await conn.fetchval(f'SELECT COUNT(*) FROM "{schema}"."{r[0]}"') for r in names
        }
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """None for SQLite, else a fresh PostgreSQL schema (dropped after the daemon closes)."""
    if request.param == "sqlite":
        yield None
        return
    if (why := await _pg_reachable()) is not None:
        pytest.skip(why)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield schema
    await _drop_schema(schema)


@pytest.fixture
async def hostile(engine: str | None, start_daemon: Any) -> Hostile:
    extra: dict[str, Any] = {"feeds": FEEDS, "approval": {"severities": []}}
    if engine is not None:
        extra["store"] = {"url": f"{PG_URL}?schema={engine}"}
    d: Daemon = await start_daemon(**extra)

    async def counts() -> dict[str, int]:
        return d.table_counts() if engine is None else await _pg_counts(engine)

    return Hostile(d, counts)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_hostile_input_is_a_4xx_naming_the_field(hostile: Hostile, case: Case) -> None:
    """Each hostile request is refused with its status, names the field, and stores nothing."""
    if "{id}" in case.target:
        answer = await (await hostile.daemon.post(incident())).json()
        hostile.seeded = answer["id"]
        await hostile.daemon.settled(answer["id"])
    before = await hostile.counts()
    status, ctype, body = await hostile.send(case)
    assert status == case.status, body[:500]
    assert ctype == b"application/problem+json", body[:500]
    problem = json.loads(body)
    assert problem["status"] == status
    assert case.field in [e["field"] for e in problem.get("errors") or []], problem
    assert await hostile.counts() == before


@pytest.mark.parametrize(
    "occurred_at",
    ["2022-09-05T12:52:18+08:00", "2022-09-05T04:52:18Z", "2022-09-05 12:52:18.5+0800"],
)
async def test_times_the_contract_accepts_still_pass(hostile: Hostile, occurred_at: str) -> None:
    """ISO 8601 with an offset (Z, +08:00, +0800, a space, fractions) is still accepted."""
    resp = await hostile.daemon.post(incident(occurred_at=occurred_at))
    assert resp.status == 202, await resp.text()


async def test_whole_numbers_are_still_numbers(hostile: Hostile) -> None:
    """A depth of 16 (an integer in JSON) is accepted where a number is meant."""
    resp = await hostile.daemon.post(incident(details={**EARTHQUAKE["details"], "depth_km": 16}))
    assert resp.status == 202, await resp.text()
