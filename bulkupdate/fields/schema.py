"""Which domain field each input column sets, and the UpdateCase `fields` list of one row.

Pure: no I/O. Value rules live in `coerce`; this module maps names and collects a row's problems.

    BulkUpdateError
    ├── InputError
    │   └── HeaderError        every bad CSV header column at once; the run stops before any write
    ├── ColumnError            (also LookupError) one column/key names no settable field
    ├── RowRejectedError       every problem of one row; that row alone fails
    ├── DateTimeEncodingError  (also ValueError) a GetCase value that tells no encoding
    └── ValueRejected          (also ValueError, from `coerce`) one value the service would refuse
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

from bulkupdate.errors import BulkUpdateError, ConfigError, InputError
from bulkupdate.fields.coerce import (
    EPOCH_MILLIS_THRESHOLD,
    BlankPolicy,
    Coercer,
    ValueRejected,
    coerce,
    iso_to_epoch_ms,
    make_coercer,
)
from bulkupdate.fields.hints import IGNORE_HINT, missing_case_id
from bulkupdate.fields.mapping import FieldMapping, Scalar
from bulkupdate.models import DateTimeEncoding, Field, WireValue

__all__ = [
    "DEFAULT_CASE_ID_COLUMN",
    "MAX_FIELDS_PER_UPDATE",
    "READ_ONLY_FIELD_IDS",
    "BlankPolicy",
    "ColumnError",
    "ColumnMap",
    "DateTimeEncodingError",
    "FieldUpdate",
    "HeaderError",
    "RowProblem",
    "RowRejectedError",
    "Schema",
    "ValueRejected",
    "build_update",
    "detect_datetime_encoding",
]

DEFAULT_CASE_ID_COLUMN = "case_id"
MAX_FIELDS_PER_UPDATE = 220  # UpdateCaseRequestFieldsList max (FACTS §1.3)
# System fields the service maintains itself; UpdateCase cannot set them.
READ_ONLY_FIELD_IDS = frozenset({"created_datetime", "last_updated_datetime", "reference_number"})
_MAX_REMEMBERED_REJECTIONS = 1024  # bounds memory when every record brings a new bad key


class ColumnError(BulkUpdateError, LookupError):
    """A column (CSV) or key (JSONL) that names no settable field.

    `reason_code` is one of unknown_column, ambiguous_column, read_only_field, duplicate_column,
    duplicate_field, missing_case_id_column, wrong_delimiter; `candidates` are field names or
    columns to consider.
    """

    def __init__(
        self, column: str, reason_code: str, message: str, candidates: Sequence[str] = ()
    ) -> None:
        super().__init__(f"column {column!r}: {message}")
        self.column = column
        self.reason_code = reason_code
        self.message = message
        self.candidates = tuple(candidates)


class HeaderError(InputError):
    """Every bad column of a CSV header, so one run shows them all."""

    def __init__(self, path: str, problems: Sequence[ColumnError]) -> None:
        if len(problems) == 1:  # "x.csv:1: column 'Colour': names no field ..."
            only: str | None = problems[0].column
            message = problems[0].message
        else:
            only, message = None, "; ".join(map(str, problems))
        super().__init__(path, message, line=1, column=only)
        self.problems = tuple(problems)


class DateTimeEncodingError(BulkUpdateError, ValueError):
    """A GetCase value from which the DateTime wire encoding cannot be told."""

    def __init__(self, value: object, message: str) -> None:
        super().__init__(message)
        self.value = value


@dataclass(frozen=True, slots=True)
class RowProblem:
    column: str | None  # None: the row as a whole (too many fields)
    reason_code: str
    message: str


class RowRejectedError(BulkUpdateError):
    """Everything wrong with one row; nothing of it is sent."""

    def __init__(self, problems: Sequence[RowProblem]) -> None:
        shown = (f"{p.column or '<row>'}: {p.reason_code} ({p.message})" for p in problems)
        super().__init__("; ".join(shown))
        self.problems = tuple(problems)


class FieldUpdate(TypedDict):
    """One entry of UpdateCase's `fields`."""

    id: str
    value: WireValue


