"""The SQLite store's table of BatchUpdateCase calls recorded before they are sent (each a
RecordedGroup as JSON, by recording order), so a killed run's groups go again with their tokens.
Made on open when missing, so checkpoints written before it resume as they are.

Runs on the store's worker thread, inside the caller's transaction. No other I/O.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from bulkupdate.checkpoint.store import RecordedGroup

CREATE = (
    "CREATE TABLE IF NOT EXISTS batch_groups (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "token TEXT NOT NULL UNIQUE, body TEXT NOT NULL)"
)
FORGET = "DELETE FROM batch_groups"


def encode(group: RecordedGroup) -> str:
    return json.dumps(group.to_json(), separators=(",", ":"))


def record(conn: sqlite3.Connection, token: str, body: str) -> None:
    conn.execute("INSERT INTO batch_groups (token, body) VALUES (?, ?)", (token, body))


def read(conn: sqlite3.Connection) -> list[RecordedGroup]:
    rows = conn.execute("SELECT body FROM batch_groups ORDER BY seq").fetchall()
    return [RecordedGroup.from_json(json.loads(body)) for (body,) in rows]


def forget(conn: sqlite3.Connection, tokens: Sequence[str]) -> None:
    """The groups whose rows' outcomes this commit records."""
    conn.executemany("DELETE FROM batch_groups WHERE token = ?", [(t,) for t in tokens])
