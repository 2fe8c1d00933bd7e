"""The project's exception tree, drawn once. Errors carry data, not just text.

    BulkUpdateError
    ├── ConfigError          bad flag, job file key or environment variable (exit 2)
    └── InputError           bad input file content: names the file, line and column or key (exit 2)

Pure: no I/O.
"""

from __future__ import annotations


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
