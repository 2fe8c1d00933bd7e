"""The lookup's pure core: keys of the match field, batches of at most 10 distinct keys, the
answers matched back to keys, ambiguous and unmatched keys, the one delayed retry."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkupdate.errors import ConfigError
from bulkupdate.fields.coerce import ValueRejected
from bulkupdate.lookup.keys import match_field
from bulkupdate.lookup.plan import BATCH_KEYS, LookupPlan, match_back
from bulkupdate.models import Field, FieldType, FoundCase, KeyResolution

LEGACY = Field("legacy_id", "Legacy id", FieldType.TEXT)
FIELDS = [
    LEGACY,
    Field("ticket_no", "Ticket number", FieldType.NUMBER),
    Field("vip", "VIP", FieldType.BOOLEAN),
    Field("priority", "Priority", FieldType.SINGLE_SELECT),
    Field("a", "Same", FieldType.TEXT),
    Field("b", "same", FieldType.TEXT),
]


def text(value: str) -> dict[str, str]:
    return {"stringValue": value}


@pytest.mark.parametrize(
    ("name", "field_id"),
    [("legacy_id", "legacy_id"), ("Legacy id", "legacy_id"), ("ticket number", "ticket_no")],
)
def test_the_match_field_is_named_by_id_or_name(name: str, field_id: str) -> None:
    assert match_field(FIELDS, name).field_id == field_id


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("nope", "names no field"),
        ("vip", "type Boolean"),
        ("Priority", "type SingleSelect"),
        ("SAME", "matches fields"),
    ],
)
def test_a_match_field_that_cannot_match_is_refused_naming_the_setting(
    name: str, says: str
) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        match_field(FIELDS, name)
    assert caught.value.key == "--match-field"


@pytest.mark.parametrize(
    ("raw", "text_key"), [("42", "42.0"), ("42.00", "42.0"), (" 7 ", "7.0"), ("1e3", "1000.0")]
)
def test_number_keys_are_one_key_however_the_cell_spells_them(raw: str, text_key: str) -> None:
    key = match_field(FIELDS, "ticket_no").key(raw)

    assert key.text == text_key
    assert key.value == {"doubleValue": float(text_key)}


def test_a_cell_that_is_no_value_of_the_field_is_refused() -> None:
    with pytest.raises(ValueRejected, match="invalid_number"):
        match_field(FIELDS, "ticket_no").key("T-1")


def test_batches_hold_at_most_ten_distinct_keys_in_the_order_met() -> None:
    plan = LookupPlan("legacy_id")
    for index in [*range(25), 3, 4]:  # repeated keys are searched once
        plan.want(f"K{index}", text(f"K{index}"))

    first = plan.next_batch(0.0, partial=False)
    second = plan.next_batch(0.0, partial=False)
    held = plan.next_batch(0.0, partial=False)  # 5 left: more keys may come
    last = plan.next_batch(0.0, partial=True)

    assert [k for k, _ in first] == [f"K{i}" for i in range(10)]
    assert [k for k, _ in second] == [f"K{i}" for i in range(10, 20)]
    assert held == []
    assert [k for k, _ in last] == [f"K{i}" for i in range(20, 25)]


def test_answers_settle_found_unmatched_and_ambiguous_keys() -> None:
    plan = LookupPlan("legacy_id")
    for key in ("A", "B", "C"):
        plan.want(key, text(key))
    batch = [k for k, _ in plan.next_batch(0.0, partial=True)]
    cases = [FoundCase("c1", text("A")), FoundCase("c2", text("C")), FoundCase("c3", text("C"))]

    settled = plan.found(batch, cases, 0.0)

    assert settled == [
        KeyResolution("legacy_id", "A", ("c1",)),
        KeyResolution("legacy_id", "B", ()),
        KeyResolution("legacy_id", "C", ("c2", "c3")),
    ]
    assert all(plan.final(k) for k in "ABC")
    plan.want("A", text("A"))
    assert plan.next_batch(0.0, partial=True) == []  # known: never searched again


def test_a_key_known_from_the_checkpoint_is_never_searched() -> None:
    plan = LookupPlan("legacy_id", {"A": ("c1",)})
    plan.want("A", text("A"))

    assert plan.final("A")
    assert plan.next_batch(0.0, partial=True) == []


def test_an_unmatched_key_is_searched_once_more_after_the_delay_then_fails() -> None:
    plan = LookupPlan("legacy_id", retry_after_s=5.0)
    plan.want("A", text("A"))
    batch = [k for k, _ in plan.next_batch(0.0, partial=True)]

    assert plan.found(batch, [], now_s=1.0) == []  # not final yet: its retry waits
    assert not plan.final("A")
    assert plan.next_due_s() == 6.0
    assert plan.next_batch(5.9, partial=True) == []
    again = [k for k, _ in plan.next_batch(6.0, partial=False)]  # due: goes even alone
    assert again == ["A"]
    assert plan.found(again, [], now_s=6.5) == [KeyResolution("legacy_id", "A", ())]


def test_a_key_the_lagging_index_finds_on_its_retry_is_matched() -> None:
    plan = LookupPlan("legacy_id", retry_after_s=1.0)
    plan.want("A", text("A"))
    plan.found([k for k, _ in plan.next_batch(0.0, partial=True)], [], 0.0)

    retry = [k for k, _ in plan.next_batch(1.0, partial=True)]

    assert plan.found(retry, [FoundCase("c9", text("A"))], 1.2) == [
        KeyResolution("legacy_id", "A", ("c9",))
    ]


def test_keys_a_search_did_not_answer_go_first_next_time_and_refused_ones_fail() -> None:
    plan = LookupPlan("legacy_id")
    for index in range(12):
        plan.want(f"K{index}", text(f"K{index}"))
    first = [k for k, _ in plan.next_batch(0.0, partial=False)]
    plan.again(first)
    again = [k for k, _ in plan.next_batch(0.0, partial=False)]
    plan.refused(again[:2], "ValidationException: bad filter")

    assert again == first
    assert plan.errors == {
        "K0": "ValidationException: bad filter",
        "K1": "ValidationException: bad filter",
    }
    assert plan.final("K0")


def test_cases_match_back_by_value_exactly_or_in_any_case_when_unambiguous() -> None:
    cases = [
        FoundCase("c1", text("abc")),
        FoundCase("c2", text("XY")),  # only "xy" folds to it
        FoundCase("c3", text("Q")),  # "q" and "Q": the exact one
        FoundCase("c4", None),
    ]

    assert match_back(["abc", "xy", "q", "Q"], cases) == {
        "abc": ("c1",),
        "xy": ("c2",),
        "Q": ("c3",),
    }


@given(
    keys=st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=40),
    owners=st.dictionaries(st.text(min_size=1, max_size=4), st.integers(0, 3)),
)
def test_every_key_is_settled_once_in_batches_of_at_most_ten(
    keys: list[str], owners: dict[str, int]
) -> None:
    """Whatever the keys and however many cases hold each, every distinct key is searched once
    in batches of at most BATCH_KEYS and settles with exactly the cases that hold it."""
    plan = LookupPlan("f")
    for key in keys:
        plan.want(key, text(key))
    settled: dict[str, tuple[str, ...]] = {}
    while batch := plan.next_batch(0.0, partial=True):
        assert len(batch) <= BATCH_KEYS
        names = [k for k, _ in batch]
        cases = [FoundCase(f"{k}#{n}", text(k)) for k in names for n in range(owners.get(k, 0))]
        for resolution in plan.found(names, cases, 0.0):
            assert resolution.key not in settled
            settled[resolution.key] = resolution.case_ids

    assert set(settled) == set(keys)
    for key, ids in settled.items():
        assert ids == tuple(f"{key}#{n}" for n in range(owners.get(key, 0)))
