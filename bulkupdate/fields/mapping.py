"""A job file's column mapping: renamed and ignored input columns, per-field value maps, and
constant fields set on every row. Parsed and checked here; applied by `schema.ColumnMap`.

Pure: stdlib only. Errors name the job file's key (`values.priority.Hi`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bulkupdate.errors import ConfigError

# The job file's tables this module owns, next to the flat settings of `config`.
MAPPING_KEYS = ("columns", "ignore_columns", "values", "set")

Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """How input columns become fields. Keys naming fields may be field ids or names; they are
    resolved against the domain when the run starts (see `schema.ColumnMap`)."""

    renames: Mapping[str, str] = field(default_factory=dict)  # input column -> field id or name
    ignored: frozenset[str] = frozenset()  # input columns that set nothing
    value_maps: Mapping[str, Mapping[str, Scalar]] = field(default_factory=dict)  # field -> map
    constants: Mapping[str, Scalar] = field(default_factory=dict)  # field -> value on every row

    def __bool__(self) -> bool:
        return bool(self.renames or self.ignored or self.value_maps or self.constants)

    def target(self, column: str) -> str:
        """The field id or name an input column names once renamed."""
        return self.renames.get(column, column)


def parse_mapping(job: Mapping[str, Any], describe: Callable[[str], str]) -> FieldMapping:
    """The mapping tables of a parsed job file; `describe(key)` names a key in errors."""
    renames = _table_of(job.get("columns", {}), "columns", describe, _text)
    ignored = job.get("ignore_columns", [])
    if not isinstance(ignored, list) or not all(isinstance(c, str) and c for c in ignored):
        raise ConfigError(describe("ignore_columns"), "must be a list of column names")
    clash = sorted(set(ignored) & renames.keys())
    if clash:
        raise ConfigError(describe("ignore_columns"), f"{clash[0]!r} is also renamed in columns")
    raw_maps = job.get("values", {})
    if not isinstance(raw_maps, Mapping):
        raise ConfigError(describe("values"), "must be a table of tables ([values.FIELD])")
    value_maps = {
        name: _table_of(table, f"values.{name}", describe, _scalar)
        for name, table in raw_maps.items()
    }
    constants = _table_of(job.get("set", {}), "set", describe, _scalar)
    return FieldMapping(renames, frozenset(ignored), value_maps, constants)


def _table_of(
    table: Any, key: str, describe: Callable[[str], str], value: Callable[[Any], Scalar]
) -> dict[str, Any]:
    if not isinstance(table, Mapping):
        raise ConfigError(describe(key), "must be a table")
    parsed: dict[str, Any] = {}
    for name, item in table.items():
        if not name:
            raise ConfigError(describe(key), "has an empty key")
        try:
            parsed[name] = value(item)
        except ValueError as error:
            raise ConfigError(describe(f"{key}.{name}"), f"{item!r} {error}") from None
    return parsed


def _text(item: Any) -> str:
    if not isinstance(item, str) or not item.strip():
        raise ValueError("must be a field id or name")
    return item


def _scalar(item: Any) -> Scalar:
    if isinstance(item, float) and not math.isfinite(item):
        raise ValueError("must be a finite number")
    if not isinstance(item, str | int | float | bool):
        raise ValueError("must be a string, number or boolean")
    return item
