"""A TCP proxy in front of a local server that loses requests or their answers while a test says
so: a real network fault between a client and moto, over real sockets. Owns its own listening
socket and connections only; reads no HTTP beyond "bytes came from this side".

    async with FaultProxy(moto_url) as proxy:   # point the client at proxy.url
        proxy.fault = Fault.LOSE_REQUESTS       # from now on requests never reach the server
        ...
        proxy.fault = Fault.NONE
        await proxy.refuse()                    # nothing listens: connections are refused
        await proxy.accept()                    # listening again, on the same port
"""

from __future__ import annotations

import asyncio
from enum import Enum
from urllib.parse import urlsplit

__all__ = ["Fault", "FaultProxy"]

READ_BYTES = 65536


class Fault(Enum):
    NONE = "pass everything through"
    # The connection closes as a request arrives, before any of it is forwarded: it never lands.
    LOSE_REQUESTS = "lose requests"
    # The request is forwarded and applied, and the connection closes as the answer comes back:
    # it landed, but the client cannot know.
    LOSE_ANSWERS = "lose answers"


class FaultProxy:
    """Forwards each accepted connection to `upstream` (a http://host:port URL), losing what the
    current `fault` says; `lost` counts the requests (or answers) lost so far."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.fault = Fault.NONE
        self.lost = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def refuse(self) -> None:
        """Stop listening and close every open connection: an endpoint that is down."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def accept(self) -> None:
        """Listen again on the same port, after `refuse`."""
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(
            self._writers
        ):  # ends both pumps of every connection; no cancelling, which
            writer.close()  # asyncio's stream callback would log as an error
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            upstream_r, upstream_w = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            client_w.close()
            self._connections.discard(task)
            return
        self._writers |= {client_w, upstream_w}
        try:
            await asyncio.gather(
                self._pump(client_r, upstream_w, Fault.LOSE_REQUESTS),
                self._pump(upstream_r, client_w, Fault.LOSE_ANSWERS),
            )
        finally:
            for writer in (client_w, upstream_w):
                writer.close()
            self._writers -= {client_w, upstream_w}
            self._connections.discard(task)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, loses: Fault
    ) -> None:
        """Copy one direction until its source closes, or close it instead of copying `loses`.
        Closing `sink` closes its connection, which ends the other direction's pump too."""
        try:
            while data := await source.read(READ_BYTES):
                if self.fault is loses:
                    self.lost += 1
                    break
                sink.write(data)
                await sink.drain()
        except OSError:
            pass  # the other side went away: end this connection
        finally:
            sink.close()
