"""A TCP proxy on 127.0.0.1 that cuts the connections it carries.

It stands between a client and a server the way a load balancer or a flaky
network does. A cut aborts both sockets at once (RST), in the middle of
whatever frame was passing: the client sees a broken connection, the server
sees its peer gone.
"""

from __future__ import annotations

import asyncio
import contextlib


class CuttingProxy:
    """Forwards 127.0.0.1:PORT to a target.

    ``cut_after[i]``: cut connection number ``i`` (counting from 0) once it
    carried that many bytes from the server to the client; connections past
    the list are never cut. ``refuse``: abort new connections at once (a
    server that is unreachable for a while).
    """

    def __init__(self, target_host: str, target_port: int, cut_after: list[int] | None = None) -> None:
        self.target = (target_host, target_port)
        self.cut_after = list(cut_after or [])
        self.refuse = False
        self.accepted = 0
        self.cuts = 0
        self._live: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        """Starts listening; returns the ``ws://`` URL to connect to."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    def cut_all(self) -> None:
        """Cuts every connection now."""
        for pair in list(self._live):
            self._abort(pair)

    async def close(self) -> None:
        self.cut_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def _abort(self, pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        if pair in self._live:
            self._live.discard(pair)
            self.cuts += 1
        for writer in pair:
            writer.transport.abort()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            client_writer.transport.abort()
            return
        index = self.accepted
        self.accepted += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        pair = (client_writer, server_writer)
        self._live.add(pair)
        limit = self.cut_after[index] if index < len(self.cut_after) else None
        upstream = asyncio.create_task(self._pump(client_reader, server_writer, None, pair))
        downstream = asyncio.create_task(self._pump(server_reader, client_writer, limit, pair))
        for task in (upstream, downstream):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limit: int | None,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        carried = 0
        try:
            while True:
                data = await reader.read(64 * 1024)
                if not data:
                    break
                if limit is not None and carried + len(data) >= limit:
                    # Pass the bytes up to the limit, then cut mid-stream.
                    writer.write(data[: limit - carried])
                    await writer.drain()
                    self._abort(pair)
                    return
                carried += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        # One side closed or broke: end the other too.
        self._abort(pair)
