"""Load generators for benchmarks: each sends UpdateCase calls to an emulator's demo domain for a
fixed time, counts the answers and measures its own CPU time, so a report can show whether the
generator or the server was the bottleneck; and `PoissonSaves`, agents saving cases at random
beside a job.

No emulator control here: starting, pinning and checking the emulator is the caller's job.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import resource
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bulkupdate.emulator.config import DEFAULT_CREDENTIALS
from bulkupdate.emulator.seed import DEMO_DOMAIN_ID, demo_case_id

PRIORITY_VALUES = ("low", "medium", "high", "urgent")
# Without --verify-signatures the emulator checks only that this header is there and scoped to
# the "cases" service.
AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKIDEMULATOR/20260101/us-east-1/cases/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=abc"
)
WRK_SCRIPT = Path(__file__).with_name("update_case.lua")
BOTO_POOL_CONNECTIONS = 64  # as in the reference client that other benchmarks compare with


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One timed run: calls answered 200, calls that failed, wall and CPU seconds spent."""

    ok: int
    failed: int
    elapsed_s: float
    cpu_s: float

    @property
    def rate_per_s(self) -> float:
        return self.ok / self.elapsed_s


class LoadGenerator(Protocol):
    """Sends UpdateCase calls for duration_s, then stops and reports."""

    label: str
    # Calls the generator may abandon unanswered when it stops (the server still applies them).
    unanswered_at_stop_max: int

    async def run(self, duration_s: int) -> LoadResult: ...


class GeneratorError(Exception):
    """A load generator could not run (missing tool, unreadable output)."""


def updates(cases: int) -> Iterator[tuple[str, str]]:
    """(case id, priority value) forever: every case in turn, the next value on each pass."""
    for value in itertools.cycle(PRIORITY_VALUES):
        for index in range(1, cases + 1):
            yield demo_case_id(index), value


