"""Where a run's outputs (failures file, summary) go: a local path as it is, or an s3:// URL
by way of a local temporary file uploaded when it is complete.

Only moves finished files; what they hold is `failures`' and `summary`'s business.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from bulkupdate.aws.s3 import S3, is_s3
from bulkupdate.report.summary import write_summary


def _needs(s3: S3 | None, path: str) -> S3:
    if s3 is None:
        raise RuntimeError(f"no S3 client opened for {path}")
    return s3


@asynccontextmanager
async def published(path: str, s3: S3 | None) -> AsyncIterator[str]:
    """A local path to write `path` to; for s3:// it is uploaded when the block ends."""
    if not is_s3(path):
        yield path
        return
    client = _needs(s3, path)
    with tempfile.TemporaryDirectory() as folder:
        local = str(Path(folder) / path.rpartition("/")[2])
        yield local
        await anyio.to_thread.run_sync(client.upload, local, path)


async def publish_summary(path: str, summary: Mapping[str, Any], s3: S3 | None) -> None:
    async with published(path, s3) as local:
        write_summary(local, summary)
