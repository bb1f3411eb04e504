"""The duty officer's journey in a real browser (Playwright driving the system's Chromium):
sign in, compose, preview, submit; a second person approves on a phone; the grid turns
delivered live; cancel; the correction rows appear.

Screenshots are kept as artifacts: in ``$ALERTCAST_ARTIFACTS/console`` when that is set (CI),
else in the test's ``tmp_path/screenshots``; the path is printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alertcast.app import create_app
from tests.conftest import incident, make_config
from tests.console.conftest import TOKENS, console_config
from tests.serving import serving

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'"
)
CHROMIUM = os.environ.get("ALERTCAST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
WAIT_MS = 20_000


@pytest.fixture
def live(env: None, console_env: None, tmp_path: Path) -> Iterator[str]:
    config = make_config(tmp_path, [], **console_config(tmp_path))
    with serving(create_app(config)) as url:
        yield url


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    base = os.environ.get("ALERTCAST_ARTIFACTS")
    where = Path(base) / "console" if base else tmp_path / "screenshots"
    where.mkdir(parents=True, exist_ok=True)
    print(f"console screenshots: {where}")
    return where


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def label(page: Any, text: str) -> Any:
    """The control labelled exactly ``text`` (a required one's label ends in " *")."""
    return page.get_by_label(re.compile(f"^{re.escape(text)}( \\*)?$"))


def sign_in(page: Any, base: str, who: str, *, keyboard: bool = False) -> None:
    """Sign in by the form: with the mouse, or by the keyboard alone (the token box has the
    focus; Enter submits)."""
    page.set_default_timeout(WAIT_MS)
    page.goto(base + "/")
    assert page.url.endswith("/console/sign-in")
    if keyboard:  # typed once the box has the focus (autofocus lands after the load event)
        sync_api.expect(label(page, "访问令牌")).to_be_focused()
        page.keyboard.type(TOKENS[who])
        page.keyboard.press("Enter")
    else:
        label(page, "访问令牌").fill(TOKENS[who])
        page.get_by_role("button", name="登录").click()
    page.wait_for_url(base + "/console/")
    assert page.locator("#issuer").inner_text() == who


def compose(page: Any, base: str, shots: Path) -> None:
    """Fill the earthquake form by its labels; a magnitude out of range is named at its field."""
    page.get_by_role("link", name="发布").click()
    label(page, "类型").select_option("earthquake")
    label(page, "严重程度").select_option("extreme")
    label(page, "标题").fill("四川甘孜州泸定县发生6.8级地震")
    label(page, "地区名称").fill("四川省甘孜藏族自治州泸定县")
    label(page, "行政区划代码").fill("513322")
    label(page, "震级").fill("12")
    label(page, "震源深度（千米）").fill("16")
    label(page, "纬度").fill("29.59")
    label(page, "经度").fill("102.08")
    label(page, "震中地点").fill("四川甘孜州泸定县")
    page.get_by_role("button", name="预览").click()
    error = page.locator("#e-details\\.magnitude")
    sync_api.expect(error).not_to_be_empty(timeout=WAIT_MS)
    assert label(page, "震级").get_attribute("aria-invalid") == "true"
    page.screenshot(path=str(shots / "1-compose-invalid.png"), full_page=True)
    label(page, "震级").fill("6.8")
    page.get_by_role("button", name="预览").click()
    board = page.locator('#preview article[data-account="board"]')
    sync_api.expect(board).to_contain_text("微博字", timeout=WAIT_MS)
    sync_api.expect(board).to_contain_text("将发送")
    drills = page.locator('#preview article[data-account="drills"]')
    sync_api.expect(drills).to_contain_text("不发送")
    sync_api.expect(error).to_be_empty()
    page.screenshot(path=str(shots / "2-compose-preview.png"), full_page=True)


def test_the_duty_officers_journey(live: str, chromium: Any, shots: Path) -> None:
    """Sign in, compose, preview, submit; a second person approves from a phone; the author's
    grid turns delivered live; the approver cancels; the correction rows appear."""
    author = chromium.new_context(
        viewport={"width": 1280, "height": 900}, locale="zh-CN"
    ).new_page()
    sign_in(author, live, "author")
    compose(author, live, shots)
    author.get_by_role("button", name="提交发布").click()
    author.wait_for_url(f"{live}/console/incidents/inc_*")
    incident_id = author.url.rsplit("/", 1)[1]
    sync_api.expect(author.locator(".own")).to_be_visible()  # shown, not just refused
    sync_api.expect(author.locator("#live-status")).to_contain_text("实时", timeout=WAIT_MS)
    author.screenshot(path=str(shots / "3-held.png"), full_page=True)

    phone = chromium.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN").new_page()
    sign_in(phone, live, "approver", keyboard=True)
    phone.get_by_role("link", name="待审批").click()
    held = phone.locator(f'[data-held="{incident_id}"]')
    sync_api.expect(held.locator("article.text")).to_have_count(2)
    phone.screenshot(path=str(shots / "4-approve-phone.png"), full_page=True)
    held.get_by_role("button", name="批准发布").click()
    sync_api.expect(phone.locator(f'[data-held="{incident_id}"]')).to_have_count(0)

    delivered = author.locator('#grid tr[data-message="alert"][data-state="delivered"]')
    sync_api.expect(delivered).to_have_count(2, timeout=WAIT_MS)  # live, no reload
    sync_api.expect(author.locator(f'[data-held="{incident_id}"]')).to_have_count(0)
    author.screenshot(path=str(shots / "5-delivered.png"), full_page=True)

    phone.goto(f"{live}/console/incidents/{incident_id}")
    phone.get_by_label("原因").fill("误报：经核实为爆破作业")
    preview = phone.locator("#cancel-preview article.text")
    sync_api.expect(preview.first).to_contain_text("误报：经核实为爆破作业", timeout=WAIT_MS)
    phone.get_by_role("button", name="撤销此事件").click()
    corrections = author.locator('#grid tr[data-message="cancel"][data-state="delivered"]')
    sync_api.expect(corrections).to_have_count(2, timeout=WAIT_MS)
    sync_api.expect(phone.locator(".cancelled-banner")).to_be_visible(timeout=WAIT_MS)
    sync_api.expect(author.locator(".cancelled-banner")).to_contain_text("爆破作业")
    author.screenshot(path=str(shots / "6-cancelled.png"), full_page=True)
    phone.screenshot(path=str(shots / "7-cancelled-phone.png"), full_page=True)


def _api(base: str, who: str, method: str, path: str, body: Any = None) -> Any:
    """The JSON API with ``who``'s bearer token (the setup and the check, not the journey)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {TOKENS[who]}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def test_a_second_person_rejects_a_held_incident_by_the_keyboard(
    live: str, chromium: Any, shots: Path
) -> None:
    """On the approvals page a held incident's Reject is reached by its label; an empty reason
    is named at its field; with one, Enter rejects it: it leaves the page, ends cancelled."""
    held = _api(live, "author", "POST", "/v1/incidents", incident(severity="extreme"))
    assert held["state"] == "awaiting_approval", held
    page = chromium.new_context(locale="zh-CN").new_page()
    sign_in(page, live, "approver", keyboard=True)
    page.goto(f"{live}/console/approvals")
    section = page.locator(f'[data-held="{held["id"]}"]')
    reason = section.get_by_label("驳回原因")
    reason.focus()
    page.keyboard.press("Enter")  # an empty reason: the API's 422, shown at the field
    sync_api.expect(reason).to_have_attribute("aria-invalid", "true", timeout=WAIT_MS)
    sync_api.expect(section.locator(f"#e-reject-{held['id']}")).not_to_be_empty()
    page.keyboard.type("震级有误，待正式测定")
    page.screenshot(path=str(shots / "8-reject.png"), full_page=True)
    page.keyboard.press("Enter")
    sync_api.expect(page.locator(f'[data-held="{held["id"]}"]')).to_have_count(0)
    view = _api(live, "approver", "GET", f"/v1/incidents/{held['id']}")
    assert view["state"] == "cancelled"
    assert all(d["state"] == "skipped" for d in view["deliveries"]), view["deliveries"]
