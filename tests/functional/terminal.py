"""Run the real `bulkupdate` command with a pseudo-terminal as its stdout and stderr, as a person
at a terminal runs it, without blocking the test's event loop (an in-process emulator keeps
serving). What it drew is read back as the screen's lines: carriage returns start a line again,
colours are dropped.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import struct
import sys
import termios
from collections.abc import Mapping
from pathlib import Path

from tests.functional.runner import Completed, cli_env

COLUMNS, ROWS = 160, 40
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _read_all(fd: int) -> bytes:
    """Everything written to the terminal, until its last writer has closed it."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: no process holds the terminal any more
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def run_cli_in_terminal(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60,
    cwd: str | Path | None = None,
) -> Completed:
    """`python -m bulkupdate ARGS...` on a terminal; `stderr` holds all it drew, `stdout` is
    empty (both went to the terminal). Kills the process on timeout."""
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bulkupdate",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=terminal,
            stderr=terminal,
            env=cli_env({"TERM": "xterm", **(env or {})}),
            cwd=cwd,
        )
    finally:
        os.close(terminal)
    reading = asyncio.create_task(asyncio.to_thread(_read_all, controller))
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        message = f"bulkupdate {' '.join(args)} still running after {timeout_s} s"
        raise AssertionError(message) from None
    finally:
        drawn = await reading
        os.close(controller)
    assert process.returncode is not None
    return Completed(process.returncode, "", drawn.decode(errors="replace"))


def screen_lines(drawn: str) -> list[str]:
    """The lines as drawn, each redraw of a line (after a carriage return) a line of its own."""
    text = _ESCAPE.sub("", drawn)
    return [line for line in re.split(r"\r\n|\r|\n", text) if line.strip()]
