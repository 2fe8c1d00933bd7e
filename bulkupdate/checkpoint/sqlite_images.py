"""The SQLite store's table of before-images (--before-images): each field's value before the
job first changed it, what it last set, and a write sent whose answer is not yet recorded. Made
on first use, so checkpoints of version 1 made before it stay version 1 and open as they were.

Runs on the store's worker thread, inside the caller's transaction. No other I/O.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from bulkupdate.checkpoint.images import FieldImage, ImageChange, decode_value, encode_value

PAGE_ROWS = 1000
# Values are the wire unions as JSON.
CREATE = """CREATE TABLE IF NOT EXISTS images (
    case_id TEXT NOT NULL, field_id TEXT NOT NULL, before TEXT NOT NULL, after TEXT,
    pending TEXT, PRIMARY KEY (case_id, field_id)) WITHOUT ROWID"""
FORGET = "DROP TABLE IF EXISTS images"
_SENDING = (
    "INSERT INTO images (case_id, field_id, before, after, pending) VALUES (?, ?, ?, NULL, ?) "
    "ON CONFLICT (case_id, field_id) DO UPDATE SET pending = excluded.pending"
)
_APPLIED = (
    "INSERT INTO images (case_id, field_id, before, after, pending) VALUES (?, ?, ?, ?, NULL) "
    "ON CONFLICT (case_id, field_id) DO UPDATE SET after = excluded.after, pending = NULL"
)


def record(conn: sqlite3.Connection, images: Sequence[ImageChange]) -> None:
    """Apply the changes in order (a later change of a field wins); the first before stays."""
    conn.execute(CREATE)
    for change in images:
        before, value = encode_value(change.before), encode_value(change.value)
        statement = _APPLIED if change.applied else _SENDING
        conn.execute(statement, (change.case_id, change.field_id, before, value))


def page(conn: sqlite3.Connection, after: tuple[str, str]) -> list[FieldImage]:
    """Up to PAGE_ROWS images after `after` (case id, field id), in that order."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'images'"
    ).fetchone()
    if exists is None:
        return []
    rows = conn.execute(
        "SELECT case_id, field_id, before, after, pending FROM images "
        "WHERE (case_id, field_id) > (?, ?) ORDER BY case_id, field_id LIMIT ?",
        (*after, PAGE_ROWS),
    )
    return [
        FieldImage(case_id, field_id, decode_value(before) or {}, *map(decode_value, rest))
        for case_id, field_id, before, *rest in rows
    ]
