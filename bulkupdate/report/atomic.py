"""Files that appear whole or not at all: written to a temporary beside the target, flushed to
disk, then renamed over it, so a reader (or a crash) never sees half a file, and a write that
fails (a full disk) leaves neither half a file nor its temporary behind.

Local files only; moving a finished file to S3 is `outputs`' business.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TextIO


def temporary_path(path: str) -> Path:
    target = Path(path)
    return target.with_name(f".{target.name}.tmp")


def open_text(path: Path, encoding: str = "utf-8") -> TextIO:
    """The temporary, open for writing; a folder missing on the way is created, as for the
    checkpoint (the run checked up front that it can be)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # surrogateescape: bytes that were not text in the input's encoding go back out unchanged.
    return path.open("w", encoding=encoding, errors="surrogateescape", newline="")


def finish(handle: TextIO, temporary: Path, path: str) -> None:
    """Flush `handle` to disk, close it, and rename its file over `path`."""
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    temporary.replace(path)


def discard(handle: TextIO, temporary: Path) -> None:
    """After a failed write: close the temporary and remove it; the target is left as it was."""
    with contextlib.suppress(OSError):  # closing flushes, which may fail again on a full disk
        handle.close()
    temporary.unlink(missing_ok=True)


def write_text(path: str, text: str) -> None:
    temporary = temporary_path(path)
    handle = open_text(temporary)
    try:
        handle.write(text)
        finish(handle, temporary, path)
    except BaseException:
        discard(handle, temporary)
        raise
