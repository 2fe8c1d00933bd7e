"""The SQLite checkpoint's file format: its tables, schema version and application id, how a
new file is laid out and how an existing one is recognised as a checkpoint of this version.

Runs on the store's worker thread; reads only what it is given. No other I/O.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bulkupdate.checkpoint.sqlite_files import not_writable, writable
from bulkupdate.checkpoint.store import CheckpointError

__all__ = ["APPLICATION_ID", "SCHEMA", "SCHEMA_VERSION", "create", "identify"]

SCHEMA_VERSION = 1
APPLICATION_ID = 0x42554C4B  # b"BULK" in the SQLite header: this file is a bulkupdate checkpoint

# Failed rows are kept for the failures file; done rows only until the resume point passes them.
SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL)",
    """CREATE TABLE job (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        name TEXT NOT NULL, input_path TEXT NOT NULL, fingerprint TEXT NOT NULL,
        format TEXT NOT NULL, resume_offset INTEGER NOT NULL, resume_line INTEGER NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE outcomes (
        byte_offset INTEGER PRIMARY KEY, line INTEGER NOT NULL, case_id TEXT NOT NULL,
        status TEXT NOT NULL, error_code TEXT, error_message TEXT, raw BLOB,
        attempts INTEGER NOT NULL)""",
    "CREATE TABLE totals (status TEXT PRIMARY KEY, row_count INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    """CREATE TABLE runs (
        number INTEGER PRIMARY KEY, state TEXT NOT NULL, pid INTEGER NOT NULL,
        started_at TEXT NOT NULL, ended_at TEXT, summary TEXT)""",
)


def create(conn: sqlite3.Connection, now: str) -> None:
    """Lay out a new checkpoint, inside the caller's transaction."""
    for statement in SCHEMA:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (?, ?)", (SCHEMA_VERSION, now))
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def identify(conn: sqlite3.Connection, path: Path, *, read_only: bool) -> bool:
    """True for a checkpoint of this schema, False for an empty database; else raise.
    Reads only, so a file that is not ours is left exactly as it was."""
    location = str(path)
    try:
        (application_id,) = conn.execute("PRAGMA application_id").fetchone()
    except sqlite3.DatabaseError as exc:
        if not read_only and not writable(path):  # "unable to open database"
            raise CheckpointError(location, not_writable(path)) from exc
        raise CheckpointError(location, f"is not a bulkupdate checkpoint ({exc})") from exc
    if application_id != APPLICATION_ID:
        (objects,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if application_id == 0 and objects == 0:
            return False
        raise CheckpointError(
            location, "is not a bulkupdate checkpoint (it is some other SQLite database)"
        )
    try:
        (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    except sqlite3.OperationalError:
        version = None
    if version is None:
        raise CheckpointError(location, "is damaged: it has no schema version")
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            location,
            f"has schema version {version}; this bulkupdate reads version {SCHEMA_VERSION}"
            + (" (it was written by a newer bulkupdate)" if version > SCHEMA_VERSION else ""),
        )
    return True
