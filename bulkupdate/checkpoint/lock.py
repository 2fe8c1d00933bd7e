"""The run lock: an exclusive flock on a file beside a checkpoint, held for a whole run.

Keeps two runs of one job apart and tells a live run from a dead one: the kernel drops the lock
when its process dies, SIGKILL included. POSIX only. Blocking calls; no SQLite, no asyncio.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["RunLock"]


class RunLock:
    __slots__ = ("_fd", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Held by this instance."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock without waiting; write our pid into the file for the busy message."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock

    def held_by_anyone(self) -> bool:
        """True if this or any other live process holds the lock."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            # A shared probe, dropped at once by the close below; `open` retries past it.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def holder(self) -> str:
        """The pid the holder wrote, for messages; "unknown" if unreadable."""
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"
