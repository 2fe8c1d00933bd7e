"""Request validation driven by the botocore service model: types, required members, lengths,
ranges, patterns, enums and tagged unions, reported the way AWS words it.

Pure: no I/O. Each input shape is compiled once into a checker function.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from bulkupdate.emulator.errors import ValidationError

# check(value, path, problems) appends one AWS-worded text per violated constraint.
Checker = Callable[[Any, str, list[str]], None]


def _describe(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(problems: list[str], value: Any, path: str, constraint: str) -> None:
    problems.append(
        f"Value '{_describe(value)}' at '{path}' failed to satisfy constraint: {constraint}"
    )


class RequestValidator:
    """Validates operation inputs (path parameters merged with the JSON body) against the model."""

    __slots__ = ("_checkers", "_shapes")

    def __init__(self, model: Mapping[str, Any]) -> None:
        self._shapes: Mapping[str, Any] = model["shapes"]
        self._checkers: dict[str, Checker] = {}
        for name, operation in model["operations"].items():
            if "input" in operation:
                self._checkers[name] = self._compile(operation["input"]["shape"])

    def validate(self, operation: str, params: Mapping[str, Any]) -> None:
        problems: list[str] = []
        self._checkers[operation](params, "", problems)
        if problems:
            count = len(problems)
            noun = "error" if count == 1 else "errors"
            raise ValidationError(f"{count} validation {noun} detected: " + "; ".join(problems))

    def _compile(self, shape_name: str) -> Checker:
        # Recursive shapes (CaseFilter) are compiled lazily through this cache.
        if shape_name in self._checkers:
            return self._checkers[shape_name]
        shape = self._shapes[shape_name]
        placeholder: list[Checker] = []

        def deferred(value: Any, path: str, problems: list[str]) -> None:
            placeholder[0](value, path, problems)

        self._checkers[shape_name] = deferred
        checker = self._build(shape)
        placeholder.append(checker)
        self._checkers[shape_name] = checker
        return checker

    def _build(self, shape: Mapping[str, Any]) -> Checker:
        kind = shape["type"]
        if kind == "structure":
            return self._structure(shape)
        if kind == "list":
            return self._list(shape)
        if kind == "map":
            return self._map(shape)
        if kind == "string":
            return _string(shape)
        if kind in ("integer", "long"):
            return _integer(shape)
        if kind in ("double", "float"):
            return _number
        if kind == "boolean":
            return _boolean
        return _anything

    def _structure(self, shape: Mapping[str, Any]) -> Checker:
        members = {
            name: self._compile(member["shape"]) for name, member in shape["members"].items()
        }
        required = tuple(shape.get("required", ()))
        is_union = bool(shape.get("union"))

        def check(value: Any, path: str, problems: list[str]) -> None:
            if not isinstance(value, dict):
                _fail(problems, value, path or "input", "Member must be an object")
                return
            prefix = f"{path}." if path else ""
            for name in required:
                if value.get(name) is None:
                    _fail(problems, None, prefix + name, "Member must not be null")
            set_members = 0
            for name, member_value in value.items():
                member_check = members.get(name)
                if member_value is None or member_check is None:
                    continue  # unknown members are ignored, as the service does
                set_members += 1
                member_check(member_value, prefix + name, problems)
            if is_union and set_members != 1:
                _fail(
                    problems,
                    value,
                    path or "input",
                    f"Member must have exactly one of {sorted(members)} set",
                )

        return check

    def _list(self, shape: Mapping[str, Any]) -> Checker:
        member = self._compile(shape["member"]["shape"])
        low, high = shape.get("min"), shape.get("max")

        def check(value: Any, path: str, problems: list[str]) -> None:
            if not isinstance(value, list):
                _fail(problems, value, path, "Member must be a list")
                return
            _check_length(value, len(value), low, high, path, problems)
            for index, item in enumerate(value, start=1):
                member(item, f"{path}.{index}.member", problems)

        return check

    def _map(self, shape: Mapping[str, Any]) -> Checker:
        low, high = shape.get("min"), shape.get("max")

        def check(value: Any, path: str, problems: list[str]) -> None:
            if not isinstance(value, dict):
                _fail(problems, value, path, "Member must be a map")
                return
            _check_length(value, len(value), low, high, path, problems)

        return check


def _check_length(
    value: Any, length: int, low: int | None, high: int | None, path: str, problems: list[str]
) -> None:
    if low is not None and length < low:
        _fail(problems, value, path, f"Member must have length greater than or equal to {low}")
    if high is not None and length > high:
        _fail(problems, value, path, f"Member must have length less than or equal to {high}")


def _string(shape: Mapping[str, Any]) -> Checker:
    low, high = shape.get("min"), shape.get("max")
    enum = frozenset(shape.get("enum", ()))
    pattern = re.compile(shape["pattern"], re.DOTALL) if "pattern" in shape else None

    def check(value: Any, path: str, problems: list[str]) -> None:
        if not isinstance(value, str):
            _fail(problems, value, path, "Member must be a string")
            return
        _check_length(value, len(value), low, high, path, problems)
        if enum and value not in enum:
            _fail(problems, value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        if pattern is not None and pattern.fullmatch(value) is None:
            _fail(
                problems,
                value,
                path,
                f"Member must satisfy regular expression pattern: {pattern.pattern}",
            )

    return check


def _integer(shape: Mapping[str, Any]) -> Checker:
    low, high = shape.get("min"), shape.get("max")

    def check(value: Any, path: str, problems: list[str]) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(problems, value, path, "Member must be an integer")
            return
        if low is not None and value < low:
            _fail(problems, value, path, f"Member must have value greater than or equal to {low}")
        if high is not None and value > high:
            _fail(problems, value, path, f"Member must have value less than or equal to {high}")

    return check


def _number(value: Any, path: str, problems: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(problems, value, path, "Member must be a number")
    elif not math.isfinite(value):
        _fail(problems, value, path, "Member must be a finite number")


def _boolean(value: Any, path: str, problems: list[str]) -> None:
    if not isinstance(value, bool):
        _fail(problems, value, path, "Member must be a boolean")


def _anything(value: Any, path: str, problems: list[str]) -> None:
    return None
