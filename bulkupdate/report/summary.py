"""A run's summary: the JSON file (`--summary`) and the few lines printed when a run ends.

Formats and writes; what the numbers are is the run's business.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bulkupdate.report.atomic import write_text
from bulkupdate.report.figures import duration_text, rate_text
from bulkupdate.report.stats import RATE_MIN_SPAN_S


def write_summary(path: str, summary: Mapping[str, Any]) -> None:
    write_text(path, json.dumps(summary, indent=2, sort_keys=True) + "\n")


def summary_line(summary: Mapping[str, Any]) -> str:
    rate = summary.get("achieved_rate_per_s")
    pending = summary.get("pending")  # none before the engine ran: the input was not counted
    parts = [
        f"{summary.get('end', 'finished')}:",
        f"{summary.get('applied', 0)} applied,",
        f"{summary.get('failed', 0)} failed,",
        f"{summary.get('skipped', 0)}" + (" skipped;" if pending is None else " skipped,"),
        *([] if pending is None else [f"{pending} pending;"]),
        f"{summary.get('throttles', 0)} throttles,",
        f"{summary.get('retried', 0)} retries;",
        f"{duration_text(summary.get('elapsed_s') or 0)}",
    ]
    if rate is not None:
        parts[-1] += f", {rate_text(rate)} rows/s (first to last accept)"
    elif summary.get("applied", 0) > 1:
        parts[-1] += f", rows/s not measured (under {RATE_MIN_SPAN_S:g} s of accepts)"
    job_applied, job_failed = summary.get("job_applied"), summary.get("job_failed")
    if job_applied is not None and (job_applied, job_failed) != (
        summary.get("applied"),
        summary.get("failed"),
    ):
        parts.append(f"(job so far: {job_applied} applied, {job_failed} failed)")
    if summary.get("batch_calls"):
        parts.append(
            f"({summary['batch_calls']} BatchUpdateCase calls, {summary.get('cases_per_batch')} "
            f"cases per call; {summary.get('calls', 0)} UpdateCase calls)"
        )
    if summary.get("other_shards"):
        parts.append(f"({summary['other_shards']} rows left to other shards)")
    lines = [" ".join(parts)]
    if summary.get("note"):
        lines.append(f"  {summary['note']}")
    if summary.get("abort"):
        lines.append(f"  stopped by {summary['abort']}")
        if summary.get("fix") and summary.get("next_step"):
            lines.append(f"  to fix: {summary['fix']}; then {summary['next_step']}")
        elif summary.get("fix") and summary.get("resumable", True):
            lines.append(f"  to fix: {summary['fix']}; then run the same command to resume")
        elif summary.get("fix"):
            lines.append(f"  to fix: {summary['fix']}")
    if summary.get("resume"):
        lines.append(f"  to resume: {summary['resume']}")
    for key, label in (("failures_file", "failures"), ("checkpoint", "checkpoint")):
        if summary.get(key):
            lines.append(f"  {label}: {summary[key]}")
    if summary.get("summary_file"):
        lines.append(f"  summary: {summary['summary_file']}")
    return "\n".join(lines)
