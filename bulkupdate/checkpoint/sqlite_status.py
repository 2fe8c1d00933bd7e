"""The SQLite store's reads of where a job stands: its identity and resume point, totals,
counters, runs and the offsets resolved beyond the resume point.

Runs on the store's worker thread, inside the caller's transaction (one snapshot). Reads only.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from bulkupdate.checkpoint.store import JobIdentity, JobStatus, RunRecord, RunState, all_totals
from bulkupdate.models import ResumePoint, RowStatus


def read(conn: sqlite3.Connection) -> JobStatus | None:
    """The job's status as recorded (a run marked running may have died: the caller asks the
    run lock); None when the file holds no job."""
    stored = read_job(conn)
    if stored is None:
        return None
    job, resume_point, created_at, updated_at = stored
    (runs,) = conn.execute("SELECT count(*) FROM runs").fetchone()
    last = conn.execute(
        "SELECT number, state, pid, started_at, ended_at, summary FROM runs "
        "ORDER BY number DESC LIMIT 1"
    ).fetchone()
    totals = read_totals(conn)
    counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    resolved = conn.execute(
        "SELECT byte_offset FROM outcomes WHERE byte_offset >= ?", (resume_point.offset,)
    ).fetchall()
    last_run = None
    if last is not None:
        number, state, pid, started_at, ended_at, summary = last
        last_run = RunRecord(
            number=number,
            state=RunState(state),
            pid=pid,
            started_at=datetime.fromisoformat(started_at),
            ended_at=datetime.fromisoformat(ended_at) if ended_at else None,
            summary=json.loads(summary) if summary else {},
        )
    return JobStatus(
        job,
        resume_point,
        totals,
        counters,
        runs,
        last_run,
        created_at,
        updated_at,
        frozenset(offset for (offset,) in resolved),
    )


def read_job(
    conn: sqlite3.Connection,
) -> tuple[JobIdentity, ResumePoint, datetime, datetime] | None:
    row = conn.execute(
        "SELECT name, input_path, fingerprint, format, resume_offset, resume_line, created_at, "
        "updated_at FROM job"
    ).fetchone()
    if row is None:
        return None
    name, input_path, fingerprint, fmt, offset, line, created_at, updated_at = row
    return (
        JobIdentity.from_stored(name, input_path, fingerprint, fmt),
        ResumePoint(offset, line),
        datetime.fromisoformat(created_at),
        datetime.fromisoformat(updated_at),
    )


def read_totals(conn: sqlite3.Connection) -> dict[RowStatus, int]:
    return all_totals(dict(conn.execute("SELECT status, row_count FROM totals").fetchall()))
