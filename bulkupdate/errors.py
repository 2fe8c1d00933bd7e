"""The project's exception tree, drawn once. Errors carry data, not just text.

    BulkUpdateError
    ├── ConfigError          bad flag, job file key or environment variable (exit 2)
    ├── InputError           bad input file content: names the file, line and column or key (exit 2)
    ├── CallError            a Connect Cases call failed; `kind` says what the engine does next,
    │                        `batch_refusal` why a BatchUpdateCase was refused as a whole
    ├── CheckpointError      (checkpoint.py) unusable checkpoint; FingerprintMismatchError,
    │                        CheckpointBusyError (exit 2)
    └── ColumnError, HeaderError, RowRejectedError, ValueRejected   (schema.py, coerce.py)

Pure: no I/O.
"""

from __future__ import annotations

from enum import StrEnum


class BulkUpdateError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(BulkUpdateError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class InputError(BulkUpdateError):
    """A problem in an input file, located as precisely as the format allows."""

    def __init__(
        self,
        path: str,
        message: str,
        *,
        line: int | None = None,
        column: int | str | None = None,
    ) -> None:
        where = path
        if line is not None:
            where += f":{line}"
        if column is not None:
            where += f": column {column!r}" if isinstance(column, str) else f":{column}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.column = column
        self.message = message


class ErrorKind(StrEnum):
    """What a failed call means for the row and the run (classified at the AWS edge)."""

    THROTTLED = "throttled"  # retried until it succeeds or the run stops; slows the pace
    TRANSIENT = "transient"  # 5xx, timeouts, dropped connections: retried up to max attempts
    ROW = "row"  # the row itself is wrong (validation, unknown case): it fails alone
    SYSTEMIC = "systemic"  # access denied, unknown domain, bad credentials: stop the run


class BatchRefusal(StrEnum):
    """Why a BatchUpdateCase call was refused as a whole (kind ROW): nothing of it was applied.
    The service does not say which case or field caused it."""

    INVALID = "invalid"  # a case id or the patch is wrong (validation, quota): isolate the cause
    TOKEN_REUSED = "token_reused"  # ConflictException: the clientToken went with other parameters
    UNSUPPORTED = "unsupported"  # the endpoint does not know the operation: use UpdateCase


class CallError(BulkUpdateError):
    """`outcome_unknown`: the request may have reached the service and may still be applied
    (the client gave up waiting, or the connection broke after sending), as opposed to an
    answer (any status) or a request that never left (connection refused). `unreachable`: no
    connection to the service was made at all (refused, unresolvable name, connect timeout).
    `batch_refusal`: set on a BatchUpdateCase call's ROW errors only (see BatchRefusal)."""

    def __init__(
        self,
        kind: ErrorKind,
        code: str,
        message: str,
        *,
        retry_after_s: float | None = None,
        outcome_unknown: bool = False,
        unreachable: bool = False,
        batch_refusal: BatchRefusal | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.kind = kind
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.outcome_unknown = outcome_unknown
        self.unreachable = unreachable
        self.batch_refusal = batch_refusal
