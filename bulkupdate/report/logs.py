"""Logging set-up: the only structlog.configure call. JSON lines on stdout when it is not a
terminal (containers, pipes), a readable console otherwise; the job name and run id are bound
to every event of a run. Credentials never reach the logs; with `redact`, field values neither.
A console does not repeat what the summary lines print (`run_finished`); JSON keeps it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

SECRET_KEYS = frozenset(
    {"aws_access_key_id", "aws_secret_access_key", "aws_session_token", "secret", "password"}
)
# Event keys whose values are (or quote) field values of the input or of a case.
VALUE_KEYS = frozenset({"value", "values", "raw", "fields", "evidence", "row"})
# Free-text keys (service error messages) whose quoted parts may echo a value.
TEXT_KEYS = frozenset({"message", "abort", "error", "exception"})
REDACTED = "[redacted]"
# Events that carry what the summary lines print on stderr: a person reads those once.
SUMMARY_EVENTS = frozenset({"run_finished"})
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in SECRET_KEYS & event.keys():
        event[key] = "***"
    return event


def _redact_values(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in VALUE_KEYS & event.keys():
        event[key] = REDACTED
    for key in TEXT_KEYS & event.keys():
        if isinstance(event[key], str):
            event[key] = redact_text(event[key])
    return event


def _printed_as_summary(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if event.get("event") in SUMMARY_EVENTS:
        raise structlog.DropEvent
    return event


def redact_text(text: str) -> str:
    """Quoted parts of a message ('high', "C-1"), where services and we put values."""
    return _QUOTED.sub(REDACTED, text)


def configure(
    *,
    fmt: str | None = None,
    level: str = "info",
    redact: bool = False,
    stream: TextIO | None = None,
) -> None:
    """fmt: "json", "console" or None (console on a terminal, JSON otherwise)."""
    out = stream or sys.stdout
    use_json = fmt == "json" or (fmt is None and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    if not use_json:  # a machine reads JSON logs: it gets the whole summary as an event
        processors.insert(0, _printed_as_summary)
    if use_json or redact:  # tracebacks as text, so redaction sees them too
        processors.append(structlog.processors.format_exc_info)
    if redact:
        processors.append(_redact_values)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )


def bind_run(job: str, run_id: str, **extra: str) -> None:
    """Bind the run's identity (and its shard, when sharded) to every later event."""
    structlog.contextvars.bind_contextvars(job=job, run_id=run_id, **extra)
