"""Identifies an input so a checkpoint is never applied to a different file: size plus a hash
of the first MiB for files, a hash of the first 64 KiB for streams (stdin, .gz contents).

Owns reading those bytes; for streams it hands back a stream that still starts at byte 0.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import BinaryIO

FILE_HEAD_BYTES = 1 << 20
STREAM_HEAD_BYTES = 64 << 10


def fingerprint_file(path: str) -> str:
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(FILE_HEAD_BYTES)
    return f"size={size};head={hashlib.sha256(head).hexdigest()[:32]}"


class _Replayed(io.RawIOBase):
    """A read-only stream: the bytes already taken for the fingerprint, then the rest."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def fingerprint_stream(stream: BinaryIO) -> tuple[str, BinaryIO]:
    """The stream's fingerprint and a stream to read instead, still starting at byte 0."""
    head = b""
    while len(head) < STREAM_HEAD_BYTES:
        piece = stream.read(STREAM_HEAD_BYTES - len(head))
        if not piece:
            break
        head += piece
    replay = io.BufferedReader(_Replayed(head, stream), buffer_size=1 << 16)
    return f"stream;head={hashlib.sha256(head).hexdigest()[:32]}", replay
