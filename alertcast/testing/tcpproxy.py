"""A TCP proxy on 127.0.0.1 that a test can cut, blackhole and restore, to rehearse losing a
database.

Two ways to fail:

- ``cut()`` closes every live connection (both sides, at once) and makes new ones fail: each
  is reset as soon as it is accepted, so a client sees its connect refused without waiting for
  a timeout.
- ``blackhole()`` is a route that drops packets: every connection stays open and nothing
  arrives either way (the bytes are read and dropped), and a new connection is accepted but
  never connected onward, so the client's handshake waits for an answer that never comes. The
  client learns only from its own timeouts.

- ``lose_answer(marker)`` loses one commit's answer: the connection whose client next sends
  ``marker`` inside a transaction (a value bound in a statement: an idempotency key, a
  delivery's id) has that transaction's ``COMMIT`` forwarded, so the server commits, and from
  then on nothing comes back on it. The client learns only from its own timeout that it does
  not know the outcome.

``restore()`` lets connections through again. After a blackhole, every connection that lost
bytes (the stream is broken: it cannot go on) and every connection accepted meanwhile is reset
then, as a real partition's stuck connections are in the end; a connection that sent nothing
either way while it lasted goes on. The listening port never changes, so the client's DSN stays
valid across a cut or a blackhole.

    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()            # proxy.port: point the client at it
    await proxy.cut()              # the database "goes away" (or: proxy.blackhole())
    proxy.restore()                # and comes back
    await proxy.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

__all__ = ["TcpProxy"]

CHUNK = 64 * 1024
BEGIN, COMMIT, ROLLBACK = b"BEGIN", b"COMMIT", b"ROLLBACK"

Link = frozenset[asyncio.StreamWriter]  # the two sides of one proxied connection


class TcpProxy:
    """Forwards every connection on its port to ``(host, port)`` until cut or blackholed."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.refused = 0  # connections reset while cut
        self.accepted = 0  # connections forwarded
        self.held = 0  # connections accepted while blackholed (never connected onward)
        self.dropped_bytes = 0  # bytes read and dropped while blackholed
        self._cut = False
        self._dark = False
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._broken: set[Link] = set()  # lost bytes (or never connected) in a blackhole
        self.answers_lost = 0  # commits forwarded whose answers were dropped (lose_answer)
        self._marker: bytes | None = None  # armed by lose_answer: the bytes to wait for
        self._marked: Link | None = None  # the connection that sent them
        self._silenced: set[Link] = set()  # its COMMIT went through: nothing comes back
        self._tails: dict[Link, bytes] = {}  # what each client sent last, while armed
        self._open: set[Link] = set()  # inside a transaction, while armed

    @property
    def is_cut(self) -> bool:
        return self._cut

    @property
    def is_dark(self) -> bool:
        return self._dark

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        await self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def cut(self) -> None:
        """Every live connection closed, and every new one reset, until :meth:`restore`."""
        self._cut, self._dark = True, False
        self._broken.clear()
        for writer in list(self._writers):
            _reset(writer)
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def blackhole(self) -> None:
        """Nothing forwarded either way, no new connection answered, until :meth:`restore`."""
        self._dark = True

    def lose_answer(self, marker: bytes) -> None:
        """The next ``COMMIT`` on the connection that sends ``marker`` reaches the server; its
        answer, and everything after it on that connection, does not reach the client."""
        self._marker, self._marked = marker, None

    def restore(self) -> None:
        """Forward again; the connections a blackhole broke are reset now."""
        self._cut, self._dark = False, False
        for link in self._broken:
            for writer in link:
                _reset(writer)
        self._broken.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            self.refused += 1
            _reset(writer)
            return
        if self._dark:
            await self._hold(reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self.accepted += 1
        link = frozenset({writer, up_writer})
        self._writers |= link
        pipes = [
            self._pipe(reader, up_writer, link, upstream=True),
            self._pipe(up_reader, writer, link),
        ]
        tasks = [asyncio.create_task(p) for p in pipes]
        self._pipes.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._pipes.difference_update(tasks)
            self._broken.discard(link)
            self._silenced.discard(link)
            self._tails.pop(link, None)
            self._open.discard(link)
            for w in link:
                self._writers.discard(w)
                _reset(w)

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A connection accepted in the dark: its bytes dropped until it or a restore ends it."""
        self.held += 1
        link = frozenset({writer})
        self._writers.add(writer)
        self._broken.add(link)
        try:
            while data := await reader.read(CHUNK):
                self.dropped_bytes += len(data)
        except OSError:
            pass
        finally:
            self._broken.discard(link)
            self._writers.discard(writer)
            _reset(writer)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: Link,
        *,
        upstream: bool = False,
    ) -> None:
        """One direction; when either side ends, the whole connection ends."""
        try:
            while data := await reader.read(CHUNK):
                if self._cut:
                    return
                if self._dark or (not upstream and link in self._silenced):  # dropped
                    self.dropped_bytes += len(data)
                    self._broken.add(link)
                    continue
                if upstream and self._marker is not None:
                    self._watch(link, data)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            return
        finally:
            _reset(writer)

    def _watch(self, link: Link, data: bytes) -> None:
        """``lose_answer``'s part, on what a client sends: a transaction begun, the marker in
        it, then its commit (each may be split between two reads: the end of the last one is
        kept)."""
        assert self._marker is not None
        seen = self._tails.get(link, b"") + data
        self._tails[link] = seen[-max(len(self._marker), len(BEGIN), len(COMMIT)) :]
        upper = seen.upper()
        if BEGIN in upper:
            self._open.add(link)
        if self._marked is None and link in self._open and self._marker in seen:
            self._marked = link
            upper = upper[seen.index(self._marker) :]  # a commit before the marker is not its
        if self._marked is link and COMMIT in upper:
            self._silenced.add(link)
            self.answers_lost += 1
            self._marker = self._marked = None
            self._tails.clear()
            self._open.clear()
        elif COMMIT in upper or ROLLBACK in upper:
            self._open.discard(link)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0): the peer learns at once, no FIN-WAIT dance."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
