"""The match field and its keys: which fields can find a case, and a cell's value as the key
the search sends (the field's own type) and the checkpoint keeps (its canonical text).

Pure: no I/O. Errors name the setting (`--match-field`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bulkupdate.errors import ConfigError
from bulkupdate.fields.coerce import ValueRejected, make_coercer
from bulkupdate.models import Field, FieldType, WireValue

SETTING = "--match-field"
# Types whose values can tell one case from another. Boolean and SingleSelect hold a handful of
# values shared by many cases; DateTime's wire form is the domain's undocumented choice.
MATCHABLE = (FieldType.TEXT, FieldType.NUMBER, FieldType.URL, FieldType.USER)


@dataclass(frozen=True, slots=True)
class MatchKey:
    text: str  # canonical: the same key however the cell spelled it ("42", "42.0")
    value: WireValue  # as SearchCases' equalTo takes it


def canonical(value: WireValue | None) -> str | None:
    """The key a field value stands for; None for no value."""
    if not value:
        return None
    if "doubleValue" in value:
        return repr(float(value["doubleValue"]))
    for member in ("stringValue", "userArnValue"):
        if isinstance(value.get(member), str):
            return str(value[member])
    return None


class MatchField:
    """The field whose value names each row's case."""

    __slots__ = ("_coerce", "field")

    def __init__(self, field: Field) -> None:
        self.field = field
        self._coerce = make_coercer(field, None)

    @property
    def field_id(self) -> str:
        return self.field.field_id

    def key(self, raw: object) -> MatchKey:
        """The key a cell holds; raises ValueRejected when it cannot be a value of the field."""
        value = self._coerce(raw)
        text = canonical(value)
        if value is None or text is None:
            raise ValueRejected("missing_case_id", "no key")
        return MatchKey(text, value)


def match_field(fields: Sequence[Field], name: str) -> MatchField:
    """The domain's field `name` names (an id, else a name, any case when unambiguous);
    ConfigError naming the setting when there is none or its type cannot match cases."""
    chosen = [f for f in fields if f.field_id == name]
    if not chosen:
        chosen = [f for f in fields if f.name == name]
    if not chosen:
        chosen = [f for f in fields if f.name.strip().casefold() == name.strip().casefold()]
    if not chosen:
        raise ConfigError(SETTING, f"{name!r} names no field of the domain (by id or name)")
    if len(chosen) > 1:
        shown = ", ".join(f"{f.name!r} ({f.field_id})" for f in chosen)
        raise ConfigError(SETTING, f"{name!r} matches fields {shown}; give its field id")
    field = chosen[0]
    if field.type not in MATCHABLE:
        kinds = ", ".join(t.value for t in MATCHABLE)
        raise ConfigError(
            SETTING,
            f"field {field.field_id!r} is of type {field.type.value}, whose values cannot tell "
            f"cases apart; give a field of type {kinds}",
        )
    return MatchField(field)
