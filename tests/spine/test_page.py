"""GET /p/{id}: the public full text, escaped, without a token, cancellation first."""

from __future__ import annotations

from typing import Any

from tests.conftest import TOKEN, incident


async def test_public_page_escapes_and_shows_the_cancellation(start_daemon: Any) -> None:
    """User text is shown as text; after a cancel the page says so with the reason."""
    d = await start_daemon()
    first = await (await d.post(incident(description="<script>alert(1)</script>"))).json()
    page = await d.client.get(f"/p/{first['id']}")
    html = await page.text()
    assert page.status == 200 and "<script>alert" not in html
    assert "&lt;script&gt;" in html and "泸定" in html
    await d.client.post(
        f"/v1/incidents/{first['id']}/cancel",
        json={"reason": "误报"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    html = await (await d.client.get(f"/p/{first['id']}")).text()
    assert "已撤销" in html and "误报" in html
    assert "hook-0" not in html and "city" not in html
