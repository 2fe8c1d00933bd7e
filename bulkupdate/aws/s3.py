"""S3 for inputs and outputs: a seekable, read-only file over one object made of ranged GETs
(so an input streams with flat memory and resumes at a byte offset), and uploads of a run's
failures file and summary.

The aiobotocore client runs on its own event loop in a portal thread, so the synchronous
readers of `input.sources` (in worker threads or at start-up) can call it. The standard AWS
configuration applies, `AWS_ENDPOINT_URL_S3` included.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from aiobotocore.session import AioSession
from anyio.from_thread import BlockingPortal, start_blocking_portal
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bulkupdate.errors import ConfigError, InputError

T = TypeVar("T")
RANGE_BYTES = 1 << 20  # one ranged GET per MiB read
SCHEME = "s3://"


def is_s3(location: str | None) -> bool:
    return bool(location) and str(location).startswith(SCHEME)


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/key/parts` -> ("bucket", "key/parts"); ValueError when either is missing."""
    bucket, _, key = url.removeprefix(SCHEME).partition("/")
    if not url.startswith(SCHEME) or not bucket or not key:
        raise ValueError(f"not an s3://BUCKET/KEY URL: {url!r}")
    return bucket, key


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    url: str
    size_bytes: int
    etag: str
    version_id: str | None

    @property
    def fingerprint(self) -> str:
        """Changes whenever the object's content does (a new ETag, size or version)."""
        version = f":{self.version_id}" if self.version_id else ""
        return f"s3:{self.etag}:{self.size_bytes}{version}"


class S3:
    """A blocking S3 client for one run: its methods may be called from any thread but the
    portal's own (from async code, through anyio.to_thread)."""

    def __init__(self, portal: BlockingPortal, client: Any) -> None:
        self._portal = portal
        self._client = client

    def head(self, url: str) -> ObjectInfo:
        bucket, key = parse_s3_url(url)
        response = self._call(url, "head_object", Bucket=bucket, Key=key)
        return ObjectInfo(
            url, int(response["ContentLength"]), response["ETag"], response.get("VersionId")
        )

    def get_range(self, info: ObjectInfo, start: int, end: int) -> bytes:
        """Bytes [start, end) of the object as it was when `info` was read (IfMatch its ETag:
        an object replaced mid-run is an error, not a silent mix of two files)."""
        bucket, key = parse_s3_url(info.url)

        async def get() -> bytes:
            response = await self._client.get_object(
                Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}", IfMatch=info.etag
            )
            async with response["Body"] as body:
                data: bytes = await body.read()
                return data

        return self._run(info.url, "GetObject", get)

    def upload(self, local_path: str, url: str) -> None:
        """Put a local file (a failures file or summary) at `url`, streamed from disk."""
        bucket, key = parse_s3_url(url)

        async def put() -> None:
            with open(local_path, "rb") as body:  # noqa: ASYNC230 - the portal's own loop
                await self._client.put_object(Bucket=bucket, Key=key, Body=body)

        self._run(url, "PutObject", put)

    def _call(self, url: str, operation: str, **params: Any) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            response: dict[str, Any] = await getattr(self._client, operation)(**params)
            return response

        return self._run(url, operation, call)

    def _run(self, url: str, operation: str, work: Callable[[], Awaitable[T]]) -> T:
        try:
            return self._portal.call(work)
        except ClientError as error:
            details = error.response.get("Error", {})
            code = details.get("Code", "Error")
            message = details.get("Message") or code
            raise InputError(url, f"S3 {operation} failed: {code}: {message}") from None
        except BotoCoreError as error:
            raise InputError(url, f"S3 {operation} failed: {error}") from None


@contextmanager
def open_s3(*, region: str | None = None, profile: str | None = None) -> Iterator[S3]:
    """An S3 client on a portal thread, closed with the block."""
    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5)
    with ExitStack() as stack:
        portal = stack.enter_context(start_blocking_portal())
        try:
            session = AioSession(profile=profile)
            client = portal.call(
                lambda: session.create_client("s3", region_name=region, config=config).__aenter__()
            )
        except BotoCoreError as error:
            raise ConfigError("aws", f"cannot create an S3 client: {error}") from error
        try:
            yield S3(portal, client)
        finally:
            portal.call(client.__aexit__, None, None, None)


class RangeReader(io.RawIOBase):
    """A read-only, seekable binary file over one S3 object, read RANGE_BYTES at a time."""

    def __init__(self, s3: S3, info: ObjectInfo) -> None:
        super().__init__()
        self._s3 = s3
        self._info = info
        self._position = 0
        self._chunk_start = 0
        self._chunk = b""

    @property
    def size_bytes(self) -> int:
        return self._info.size_bytes

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size_bytes}
        self._position = max(0, base[whence] + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._position >= self.size_bytes or not len(view):
            return 0
        at = self._position - self._chunk_start
        if not 0 <= at < len(self._chunk):
            end = min(self.size_bytes, self._position + RANGE_BYTES)
            self._chunk = self._s3.get_range(self._info, self._position, end)
            self._chunk_start, at = self._position, 0
            if not self._chunk:
                raise InputError(self._info.url, f"S3 returned no bytes at {self._position}")
        count = min(len(view), len(self._chunk) - at)
        view[:count] = self._chunk[at : at + count]
        self._position += count
        return count


def open_object(s3: S3, info: ObjectInfo) -> io.BufferedReader:
    return io.BufferedReader(RangeReader(s3, info), buffer_size=64 * 1024)