def detect_datetime_encoding(value_union: Mapping[str, object]) -> DateTimeEncoding:
    """Tell the encoding from a GetCase value of a system DateTime field, e.g. created_datetime."""
    if "stringValue" in value_union:
        text = value_union["stringValue"]
        try:
            if isinstance(text, str):
                iso_to_epoch_ms(text)
                return DateTimeEncoding.ISO8601
        except ValueRejected:
            pass
    elif "doubleValue" in value_union:
        number = value_union["doubleValue"]
        # A created_datetime below 1e11 would be seconds (or 1973): mirroring it as milliseconds
        # would write dates 1000 times off, so refuse rather than guess.
        if (
            isinstance(number, int | float)
            and not isinstance(number, bool)
            and math.isfinite(number)
            and abs(number) >= EPOCH_MILLIS_THRESHOLD
        ):
            return DateTimeEncoding.EPOCH_MILLIS
    raise DateTimeEncodingError(
        value_union,
        f"cannot tell the DateTime encoding from {dict(value_union)!r}: expected "
        "{'stringValue': <ISO-8601 date-time>} or {'doubleValue': <epoch milliseconds>}",
    )


class Schema:
    """A domain's fields, indexed for column resolution, with one precomputed coercer per field."""

    __slots__ = (
        "_by_folded_name",
        "_by_id",
        "_by_name",
        "_coercers",
        "blank_policy",
        "datetime_encoding",
        "fields",
    )

    def __init__(
        self,
        fields: Sequence[Field],
        datetime_encoding: DateTimeEncoding | None,
        *,
        blank_policy: BlankPolicy = BlankPolicy.SKIP,
    ) -> None:
        self.fields = tuple(fields)
        self.datetime_encoding = datetime_encoding
        self.blank_policy = blank_policy
        self._by_id: dict[str, Field] = {}
        self._by_name: dict[str, list[Field]] = {}
        self._by_folded_name: dict[str, list[Field]] = {}
        for field in self.fields:
            if field.field_id in self._by_id:
                raise ValueError(f"duplicate field id {field.field_id!r} in the domain's fields")
            self._by_id[field.field_id] = field
            self._by_name.setdefault(field.name, []).append(field)
            self._by_folded_name.setdefault(_fold(field.name), []).append(field)
        self._coercers: dict[str, Coercer] = {
            field.field_id: make_coercer(field, datetime_encoding, blank_policy)
            for field in self.fields
            if field.field_id not in READ_ONLY_FIELD_IDS
        }

    def resolve(self, column: str) -> Field:
        """The settable field a column names: by id, else exact name, else unambiguous any-case."""
        field = self._by_id.get(column)
        if field is None:
            named = self._by_name.get(column) or self._by_folded_name.get(_fold(column))
            if not named:
                near = self._near(column)
                hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
                message = f"names no field of the domain{hint}"
                raise ColumnError(column, "unknown_column", message, near)
            if len(named) > 1:
                shown = ", ".join(f"{f.name!r} ({f.field_id})" for f in named)
                message = f"matches fields {shown}; use a field id"
                raise ColumnError(column, "ambiguous_column", message, [f.field_id for f in named])
            field = named[0]
        if field.field_id in READ_ONLY_FIELD_IDS:
            raise ColumnError(column, "read_only_field", f"{field.field_id} is read-only")
        return field

    def coerce(self, field: Field, raw: object) -> WireValue | None:
        """`raw` as this schema's encoding and blank policy send it; raises ValueRejected."""
        coercer = self._coercers.get(field.field_id)
        known = self._by_id.get(field.field_id)
        if coercer is None or (known is not field and known != field):
            return coerce(field, raw, self.datetime_encoding, self.blank_policy)
        return coercer(raw)

    def column_map(
        self, case_id_column: str = DEFAULT_CASE_ID_COLUMN, mapping: FieldMapping | None = None
    ) -> ColumnMap:
        """A map that resolves columns as they come (JSONL: every record may have other keys)."""
        return ColumnMap(self, case_id_column, mapping)

    def resolve_header(
        self,
        columns: Iterable[str],
        case_id_column: str = DEFAULT_CASE_ID_COLUMN,
        *,
        path: str = "<input>",
        mapping: FieldMapping | None = None,
    ) -> ColumnMap:
        """Resolve every CSV column up front; raise one HeaderError naming every bad column."""
        columns = list(columns)
        problems: list[ColumnError] = []
        explained: set[str] = set()  # columns a header-wide problem accounts for
        if case_id_column not in columns:
            problem = ColumnError(*missing_case_id(columns, case_id_column))
            problems.append(problem)
            explained.update(problem.candidates)
        column_map = ColumnMap(self, case_id_column, mapping)
        # field id -> what sets it: a column, or the job file's [set] table
        column_of = {update["id"]: f"set.{name}" for name, update in column_map.constants}
        seen: set[str] = set()
        for column in columns:
            if column in seen:
                problems.append(ColumnError(column, "duplicate_column", "appears twice"))
                continue
            seen.add(column)
            if column == case_id_column or column in column_map.ignored:
                continue
            try:
                field = column_map.resolve(column)
            except ColumnError as error:
                if column not in explained or error.reason_code != "unknown_column":
                    problems.append(error)
                continue
            other = column_of.setdefault(field.field_id, column)
            if other != column:
                what = "the job file's" if other.startswith("set.") else "column"
                message = f"sets {field.field_id}, as {what} {other!r} does"
                problems.append(ColumnError(column, "duplicate_field", message, (other,)))
                continue
            column_map._bind(column, field)
        if problems:
            raise HeaderError(path, problems)
        return column_map

    def _coercer(self, field: Field) -> Coercer:
        return self._coercers[field.field_id]

    def _near(self, column: str) -> list[str]:
        # Only on the error path: difflib is slow, and a header is resolved once.
        names = {
            _fold(f.name): f.name for f in self.fields if f.field_id not in READ_ONLY_FIELD_IDS
        }
        return [names[n] for n in difflib.get_close_matches(_fold(column), names, n=3)]