def _body(value: str) -> bytes:
    fields = [{"id": "priority", "value": {"stringValue": value}}]
    return json.dumps({"fields": fields}, separators=(",", ":")).encode()


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class WrkLoad:
    """`wrk` with one thread and a Lua script (update_case.lua); CPU time is the child's."""

    __slots__ = ("_cases", "_connections", "_url", "label", "unanswered_at_stop_max")

    def __init__(self, url: str, connections: int, cases: int) -> None:
        self._url, self._connections, self._cases = url, connections, cases
        self.label = f"wrk, {connections} connections"
        # wrk drops the connections it has open when its time is up, one call in flight on each.
        self.unanswered_at_stop_max = connections

    async def run(self, duration_s: int) -> LoadResult:
        before_s = _cpu_s(resource.RUSAGE_CHILDREN)
        process = await asyncio.create_subprocess_exec(
            *("wrk", "-t1", f"-c{self._connections}", f"-d{duration_s}s", "--timeout", "5s"),
            *("-s", str(WRK_SCRIPT), self._url, "--", str(self._cases)),
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await process.communicate()
        cpu_s = _cpu_s(resource.RUSAGE_CHILDREN) - before_s
        lines = [line for line in output.decode().splitlines() if line.startswith("wrk-summary ")]
        if process.returncode != 0 or not lines:
            raise GeneratorError(f"wrk exited {process.returncode} without a summary: {output!r}")
        summary = json.loads(lines[-1].partition(" ")[2])
        failed = sum(count for key, count in summary.items() if key.endswith(("errors", "outs")))
        return LoadResult(
            ok=summary["requests"] - summary["status_errors"],
            failed=failed,
            elapsed_s=summary["duration_us"] / 1e6,
            cpu_s=cpu_s,
        )


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


class _Tally:
    __slots__ = ("failed", "ok", "stopping")

    def __init__(self) -> None:
        self.ok = self.failed = 0
        self.stopping = False


class _KeepAliveProtocol(asyncio.Protocol):
    """One keep-alive connection: writes the next request as soon as the last answer is in.

    A Protocol rather than streams: no coroutine per call keeps the client cheap.
    """

    def __init__(self, requests: Iterator[bytes], tally: _Tally, done: asyncio.Future[None]):
        self._requests, self._tally, self.done = requests, tally, done
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._awaiting_answer = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def send_next(self) -> None:
        assert self._transport is not None
        self._transport.write(next(self._requests))
        self._awaiting_answer = True

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while (head_end := buffer.find(b"\r\n\r\n")) >= 0:
            length = _CONTENT_LENGTH.search(buffer, 0, head_end)
            size = head_end + 4 + (int(length[1]) if length else 0)
            if len(buffer) < size:
                return
            if buffer.startswith(b"HTTP/1.1 200 "):
                self._tally.ok += 1
            else:
                self._tally.failed += 1
            del buffer[:size]
            self._awaiting_answer = False
            if self._tally.stopping:
                assert self._transport is not None
                self._transport.close()
                return
            self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._awaiting_answer:
            self._tally.failed += 1  # the call in flight got no answer
        if not self.done.done():
            self.done.set_result(None)


async def _connect(host: str, port: int, protocol: _KeepAliveProtocol) -> None:
    await asyncio.get_running_loop().create_connection(lambda: protocol, host, port)


class SocketLoad:
    """Pure-Python fallback: raw HTTP/1.1 keep-alive connections on asyncio Protocols.

    Stops by letting each connection finish its call in flight, so every call is answered.
    """

    __slots__ = ("_address", "_connections", "_requests", "label", "unanswered_at_stop_max")

    def __init__(self, url: str, connections: int, cases: int) -> None:
        parts = urlsplit(url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._connections = connections
        # Every request formatted once, up front.
        self._requests = [
            self._request(case_id, value)
            for case_id, value in itertools.islice(updates(cases), cases * len(PRIORITY_VALUES))
        ]
        self.label = f"Python sockets, {connections} connections"
        self.unanswered_at_stop_max = 0

    def _request(self, case_id: str, value: str) -> bytes:
        host, port = self._address
        body = _body(value)
        head = (
            f"PUT /domains/{DEMO_DOMAIN_ID}/cases/{case_id} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Content-Type: application/json\r\n"
            "X-Amz-Date: 20260101T000000Z\r\n"
            f"Authorization: {AUTHORIZATION}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def run(self, duration_s: int) -> LoadResult:
        loop = asyncio.get_running_loop()
        tally = _Tally()
        requests = itertools.cycle(self._requests)
        protocols = [
            _KeepAliveProtocol(requests, tally, loop.create_future())
            for _ in range(self._connections)
        ]
        await asyncio.gather(*(_connect(*self._address, p) for p in protocols))
        before_s, start_s = _cpu_s(resource.RUSAGE_SELF), loop.time()
        for protocol in protocols:
            protocol.send_next()
        stop = loop.call_later(duration_s, setattr, tally, "stopping", True)
        try:
            await asyncio.gather(*(protocol.done for protocol in protocols))
        finally:
            stop.cancel()
        elapsed_s = loop.time() - start_s
        cpu_s = _cpu_s(resource.RUSAGE_SELF) - before_s
        return LoadResult(tally.ok, tally.failed, elapsed_s, cpu_s)


class BotoLoad:
    """The real aiobotocore client: `tasks` coroutines, each awaiting update_case in a loop."""

    __slots__ = ("_client", "_tasks", "_updates", "label", "unanswered_at_stop_max")

    def __init__(self, client: Any, tasks: int, cases: int) -> None:
        self._client, self._tasks, self._updates = client, tasks, updates(cases)
        self.label = f"aiobotocore, {tasks} tasks"
        self.unanswered_at_stop_max = 0

    async def run(self, duration_s: int) -> LoadResult:
        loop = asyncio.get_running_loop()
        tally = _Tally()
        before_s, start_s = _cpu_s(resource.RUSAGE_SELF), loop.time()
        deadline_s = start_s + duration_s

        async def call_until_deadline() -> None:
            while loop.time() < deadline_s:
                case_id, value = next(self._updates)
                fields = [{"id": "priority", "value": {"stringValue": value}}]
                try:
                    await self._client.update_case(
                        domainId=DEMO_DOMAIN_ID, caseId=case_id, fields=fields
                    )
                except (BotoCoreError, ClientError):
                    tally.failed += 1
                else:
                    tally.ok += 1

        async with asyncio.TaskGroup() as group:
            for _ in range(self._tasks):
                group.create_task(call_until_deadline())
        elapsed_s = loop.time() - start_s
        cpu_s = _cpu_s(resource.RUSAGE_SELF) - before_s
        return LoadResult(tally.ok, tally.failed, elapsed_s, cpu_s)


@asynccontextmanager
async def boto_load(url: str, tasks: int, cases: int) -> AsyncIterator[BotoLoad]:
    """A BotoLoad on a client configured like the project's: botocore retries off."""
    access_key_id, secret_access_key = next(iter(DEFAULT_CREDENTIALS.items()))
    config = Config(retries={"total_max_attempts": 1}, max_pool_connections=BOTO_POOL_CONNECTIONS)
    async with get_session().create_client(
        "connectcases",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    ) as client:
        yield BotoLoad(client, tasks, cases)


class PoissonSaves:
    """The contact centre's agents: UpdateCase saves at random moments (a Poisson stream of
    `per_s` a second) on `case_ids`, each on its own over raw HTTP through aiohttp; a refused
    save is not retried (the agent sees an error). Records each answer's wall time and status."""

    __slots__ = ("_case_ids", "_per_s", "_seed", "_url", "answers")

    def __init__(self, url: str, per_s: float, case_ids: Sequence[str], seed: int = 1) -> None:
        self._url, self._per_s, self._case_ids, self._seed = url, per_s, list(case_ids), seed
        self.answers: list[tuple[float, int]] = []  # (time.time() of the answer, HTTP status)

    async def run(self, stop: asyncio.Event) -> None:
        """Save until `stop` is set; saves still in flight then finish."""
        rng = random.Random(self._seed)
        headers = {
            "Content-Type": "application/json",
            "X-Amz-Date": "20260101T000000Z",
            "Authorization": AUTHORIZATION,
        }
        async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as saves:
            while not stop.is_set():
                try:  # the next save comes after an exponential gap
                    await asyncio.wait_for(stop.wait(), rng.expovariate(self._per_s))
                except TimeoutError:
                    case_id = rng.choice(self._case_ids)
                    body = _body(rng.choice(PRIORITY_VALUES))
                    saves.create_task(self._save(session, case_id, body, headers))

    async def _save(
        self, session: aiohttp.ClientSession, case_id: str, body: bytes, headers: dict[str, str]
    ) -> None:
        url = f"{self._url}/domains/{DEMO_DOMAIN_ID}/cases/{case_id}"
        async with session.put(url, data=body, headers=headers) as response:
            await response.read()
            self.answers.append((time.time(), response.status))

    def between(self, start_s: float, end_s: float) -> tuple[int, int]:
        """(saves answered, saves refused with 429) between two wall times."""
        statuses = [status for at_s, status in self.answers if start_s <= at_s <= end_s]
        return len(statuses), statuses.count(429)
