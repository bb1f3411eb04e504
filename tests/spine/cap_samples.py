"""The CAP samples of ../shared/data/cap, the originals their updates name, and the schema."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import TOKEN, shared

CAP = "urn:oasis:names:tc:emergency:cap:1.2"
NS = {"cap": CAP}
SAMPLES = [
    "Oasis_AmberAlert.xml",
    "Oasis_EarthquakeReport.xml",
    "Oasis_HomelandAlert.xml",
    "Oasis_ThunderstormWarning.xml",
    "PelmorexNAADS_WindWarning.xml",
]


def sample(name: str) -> bytes:
    return shared("cap", name).read_bytes()


def schema_path() -> str:
    return str(shared("cap", "cap12.xsd"))


def original_of(body: bytes) -> bytes | None:
    """The message an Update's last reference names, rebuilt as the Alert it was (None for a
    sample that is an Alert already)."""
    refs = re.search(rb"<references>([^<]*)</references>", body)
    if refs is None:
        return None
    _, identifier, sent = refs[1].split()[-1].split(b",")
    body = re.sub(
        rb"<identifier>[^<]*</identifier>",
        b"<identifier>" + identifier + b"</identifier>",
        body,
        count=1,
    )
    body = re.sub(rb"<sent>[^<]*</sent>", b"<sent>" + sent + b"</sent>", body, count=1)
    body = body.replace(b"<msgType>Update</msgType>", b"<msgType>Alert</msgType>")
    return body.replace(refs[0], b"")


async def post_xml(d: Any, body: bytes, token: str = TOKEN, **headers: str) -> Any:
    return await d.client.post(
        "/v1/incidents",
        data=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/cap+xml",
            **headers,
        },
    )


async def accepted(d: Any, body: bytes) -> dict[str, Any]:
    resp = await post_xml(d, body)
    answer = await resp.json()
    assert resp.status == 202, answer
    return dict(answer)


async def taken(d: Any, name: str) -> dict[str, Any]:
    """The sample taken in: its original first when it is an update."""
    body = sample(name)
    if (first := original_of(body)) is not None:
        await accepted(d, first)
    return await accepted(d, body)


def validator() -> Any:
    """The OASIS schema alone (signatures not held to the bundled xmldsig schema)."""
    xmlschema = pytest.importorskip("xmlschema", reason="xmlschema validates CAP (pyproject)")
    return xmlschema.XMLSchema(schema_path(), use_fallback=False)
