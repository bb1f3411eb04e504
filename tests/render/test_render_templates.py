"""Templates: an override folder wins name by name; missing or broken ones are check errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from alertcast.config import AccountConfig, RenderConfig
from alertcast.models import MsgType, Status
from alertcast.render import RenderContext, Renderer, RenderError
from alertcast.render.samples import SAMPLE_LINK, sample_incident

CTX = RenderContext("inc_t", MsgType.alert, SAMPLE_LINK)
Account = Callable[..., AccountConfig]


def _override(tmp_path: Path, name: str, body: str) -> Renderer:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return Renderer(RenderConfig(templates_dir=tmp_path))


OVERRIDES = [
    ("a family default", "zh-CN/short/default.j2", "weibo", "earthquake"),
    ("one kind in a family", "zh-CN/short/earthquake.j2", "weibo", "earthquake"),
    ("one format", "zh-CN/short/weibo.j2", "weibo", "earthquake"),
    ("one kind in one format", "zh-CN/short/earthquake.weibo.j2", "weibo", "earthquake"),
]


@pytest.mark.parametrize(("name", "path", "fmt", "kind"), OVERRIDES, ids=[o[0] for o in OVERRIDES])
def test_override_folder_wins(
    tmp_path: Path, account: Account, name: str, path: str, fmt: str, kind: str
) -> None:
    """A template in the configured folder replaces the package's at that name."""
    body = "自定义：{{ f.place }} {{ f.time }} {{ f.magnitude }}级{{ f.kind_label }} {{ link }}"
    renderer = _override(tmp_path, path, body)
    incident = sample_incident(kind, "zh-CN", Status.actual)
    text = renderer.render(incident, account(fmt), CTX)["text"]
    assert text == f"自定义：四川甘孜州泸定县 09月05日12时52分 6.8级地震 {SAMPLE_LINK}"


def test_override_of_one_kind_leaves_the_others(tmp_path: Path, account: Account) -> None:
    """Overriding the earthquake layout keeps the package's layout for fire."""
    renderer = _override(tmp_path, "zh-CN/short/earthquake.j2", "X {{ f.place }}")
    fire = sample_incident("fire", "zh-CN", Status.actual)
    assert renderer.render(fire, account("weibo"), CTX)["text"].startswith("【火灾】")


def test_override_wording_of_a_kind(tmp_path: Path, account: Account) -> None:
    """Overriding a kind's macros changes its wording in every format."""
    macros = (
        "{% macro title(f, opt) %}T{{ f.place }}{{ f.kind_label }}{% endmacro %}"
        "{% macro summary(f, opt) %}S{{ f.place }}{{ f.time }}{{ f.magnitude }}地震"
        "{% endmacro %}{% macro cancelled(f, opt) %}C{% endmacro %}"
    )
    renderer = _override(tmp_path, "zh-CN/kinds/earthquake.j2", macros)
    quake = sample_incident("earthquake", "zh-CN", Status.actual)
    assert renderer.render(quake, account("telegram"), CTX)["text"].startswith("<b>T四川")


def test_missing_template_is_a_check_error(tmp_path: Path) -> None:
    """A language with no layout for a format is reported by check, by path."""
    renderer = _override(
        tmp_path, "fr/kinds/earthquake.j2", "{% macro title(f, opt) %}{% endmacro %}"
    )
    accounts = [AccountConfig(id="fr", channel="console", format="weibo", language="fr")]
    problems = renderer.check(accounts, {})
    assert problems and all(path == "accounts[0].format" for path, _ in problems)
    assert any("no short template for earthquake in fr" in msg for _, msg in problems)
    assert any("missing template fr/kinds/fire.j2" in msg for _, msg in problems)


def test_missing_template_at_render_is_a_render_error(tmp_path: Path) -> None:
    """Rendering with a missing template raises RenderError naming account and format."""
    renderer = _override(tmp_path, "fr/kinds/fire.j2", "")
    account = AccountConfig(id="fr1", channel="console", format="weibo", language="fr")
    with pytest.raises(RenderError, match="account fr1 format weibo: no template"):
        renderer.render(sample_incident("fire", "zh-CN", Status.actual), account, CTX)


