"""SIGINT and SIGTERM for a whole `bulkupdate run` process: held from the command's first line
until the process exits, so a signal is recorded, never fatal, and the run reads what came.

The product's only module that changes signal dispositions (the emulator's command has its
own). Main thread only. Imports nothing heavy at module level: the command holds signals
before it imports its dependencies.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Hold:
    """Our handler on STOP_SIGNALS, and the pipe the interpreter writes each one's number to
    (signal.set_wakeup_fd), from whichever thread the kernel picked, so none is missed."""

    __slots__ = ("previous", "previous_wakeup_fd", "read_fd", "write_fd")

    def __init__(
        self, read_fd: int, write_fd: int, previous: dict[signal.Signals, Any], wakeup_fd: int
    ) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.previous = previous  # the handlers to put back on release
        self.previous_wakeup_fd = wakeup_fd


_hold: _Hold | None = None


def _noted(signum: int, frame: FrameType | None) -> None:
    """The signal's number is in the pipe already (set_wakeup_fd); nothing else to do."""


def held() -> bool:
    return _hold is not None


def hold() -> None:
    """From now on SIGINT and SIGTERM are written to the pipe, not acted on. Idempotent."""
    global _hold
    if _hold is not None:
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    # The pipe first: a signal between the two calls still gets the default action, never a
    # handler that writes nowhere.
    previous_wakeup_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    previous = {signum: signal.signal(signum, _noted) for signum in STOP_SIGNALS}
    _hold = _Hold(read_fd, write_fd, previous, previous_wakeup_fd)


def release() -> None:
    """Give the signals back their handlers from before `hold`. One that came while held and
    was not read is raised again, so the process ends as it would have without the hold."""
    came = _unhold()
    if came:
        signal.raise_signal(came[0])


def ignore_until_exit() -> None:
    """The exit code is final: a signal from now on (the interpreter's own shutdown included,
    where Python puts default handlers back) must not replace it. Only while held."""
    if _hold is not None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


@contextmanager
def received() -> Iterator[AsyncIterator[signal.Signals]]:
    """The signals that come while the block runs, first those that came while held and
    unread. Holds them for the block when the process does not (the demo, an in-process run);
    then one that comes as the block ends is dropped with the hold."""
    scoped = _hold is None
    hold()
    assert _hold is not None
    try:
        yield _receive(_hold.read_fd)
    finally:
        if scoped:
            _unhold()


async def _receive(read_fd: int) -> AsyncIterator[signal.Signals]:
    import anyio  # here, not at module level: see the module docstring

    while True:
        for number in _drain(read_fd):
            if number in STOP_SIGNALS:
                yield signal.Signals(number)
        await anyio.wait_readable(read_fd)


def _drain(read_fd: int) -> bytes:
    came = b""
    while True:
        try:
            chunk = os.read(read_fd, 512)
        except BlockingIOError:
            return came
        if not chunk:
            return came
        came += chunk


def _unhold() -> bytes:
    """Put the handlers and the wakeup pipe back; the signal numbers that were not read."""
    global _hold
    hold_, _hold = _hold, None
    if hold_ is None:
        return b""
    for signum, handler in hold_.previous.items():
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    signal.set_wakeup_fd(hold_.previous_wakeup_fd)
    came = bytes(number for number in _drain(hold_.read_fd) if number in STOP_SIGNALS)
    os.close(hold_.read_fd)
    os.close(hold_.write_fd)
    return came
