"""How a SQLite checkpoint file is opened: for a run, for looking at it (`status`), and on a
read-only volume; and, when it cannot be written, saying so rather than what SQLite says.

Opens connections; knows nothing of the checkpoint's tables. No asyncio.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.request import pathname2url

from bulkupdate.checkpoint.store import CheckpointError


def connect(target: str, *, uri: bool, timeout_s: float) -> sqlite3.Connection:
    return sqlite3.connect(
        target, timeout=timeout_s, isolation_level=None, check_same_thread=False, uri=uri
    )


def file_uri(path: Path) -> str:
    return f"file:{pathname2url(str(path.absolute()))}"


def writable(path: Path) -> bool:
    """The file, if it exists, and its folder, where SQLite keeps its -wal and -shm files."""
    folder = path.absolute().parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    return not path.exists() or os.access(path, os.W_OK)


def not_writable(path: Path) -> str:
    """Why a run cannot use the checkpoint at `path`, and what to do."""
    folder = path.absolute().parent
    what = f"its folder {folder}" if not os.access(folder, os.W_OK | os.X_OK) else "the file"
    return (
        f"cannot be written: {what} is read-only (SQLite also keeps its -wal and -shm files "
        "beside the checkpoint). Run with --checkpoint or --state-dir on a writable volume; "
        "`bulkupdate status` still reads it where it is"
    )


def connect_read_only(path: Path, *, timeout_s: float) -> sqlite3.Connection:
    """A checkpoint on a read-only volume. SQLite reads one in WAL mode with its -wal and -shm
    files, or, when no -wal file holds commits, the file alone (as immutable: no run can be
    writing it, since none can write there)."""
    conn = connect(f"{file_uri(path)}?mode=ro", uri=True, timeout_s=timeout_s)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:  # no -shm file, and none can be made
        conn.close()
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise CheckpointError(
            str(path),
            f"is on a read-only volume and its latest commits are in {wal}, which SQLite reads "
            "there only with its -shm file: copy the checkpoint and its -wal file to a writable "
            "folder and look at the copy",
        )
    return connect(f"{file_uri(path)}?immutable=1", uri=True, timeout_s=timeout_s)