CHECKS = [
    ("a syntax error", "zh-CN/short/default.j2", "{% if %}", "does not compile"),
    ("an undefined name", "zh-CN/short/default.j2", "{{ f.nonsense }}", "nonsense"),
    ("a template that drops the place", "zh-CN/short/default.j2", "{{ link }}", "lost"),
]


@pytest.mark.parametrize(("name", "path", "body", "message"), CHECKS, ids=[c[0] for c in CHECKS])
def test_broken_overrides_are_check_errors(
    tmp_path: Path, name: str, path: str, body: str, message: str
) -> None:
    """check() explains a broken override instead of failing at send time."""
    renderer = _override(tmp_path, path, body)
    accounts = [AccountConfig(id="w", channel="console", format="weibo")]
    problems = renderer.check(accounts, {})
    assert any(message in msg for _, msg in problems), problems


def test_package_templates_pass_check(renderer: Renderer) -> None:
    """Every format in both languages passes check with the shipped templates."""
    accounts = [
        AccountConfig(id=f"{fmt}-{lang}", channel="console", format=fmt, language=lang)
        for fmt in renderer.formats()
        for lang in ("zh-CN", "en", "zh-Hans", "en-GB")
    ]
    assert renderer.check(accounts, {}) == []


def test_check_reports_facts_that_cannot_fit(renderer: Renderer) -> None:
    """A one-segment SMS cannot carry an earthquake report and its link: check says so."""
    account = AccountConfig(id="sms1", channel="console", format="sms", sms_max_segments=1)
    problems = renderer.check([account], {})
    assert ("accounts[0].format", "sample earthquake alert: mandatory facts need") in [
        (path, msg[: len("sample earthquake alert: mandatory facts need")])
        for path, msg in problems
    ]


def test_check_uses_the_channel_default_format(renderer: Renderer) -> None:
    """An account without a format is checked in its channel's default format."""
    account = AccountConfig(id="c", channel="carrier-pigeon")
    problems = renderer.check([account], {"carrier-pigeon": "papyrus"})
    assert problems == [("accounts[0].format", problems[0][1])]
    assert "unknown format 'papyrus'" in problems[0][1]


def test_operator_language(tmp_path: Path) -> None:
    """An operator can add a language in the override folder; English markers and labels apply."""
    (tmp_path / "ja" / "short").mkdir(parents=True)
    (tmp_path / "ja" / "kinds").mkdir()
    (tmp_path / "ja" / "short" / "default.j2").write_text(
        '{% import lang ~ "/kinds/" ~ kind ~ ".j2" as k %}{{ k.summary(f, opt) }} {{ link }}',
        encoding="utf-8",
    )
    for kind in ("earthquake", "fire", "police", "weather", "general"):
        (tmp_path / "ja" / "kinds" / f"{kind}.j2").write_text(
            "{% macro title(f, opt) %}{{ f.place }}{% endmacro %}"
            "{% macro summary(f, opt) %}{{ f.time }} {{ f.place }} {{ f.magnitude|default('') }}"
            "で地震{% endmacro %}{% macro cancelled(f, opt) %}取消 {{ f.time }} {{ f.place }}"
            " {{ f.magnitude|default('') }}{% endmacro %}",
            encoding="utf-8",
        )
    renderer = Renderer(RenderConfig(templates_dir=tmp_path))
    account = AccountConfig(
        id="ja", channel="console", format="weibo", language="ja", exercise=True
    )
    assert "ja" in renderer.languages()
    assert renderer.check([account], {}) == []
    incident = sample_incident("earthquake", "en", Status.exercise)
    text = renderer.render(incident, account, CTX)["text"]
    assert text.startswith("[EXERCISE] 2022-09-05 12:52 UTC+08:00 Luding County")
