"""``GET /p/{id}``: the public full text of an incident, the link every short post carries.

Public by design (no token): it shows what was broadcast — headline, time, place, the latest
facts, what to do — and, once cancelled, says so first. Never the deliveries, issuers or errors.
Every value is escaped by the template engine.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, select_autoescape

from alertcast.store.base import IncidentRow

__all__ = ["render_page"]

_ENV = Environment(autoescape=select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True)
_PAGE = _ENV.from_string("""<!doctype html>
<html lang="{{ i.language or 'zh-CN' }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ marker }}{{ i.headline }}</title>
<style>body{font:16px/1.6 system-ui,sans-serif;max-width:40em;margin:1em auto;padding:0 1em}
.banner{padding:.5em 1em;border-radius:4px;background:#fde2e1;font-weight:bold}
.drill{background:#fff4cc}dt{font-weight:bold}</style></head><body>
{% if cancelled %}
<p class="banner">{{ "已撤销" if zh else "CANCELLED" }}：{{ cancelled }}</p>
{% endif %}
{% if marker %}<p class="banner drill">{{ marker }}</p>{% endif %}
<h1>{{ i.headline }}</h1>
<dl>
<dt>{{ "时间" if zh else "Time" }}</dt><dd>{{ i.occurred_at }}</dd>
<dt>{{ "地区" if zh else "Area" }}</dt><dd>{{ i.area.name }}</dd>
{% for key, value in details %}<dt>{{ key }}</dt><dd>{{ value }}</dd>{% endfor %}
</dl>
{% if i.description %}<p>{{ i.description }}</p>{% endif %}
{% if i.instruction %}<p><strong>{{ i.instruction }}</strong></p>{% endif %}
{% if updated %}<p><small>{{ "已更新" if zh else "Updated" }} {{ updated }}</small></p>{% endif %}
</body></html>
""")
DRILL = {"exercise": ("【演习】", "[EXERCISE]"), "test": ("【测试】", "[TEST]")}


def render_page(root: IncidentRow, follow_ups: list[IncidentRow]) -> str:
    """The page for ``root`` with the facts of its latest update and any cancellation."""
    updates = [f for f in follow_ups if f.msg_type == "update"]
    cancels = [f for f in follow_ups if f.msg_type == "cancel"]
    body: dict[str, Any] = dict(updates[-1].body if updates else root.body)
    zh = str(body.get("language", "zh-CN")).startswith("zh")
    marker = DRILL.get(root.status, ("", ""))[0 if zh else 1]
    details = [
        (k, v) for k, v in dict(body.get("details") or {}).items() if v not in ("", None, [], False)
    ]
    return _PAGE.render(
        i=body,
        zh=zh,
        marker=marker,
        details=details,
        cancelled=cancels[-1].reason if cancels else None,
        updated=updates[-1].body.get("occurred_at") if updates else None,
    )
