"""Rendering benchmark: one incident for 50 accounts, every format, both languages.

Prints the mean time per payload and its ratio to the 1 ms budget (issue #3: "well under a
millisecond per payload"), for a typical incident and for an oversized one that every short
format has to fit. A benchmark, not a test: run ``.venv/bin/python bench/render_bench.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from alertcast.config import AccountConfig, RenderConfig
from alertcast.models import IncidentBase, MsgType, Status
from alertcast.render import RenderContext, Renderer
from alertcast.render.samples import SAMPLE_LINK, sample_incident

BUDGET_S = 0.001


def accounts(renderer: Renderer, count: int) -> list[AccountConfig]:
    """``count`` accounts cycling through every format and both languages."""
    combos = [(fmt, lang) for fmt in renderer.formats() for lang in ("zh-CN", "en")]
    return [
        AccountConfig(id=f"acct{i}", channel="console", format=fmt, language=lang)
        for i, (fmt, lang) in enumerate(combos[i % len(combos)] for i in range(count))
    ]


def incidents() -> dict[str, dict[str, IncidentBase]]:
    typical = {
        lang: sample_incident("earthquake", lang, Status.exercise) for lang in ("zh-CN", "en")
    }
    long_text = {
        "zh-CN": "请远离危险建筑，注意余震，听从现场指挥。",
        "en": "Stay clear of damaged buildings. ",
    }
    oversized = {
        lang: incident.model_copy(update={"description": long_text[lang] * 150})
        for lang, incident in typical.items()
    }
    short = {
        lang: incident.model_copy(update={"description": incident.description[:60]})
        for lang, incident in typical.items()
    }
    return {
        "short (nothing to fit)": short,
        "typical (short formats must fit a 240-char description)": typical,
        "oversized (≈4000-char description)": oversized,
    }


def run(
    renderer: Renderer, cases: dict[str, IncidentBase], targets: list[AccountConfig], rounds: int
) -> list[float]:
    ctx = RenderContext("inc_bench", MsgType.update, SAMPLE_LINK)
    per_payload: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        for account in targets:
            renderer.render(cases[account.language], account, ctx)
        per_payload.append((time.perf_counter() - start) / len(targets))
    return per_payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    start = time.perf_counter()
    renderer = Renderer(RenderConfig())
    print(f"renderer construction (templates compiled once): {time.perf_counter() - start:.3f} s")
    targets = accounts(renderer, args.accounts)
    for name, cases in incidents().items():
        run(renderer, cases, targets, 2)  # warm caches
        samples = run(renderer, cases, targets, args.rounds)
        mean, best = statistics.mean(samples), min(samples)
        print(
            f"{name}: {args.accounts} accounts x {args.rounds} rounds; per payload "
            f"mean {mean * 1e6:.0f} µs, best {best * 1e6:.0f} µs; "
            f"ratio to 1 ms: {mean / BUDGET_S:.3f}"
        )
    print(slowest(renderer, incidents()["typical (short formats must fit a 240-char description)"]))


def slowest(renderer: Renderer, cases: dict[str, IncidentBase]) -> str:
    """The slowest format for the typical incident, to say where time goes."""
    ctx = RenderContext("inc_bench", MsgType.alert, SAMPLE_LINK)
    timings: dict[str, Any] = {}
    for account in accounts(renderer, 26):
        start = time.perf_counter()
        for _ in range(50):
            renderer.render(cases[account.language], account, ctx)
        timings[f"{account.format}/{account.language}"] = (time.perf_counter() - start) / 50
    name, worst = max(timings.items(), key=lambda item: item[1])
    return f"slowest format for the typical incident: {name} at {worst * 1e6:.0f} µs"


if __name__ == "__main__":
    main()
