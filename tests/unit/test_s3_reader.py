"""The S3 range reader: a seekable file whose reads are ranged GETs of one object, so an input
resumes at a byte offset without fetching what comes before it."""

from __future__ import annotations

import io
from typing import Any

from bulkupdate.aws.s3 import RANGE_BYTES, ObjectInfo, RangeReader, open_object


class FakeS3:
    """Serves ranges of one in-memory object and records every request."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ranges: list[tuple[int, int]] = []

    def get_range(self, info: ObjectInfo, start: int, end: int) -> bytes:
        assert info.etag == "etag-1"
        self.ranges.append((start, end))
        return self.data[start:end]


def reader(data: bytes) -> tuple[FakeS3, Any]:
    s3 = FakeS3(data)
    info = ObjectInfo("s3://b/k.csv", len(data), "etag-1", None)
    return s3, open_object(s3, info)  # type: ignore[arg-type]


def test_reading_the_whole_object_takes_one_get_per_range() -> None:
    data = bytes(range(256)) * (RANGE_BYTES // 256 * 2 + 10)
    s3, stream = reader(data)
    assert stream.read() == data
    assert [start for start, _ in s3.ranges] == [0, RANGE_BYTES, 2 * RANGE_BYTES]
    assert s3.ranges[-1][1] == len(data)


def test_a_seek_fetches_from_the_offset_not_from_the_start() -> None:
    data = b"".join(b"row %06d\n" % n for n in range(300_000))
    s3, stream = reader(data)
    offset = data.index(b"row 250000\n")
    stream.seek(offset)
    assert stream.readline() == b"row 250000\n"
    assert s3.ranges == [(offset, min(len(data), offset + RANGE_BYTES))]


def test_lines_are_read_across_range_boundaries() -> None:
    data = b"".join(b"%d,%s\n" % (n, b"x" * (n % 97)) for n in range(40_000))
    _, stream = reader(data)
    assert list(stream) == data.splitlines(keepends=True)


def test_the_reader_is_a_read_only_seekable_file() -> None:
    raw = RangeReader(FakeS3(b"abc"), ObjectInfo("s3://b/k", 3, "etag-1", None))  # type: ignore[arg-type]
    assert raw.readable()
    assert raw.seekable()
    assert not raw.writable()
    assert raw.seek(-1, io.SEEK_END) == 2
    assert raw.read() == b"c"
    assert raw.read() == b""
