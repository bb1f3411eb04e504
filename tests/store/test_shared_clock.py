"""Limit slots on one clock, the database's: replicas whose clocks differ by seconds still
hold an account's window on PostgreSQL, and the clock's estimate stays within half the round
trip when the database answers late (issue 15 item 1)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import asyncpg
import pytest

from alertcast.ratelimit import SlidingWindow
from alertcast.shared_limiter import SharedLimiter
from alertcast.store.clock import DbClock, LocalClock
from alertcast.store.postgres import PgDriver, PostgresStore
from tests.conftest import PG_URL, until

PER_WINDOW = 3
WINDOW_S = 1.0
SENDS = 6  # per replica
SKEW_S = 3.0
TOLERANCE_S = 0.01  # two replicas' readings of one instant: twice half a local round trip


def skewed(by_s: float) -> Callable[[], float]:
    """This machine's wall clock, set ``by_s`` wrong (a replica's NTP-less machine)."""
    return lambda: time.time() + by_s


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[dict[str, PostgresStore]]:
    """Two stores on one database (two replicas' pools), one's clock 3 s ahead, one's 3 s
    behind, each estimating the database's clock from its own."""
    stores = {"ahead": PostgresStore(pg_url), "behind": PostgresStore(pg_url)}
    for name, store in stores.items():
        store.shared_clock = DbClock(
            store.driver, local=skewed(SKEW_S if name == "ahead" else -SKEW_S)
        )
        await store.open()
    yield stores
    for store in stores.values():
        await store.close()


@pytest.fixture
async def db_now() -> AsyncIterator[Callable[[], Awaitable[float]]]:
    """Asks the database what time it is there (the clock the window must hold on)."""
    pool = await asyncpg.create_pool(PG_URL, min_size=1, max_size=8)

    async def now() -> float:
        return float(await pool.fetchval("SELECT extract(epoch from clock_timestamp())"))

    yield now
    await pool.close()


def limiter(store: PostgresStore) -> SharedLimiter:
    """The replica's limiter of account ``acct`` as the daemon builds it: on the store's clock."""
    window = SlidingWindow(PER_WINDOW, WINDOW_S, store.clock, name="per_second")
    return SharedLimiter([window], key="acct", slots=store, lease_s=30.0)


@pytest.mark.postgres
@pytest.mark.parametrize("first", ["behind", "ahead"])
async def test_replicas_with_skewed_clocks_hold_the_window_on_the_databases_clock(
    replicas: dict[str, PostgresStore], db_now: Callable[[], Awaitable[float]], first: str
) -> None:
    """3 a second, one replica 3 s ahead and one 3 s behind: the first sends until 3 have
    ended, then the second joins; any second of the database's clock holds at most 3 sends,
    and the second's first send waits for the window, not for the skew."""
    second = "ahead" if first == "behind" else "behind"
    limiters = {name: limiter(store) for name, store in replicas.items()}
    seen: dict[str, list[float]] = {"ahead": [], "behind": []}
    finished = {"ahead": 0, "behind": 0}
    ended = asyncio.Event()

    async def send(name: str) -> None:
        async with limiters[name].slot():
            seen[name].append(await db_now())
            await asyncio.sleep(0.005)
        finished[name] += 1
        if finished[first] >= PER_WINDOW:
            ended.set()  # the first's slots are finished in the store, not only taken

    async def joins() -> None:
        await ended.wait()
        await asyncio.gather(*(send(second) for _ in range(SENDS)))

    sends = [*(send(first) for _ in range(SENDS)), joins()]
    await asyncio.wait_for(asyncio.gather(*sends), 30)
    times = sorted(seen["ahead"] + seen["behind"])
    assert len(times) == 2 * SENDS
    crowded = [
        (round(times[i], 3), round(times[i + PER_WINDOW], 3))
        for i in range(len(times) - PER_WINDOW)
        if times[i + PER_WINDOW] - times[i] < WINDOW_S - TOLERANCE_S
    ]
    assert not crowded, f"{PER_WINDOW + 1} sends within a second: {crowded}"
    waited_s = min(seen[second]) - min(seen[first])
    assert waited_s < 4.0, f"the second replica's first send came {waited_s:.1f} s after"


class SlowReplies:
    """A TCP proxy to PostgreSQL whose answers arrive ``delay_s`` late (the questions do not:
    the worst case, the database reads its clock as soon as it is asked)."""

    def __init__(self, host: str, port: int) -> None:
        self.target, self.delay_s, self.port = (host, port), 0.0, 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer, late=False),
            self._pipe(up_reader, writer, late=True),
            return_exceptions=True,
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, late: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if late and self.delay_s:
                    await asyncio.sleep(self.delay_s)
                writer.write(data)
                await writer.drain()
        writer.close()


@pytest.fixture
async def slow_db(pg_url: str) -> AsyncIterator[tuple[SlowReplies, PgDriver]]:
    """The test's schema (made directly), and a driver that reaches it through the proxy."""
    direct = PostgresStore(pg_url)
    await direct.open()
    await direct.close()
    parts = urlsplit(pg_url)
    proxy = SlowReplies(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    driver = PgDriver(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl())
    await driver.open()
    yield proxy, driver
    await driver.close()
    await proxy.stop()


def off_by(clock: DbClock) -> float:
    """How far the clock is from the database's (this machine's: the server runs here)."""
    return abs(clock.now() - time.time())


@pytest.mark.postgres
async def test_a_slow_round_trip_moves_the_clock_by_half_of_it_at_most(
    slow_db: tuple[SlowReplies, PgDriver],
) -> None:
    """Answers 0.2 s late: the estimate is off by at most half the round trip (and says so);
    once they are quick it is within milliseconds, and slow answers again do not move it."""
    proxy, driver = slow_db
    clock = DbClock(driver, local=lambda: time.monotonic() + 5000.0, samples=3)
    proxy.delay_s = 0.2
    slow = await clock.measure()
    assert slow.error_s >= 0.1 and off_by(clock) <= slow.error_s + TOLERANCE_S
    proxy.delay_s = 0.0
    quick = await clock.measure()
    assert quick.error_s < TOLERANCE_S and off_by(clock) < TOLERANCE_S
    proxy.delay_s = 0.3
    assert await clock.measure() == quick  # a slower sample never replaces a better one
    assert off_by(clock) < TOLERANCE_S


@pytest.mark.postgres
async def test_a_stepped_clock_is_followed_at_the_next_refresh(
    slow_db: tuple[SlowReplies, PgDriver],
) -> None:
    """The local clock stepped 2 s after a quick estimate (or the database's: the same offset
    change), the answers slower since: the refresh in the background adopts the new offset,
    though its round trip is worse than the old estimate's."""
    proxy, driver = slow_db
    step = [0.0]
    clock = DbClock(driver, local=lambda: time.monotonic() + step[0], refresh_s=0.05)
    await clock.start()
    try:
        assert clock.estimate.error_s < TOLERANCE_S and off_by(clock) < TOLERANCE_S
        proxy.delay_s, step[0] = 0.05, 2.0
        assert off_by(clock) > 1.9
        await until(lambda: off_by(clock) < 0.05, 10, "the new offset adopted")
        assert clock.estimate.error_s >= 0.025
    finally:
        await clock.stop()


async def test_sqlite_reads_the_wall_clock() -> None:
    """One process on one machine: nothing to estimate."""
    clock = LocalClock()
    await clock.start()
    assert abs(clock.now() - time.time()) < TOLERANCE_S
    await clock.stop()
