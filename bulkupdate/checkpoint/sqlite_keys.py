"""The SQLite store's table of match keys (`--match-field`): what a search found for each key,
so a resumed run does not search again. Made on open when missing, so checkpoints written
before it resume as they are.

Runs on the store's worker thread, inside the caller's transaction. No other I/O.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from bulkupdate.models import KeyResolution

CREATE = """CREATE TABLE IF NOT EXISTS match_keys (
    field_id TEXT NOT NULL, match_key TEXT NOT NULL, case_ids TEXT NOT NULL,
    PRIMARY KEY (field_id, match_key)) WITHOUT ROWID"""
FORGET = "DELETE FROM match_keys"


def record(conn: sqlite3.Connection, resolutions: Sequence[KeyResolution]) -> None:
    """Insert each key's answer; a key recorded before keeps its first one."""
    conn.executemany(
        "INSERT OR IGNORE INTO match_keys (field_id, match_key, case_ids) VALUES (?, ?, ?)",
        [(r.field_id, r.key, json.dumps(list(r.case_ids))) for r in resolutions],
    )


def read(conn: sqlite3.Connection, field_id: str) -> dict[str, tuple[str, ...]]:
    rows = conn.execute(
        "SELECT match_key, case_ids FROM match_keys WHERE field_id = ?", (field_id,)
    )
    return {key: tuple(json.loads(ids)) for key, ids in rows}
