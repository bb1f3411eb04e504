"""The dispatcher's default concurrency follows the accounts: one alert to every account goes
out in one wave; a concurrency set in ``[dispatch]`` is kept as given."""

from __future__ import annotations

from typing import Any

from tests.conftest import incident, until

ACCOUNTS = 100
LATENCY_S = 0.4  # the sink's answer: a second wave could only start after it


async def _spread(start_daemon: Any, **extra: Any) -> tuple[float, int]:
    """Raise one alert to ``ACCOUNTS`` webhooks; (the spread of the requests' arrival times,
    how many arrived before the first answer could have freed a slot)."""
    d = await start_daemon(hooks=ACCOUNTS, **extra)
    d.sink.latency_s = LATENCY_S
    resp = await d.post(incident())
    assert resp.status == 202, await resp.text()
    await until(lambda: len(d.sink.received) >= ACCOUNTS, 20, "every account's request")
    times = sorted(r.at for r in d.sink.received)
    first_wave = sum(1 for t in times if t < times[0] + LATENCY_S * 0.75)
    return times[-1] - times[0], first_wave


async def test_unset_concurrency_sends_to_a_hundred_accounts_in_one_wave(
    start_daemon: Any,
) -> None:
    spread, first_wave = await _spread(start_daemon)
    assert first_wave == ACCOUNTS, f"{first_wave} in the first wave, spread {spread:.3f} s"


async def test_a_concurrency_set_in_the_config_is_kept(start_daemon: Any) -> None:
    dispatch = {"concurrency": 40, "backoff_initial_s": 0.05, "poll_interval_s": 0.2}
    spread, first_wave = await _spread(start_daemon, dispatch=dispatch)
    assert first_wave == 40, f"{first_wave} in the first wave, spread {spread:.3f} s"
    assert spread >= 2 * LATENCY_S * 0.9  # three waves: 40, 40, 20
