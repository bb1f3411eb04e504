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


async def test_every_body_header_media_type_and_edge_status_is_documented(
    start_daemon: Any,
) -> None:
    """Update has its JSON body, raising takes CAP too, changes take Idempotency-Key, and
    every /v1/ route lists what the edge answers (400, 401, 403; 413 and 422 for a POST)."""
    d = await start_daemon()
    paths = (await (await d.client.get("/openapi.json")).json())["paths"]
    update = paths["/v1/incidents/{id}/update"]["post"]
    assert update["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/IncidentPatch"
    )
    assert {"application/json", "application/cap+xml"} <= set(
        paths["/v1/incidents"]["post"]["requestBody"]["content"]
    )
    changes = [("/v1/incidents", "post"), ("/v1/incidents/{id}/cancel", "post")]
    changes += [("/v1/incidents/{id}/approve", "post"), ("/v1/deliveries/{id}/retry", "post")]
    for path, method in [*changes, ("/v1/incidents/{id}/update", "post")]:
        headers = {p["name"] for p in paths[path][method]["parameters"] if p["in"] == "header"}
        assert headers == {"Idempotency-Key"}, path
    for path, ops in paths.items():
        for method, op in ops.items():
            edge = {"400"} | ({"401", "403"} if path.startswith("/v1/") else set())
            if path.startswith("/v1/") and method == "post":
                edge |= {"413", "422"}
            assert edge <= set(op["responses"]), (method, path)
            assert ("security" in op) == path.startswith("/v1/"), (method, path)