class ColumnMap:
    """Column -> (field id, coercer), filled up front (CSV header) or lazily (JSONL keys).

    Applies the job file's FieldMapping: renamed and ignored columns, value maps folded into
    the field's coercer, and constant fields added to every row. Raises ConfigError naming the
    job file key when a value map or constant names no field or a constant is not valid.
    """

    __slots__ = (
        "_bindings",
        "_fields",
        "_lazy",
        "_mapping",
        "_rejected",
        "_schema",
        "_value_maps",
        "case_id_column",
        "constants",
        "ignored",
    )

    def __init__(
        self, schema: Schema, case_id_column: str, mapping: FieldMapping | None = None
    ) -> None:
        self._schema = schema
        self.case_id_column = case_id_column
        self._mapping = mapping = mapping or FieldMapping()
        self.ignored = mapping.ignored
        self._value_maps: dict[str, Mapping[str, Scalar]] = {}
        named: dict[tuple[str, str], str] = {}  # (table, field id) -> the key that named it
        for name, table in mapping.value_maps.items():
            field_id = self._setting_field("values", name, named).field_id
            self._value_maps[field_id] = table
        # (job file key, update) for every constant field, coerced once
        self.constants: list[tuple[str, FieldUpdate]] = []
        for name, value in mapping.constants.items():
            field = self._setting_field("set", name, named)
            try:
                wire = schema.coerce(field, value)
            except ValueRejected as error:
                raise ConfigError(f"set.{name}", error.message) from None
            if wire is None:
                raise ConfigError(f"set.{name}", "is blank: a constant must set a value")
            self.constants.append((name, {"id": field.field_id, "value": wire}))
        self._bindings: dict[str, tuple[str, Coercer]] = {}
        self._fields: dict[str, Field] = {}
        # Set once a column was bound after the header: two keys may then name the same field,
        # which build_update must check (a validated header cannot have that).
        self._lazy = False
        # Bad JSONL keys tend to repeat on every record; remembering them skips difflib each time.
        self._rejected: dict[str, ColumnError] = {}

    @property
    def fields(self) -> Mapping[str, Field]:
        """The columns bound so far and the field each sets (excludes the case id column)."""
        return dict(self._fields)

    def resolve(self, column: str) -> Field:
        """The field an input column names once renamed by the job file; raises ColumnError."""
        target = self._mapping.target(column)
        if target == column:
            try:
                return self._schema.resolve(column)
            except ColumnError as error:
                if error.reason_code != "unknown_column":
                    raise
                message = f"{error.message}; {IGNORE_HINT}"
                raise ColumnError(column, error.reason_code, message, error.candidates) from None
        try:
            return self._schema.resolve(target)
        except ColumnError as error:
            message = f"renamed to {target!r} in the job file, which {error.message}"
            raise ColumnError(column, error.reason_code, message, error.candidates) from None

    def field(self, column: str) -> Field:
        """The field a column sets, resolving and remembering it; raises ColumnError."""
        field = self._fields.get(column)
        if field is None:
            known = self._rejected.get(column)
            if known is not None:  # a fresh error: re-raising one instance grows its traceback
                raise ColumnError(column, known.reason_code, known.message, known.candidates)
            try:
                field = self.resolve(column)
            except ColumnError as error:
                if len(self._rejected) < _MAX_REMEMBERED_REJECTIONS:
                    self._rejected[column] = error
                raise
            self._bind(column, field)
            self._lazy = True
        return field

    def _bind(self, column: str, field: Field) -> None:
        coercer = self._schema._coercer(field)
        table = self._value_maps.get(field.field_id)
        if table is not None:
            coercer = _mapped(table, coercer)
        self._bindings[column] = (field.field_id, coercer)
        self._fields[column] = field

    def _setting_field(self, table: str, name: str, named: dict[tuple[str, str], str]) -> Field:
        """The field a [values] or [set] key names; each field at most once per table."""
        try:
            field = self._schema.resolve(name)
        except ColumnError as error:
            raise ConfigError(f"{table}.{name}", error.message) from None
        other = named.setdefault((table, field.field_id), name)
        if other != name:
            message = f"names field {field.field_id}, as {table}.{other} does"
            raise ConfigError(f"{table}.{name}", message)
        return field


