"""From a parsed input record to what the engine sends: the case id and the UpdateCase fields,
or the reason the record fails locally (it is then never sent).

Pure: no I/O. Accepts flat records and the API shape {"caseId", "fields": [{"id", "value"}]}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bulkupdate.fields.schema import (
    MAX_FIELDS_PER_UPDATE,
    ColumnError,
    ColumnMap,
    FieldUpdate,
    RowRejectedError,
    build_update,
)
from bulkupdate.input.framing import Record
from bulkupdate.models import Outcome, RowStatus

# What a failures file adds, ignored when it is fed back as input: two CSV columns, and a
# JSONL `error` member holding {"code", "message"} (a plain `error` column is a field name).
CSV_ERROR_COLUMNS = frozenset({"error_code", "error_message"})
JSON_ERROR_MEMBER = "error"
_ERROR_KEYS = CSV_ERROR_COLUMNS | {JSON_ERROR_MEMBER}
_UNION_MEMBERS = ("stringValue", "doubleValue", "booleanValue", "userArnValue")


@dataclass(slots=True)
class Row:
    """One record on its way to UpdateCase. Mutable: attempts grow as it is retried."""

    offset: int
    line: int
    case_id: str
    fields: list[FieldUpdate]
    raw: bytes
    attempts: int = 0  # calls made, of any outcome
    throttles: int = 0  # of those, throttled: they never use up --max-attempts
    transient_failures: int = 0  # 5xx, timeouts, dropped connections
    # With --match-field: the cell's key, which found `case_id`. Outcomes name the row by it, as
    # the input does (the failures file and its overtaken cells match rows by that column).
    key: str | None = None

    def outcome(
        self, status: RowStatus, code: str | None = None, message: str | None = None
    ) -> Outcome:
        failed = status is RowStatus.FAILED
        return Outcome(
            self.offset,
            self.line,
            self.case_id if self.key is None else self.key,
            status,
            code,
            message,
            self.raw if failed else None,
            self.attempts,
        )


def rejected(record: Record, case_id: str, code: str, message: str) -> Outcome:
    return Outcome(
        record.offset, record.line, case_id, RowStatus.FAILED, code, message, record.raw, 0
    )


def case_id_of(values: dict[str, Any] | None, column: str) -> str:
    """The case id a record names ("" when none): cheap, before any coercion (shards use it)."""
    if not values:
        return ""
    raw = values.get("caseId") if "fields" in values and "caseId" in values else values.get(column)
    if raw is None or isinstance(raw, bool | dict | list):
        return ""
    return str(raw).strip()


def prepare(record: Record, columns: ColumnMap) -> Row | Outcome:
    """A Row to send, or a FAILED Outcome saying why the record cannot be sent."""
    if record.error is not None:
        where = f"line {record.error.line}"
        if record.error.column is not None:
            where += f", column {record.error.column}"
        return rejected(record, "", "unreadable_record", f"{where}: {record.error.message}")
    values: dict[str, Any] = record.values or {}
    case_id = case_id_of(values, columns.case_id_column)  # before flattening, as shards see it
    explicit_clears: list[FieldUpdate] = []
    if "fields" in values and "caseId" in values:
        try:
            values, explicit_clears = _flatten_api_shape(values, columns.case_id_column)
        except _ShapeError as error:
            return rejected(record, case_id, error.code, f"line {record.line}: {error.message}")
    if not case_id:
        return rejected(
            record,
            case_id,
            "missing_case_id",
            f"line {record.line}: no case id in column {columns.case_id_column!r}",
        )
    cells = _without_error_keys(values) if values.keys() & _ERROR_KEYS else values
    try:
        fields = build_update(cells, columns)
    except RowRejectedError as error:
        codes = sorted({p.reason_code for p in error.problems})
        details = "; ".join(
            f"{p.column}: {p.message}" if p.column else p.message for p in error.problems
        )
        return rejected(record, case_id, ",".join(codes), f"line {record.line}: {details}")
    if explicit_clears:
        problem = _add_clears(fields, explicit_clears, columns)
        if problem is not None:
            return rejected(record, case_id, problem[0], f"line {record.line}: {problem[1]}")
    return Row(record.offset, record.line, case_id, fields, record.raw)


class _ShapeError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _without_error_keys(values: dict[str, Any]) -> dict[str, Any]:
    def added_by_us(key: str, value: Any) -> bool:
        if key in CSV_ERROR_COLUMNS:
            return True
        return isinstance(value, dict) and value.keys() <= {"code", "message"}

    return {k: v for k, v in values.items() if not added_by_us(k, v)}


def _add_clears(
    fields: list[FieldUpdate], clears: list[FieldUpdate], columns: ColumnMap
) -> tuple[str, str] | None:
    """Append API-shape emptyValue clears under the same rules as other fields: known field,
    set once, at most 220 per call. Returns (code, message) of the first problem."""
    seen = {update["id"] for update in fields}
    for clear in clears:
        try:
            field_id = columns.field(clear["id"]).field_id
        except ColumnError as error:
            return error.reason_code, f"{error.column}: {error.message}"
        if field_id in seen:
            return "duplicate_field", f"{clear['id']}: set more than once"
        seen.add(field_id)
        fields.append({"id": field_id, "value": clear["value"]})
    if len(fields) > MAX_FIELDS_PER_UPDATE:
        return "too_many_fields", f"{len(fields)} fields; UpdateCase takes {MAX_FIELDS_PER_UPDATE}"
    return None


def _flatten_api_shape(
    record: dict[str, Any], case_id_column: str
) -> tuple[dict[str, Any], list[FieldUpdate]]:
    """{"caseId", "fields": [{"id", "value": union}]} -> flat cells; emptyValue kept as a clear."""
    flat: dict[str, Any] = {case_id_column: record["caseId"]}
    clears: list[FieldUpdate] = []
    for item in record.get("fields") or ():
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise _ShapeError("invalid_api_shape", f"not a {{'id', 'value'}} object: {item!r}")
        field_id, value = item["id"], item.get("value")
        if field_id in flat or any(c["id"] == field_id for c in clears):
            raise _ShapeError("duplicate_field", f"{field_id}: set more than once")
        if isinstance(value, dict) and "emptyValue" in value:
            clears.append({"id": field_id, "value": {"emptyValue": {}}})
            continue
        if isinstance(value, dict):
            members = [m for m in _UNION_MEMBERS if m in value]
            if len(members) != 1:
                raise _ShapeError("invalid_api_shape", f"{field_id}: not a value union: {value!r}")
            value = value[members[0]]
        flat[field_id] = value
    return flat, clears
