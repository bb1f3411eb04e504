"""GET /openapi.json describes exactly the routes the app serves, with generated schemas."""

from __future__ import annotations

from typing import Any

from alertcast.openapi import OPERATIONS


async def test_openapi_matches_the_router(start_daemon: Any) -> None:
    """Every served route is documented, and every documented route is served."""
    d = await start_daemon()
    resp = await d.client.get("/openapi.json")
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    served = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert served == set(OPERATIONS)
    assert "(undocumented)" not in str(doc["paths"])


async def test_openapi_schemas_come_from_the_models(start_daemon: Any) -> None:
    """The Incident schema has every kind and the details' bounds from pydantic."""
    d = await start_daemon()
    doc = await (await d.client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    kinds = {s["$ref"].rsplit("/", 1)[1] for s in schemas["Incident"]["oneOf"]}
    assert kinds == {
        "EarthquakeIncident",
        "FireIncident",
        "PoliceIncident",
        "WeatherIncident",
        "GeneralIncident",
    }
    magnitude = schemas["EarthquakeDetails"]["properties"]["magnitude"]
    assert magnitude["maximum"] == 10 and magnitude["minimum"] == 0
    assert "DeliveryView" in schemas and "Problem" in schemas
