"""A TCP proxy on 127.0.0.1 that a test can cut and restore, to rehearse losing a database.

``cut()`` closes every live connection (both sides, at once) and makes new ones fail: each is
reset as soon as it is accepted, so a client sees its connect refused without waiting for a
timeout. ``restore()`` lets connections through again. The listening port never changes, so
the client's DSN stays valid across a cut.

    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()            # proxy.port: point the client at it
    await proxy.cut()              # the database "goes away"
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


class TcpProxy:
    """Forwards every connection on its port to ``(host, port)`` until cut."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.refused = 0  # connections reset while cut
        self.accepted = 0  # connections forwarded
        self._cut = False
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def is_cut(self) -> bool:
        return self._cut

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
        self._cut = True
        for writer in list(self._writers):
            _reset(writer)
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def restore(self) -> None:
        self._cut = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            self.refused += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self.accepted += 1
        self._writers |= {writer, up_writer}
        pipes = [self._pipe(reader, up_writer), self._pipe(up_reader, writer)]
        tasks = [asyncio.create_task(p) for p in pipes]
        self._pipes.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._pipes.difference_update(tasks)
            for w in (writer, up_writer):
                self._writers.discard(w)
                _reset(w)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One direction; when either side ends, the whole connection ends."""
        try:
            while data := await reader.read(CHUNK):
                if self._cut:
                    return
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            return
        finally:
            _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0): the peer learns at once, no FIN-WAIT dance."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
