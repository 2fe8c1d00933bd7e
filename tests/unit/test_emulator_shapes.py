"""Request validation from the botocore service model, worded as AWS words it."""

from __future__ import annotations

from typing import Any

import pytest

from bulkupdate.aws.model import service_model
from bulkupdate.emulator.errors import ValidationError
from bulkupdate.emulator.shapes import RequestValidator

VALIDATOR = RequestValidator(service_model())


def update(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "domainId": "d",
        "caseId": "c",
        "fields": [{"id": "f", "value": {"stringValue": "x"}}],
    }
    params.update(overrides)
    return params


def test_a_well_formed_update_passes() -> None:
    VALIDATOR.validate("UpdateCase", update())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (update(domainId=""), "Value '' at 'domainId' failed to satisfy constraint: Member must"),
        (update(caseId="c" * 501), "at 'caseId' failed to satisfy constraint"),
        (
            {"domainId": "d", "caseId": "c"},
            "at 'fields' failed to satisfy constraint: Member must not be null",
        ),
        (update(fields=[{"id": "f"}]), "at 'fields.1.member.value'"),
        (update(fields=[{"id": "f", "value": {"doubleValue": "1"}}]), "must be a number"),
        (update(fields=[{"id": "f", "value": {"booleanValue": 1}}]), "must be a boolean"),
        (update(performedBy={"customEntity": "bad\nname"}), "regular expression pattern"),
        (update(performedBy={}), "exactly one"),
    ],
)
def test_malformed_updates_are_refused_with_the_path(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=r"validation errors? detected") as raised:
        VALIDATOR.validate("UpdateCase", params)
    assert message in raised.value.message


def test_every_problem_is_counted() -> None:
    with pytest.raises(ValidationError) as raised:
        VALIDATOR.validate("UpdateCase", update(domainId="", caseId=""))
    assert raised.value.message.startswith("2 validation errors detected")


def test_enums_and_integer_ranges_come_from_the_model() -> None:
    with pytest.raises(ValidationError, match="enum value set"):
        VALIDATOR.validate("CreateField", {"domainId": "d", "name": "n", "type": "Colour"})
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        VALIDATOR.validate("ListFields", {"domainId": "d", "maxResults": 101})


def test_recursive_filters_are_checked_all_the_way_down() -> None:
    bad = {"andAll": [{"not": {"field": {"equalTo": {"id": "", "value": {"stringValue": "x"}}}}}]}
    with pytest.raises(ValidationError, match=r"filter\.andAll\.1\.member\.not\.field"):
        VALIDATOR.validate("SearchCases", {"domainId": "d", "filter": bad})