def _mapped(table: Mapping[str, Scalar], coercer: Coercer) -> Coercer:
    """A coercer that first replaces an input text the job file maps ("Hi" -> "high")."""

    def coerce_mapped(raw: object) -> WireValue | None:
        if isinstance(raw, str):
            mapped = table.get(raw.strip())
            if mapped is not None:
                return coercer(mapped)
        return coercer(raw)

    return coerce_mapped


def build_update(values: Mapping[str, object], column_map: ColumnMap) -> list[FieldUpdate]:
    """The `fields` of one UpdateCase call for a row, skipping blanks (under BlankPolicy.SKIP).

    Raises RowRejectedError listing every problem of the row. An empty list means nothing to send.
    """
    # Hot path: one dict lookup and one precomputed coercer call per value; no type dispatch.
    bindings = column_map._bindings
    case_id_column = column_map.case_id_column
    updates: list[FieldUpdate] = []
    columns: list[str] = []  # parallel to updates, to name the columns of a repeated field
    problems: list[RowProblem] = []
    for column, raw in values.items():
        binding = bindings.get(column)
        if binding is None:
            if column == case_id_column or column in column_map.ignored:
                continue
            try:
                column_map.field(column)
            except ColumnError as error:
                problems.append(RowProblem(column, error.reason_code, error.message))
                continue
            binding = bindings[column]
        field_id, coerce_value = binding
        try:
            value = coerce_value(raw)
        except ValueRejected as error:
            problems.append(RowProblem(column, error.reason_code, error.message))
            continue
        if value is not None:
            updates.append({"id": field_id, "value": value})
            columns.append(column)
    for name, constant in column_map.constants:
        updates.append(constant)
        columns.append(f"set.{name}")
    if column_map._lazy and len(updates) > 1:
        problems.extend(_repeated_fields(updates, columns))
    if len(updates) > MAX_FIELDS_PER_UPDATE:
        message = f"{len(updates)} fields to set; UpdateCase takes at most {MAX_FIELDS_PER_UPDATE}"
        problems.append(RowProblem(None, "too_many_fields", message))
    if problems:
        raise RowRejectedError(problems)
    return updates


def _repeated_fields(updates: list[FieldUpdate], columns: list[str]) -> list[RowProblem]:
    # Keys resolved lazily (JSONL) may repeat a field: "status" and "Status" in one record.
    first: dict[str, str] = {}
    problems = []
    for update, column in zip(updates, columns, strict=True):
        other = first.setdefault(update["id"], column)
        if other != column:
            message = f"sets {update['id']}, as {other!r} does"
            problems.append(RowProblem(column, "duplicate_field", message))
    return problems


def _fold(name: str) -> str:
    return name.strip().casefold()
