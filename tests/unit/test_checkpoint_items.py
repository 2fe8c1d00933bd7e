"""The DynamoDB checkpoint's items without DynamoDB: packed offsets and failure pages round-trip,
commits split into transactions in offset order, and the meta item maps to attributes and back."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkupdate.checkpoint import dynamodb_items as checkpoint_items
from bulkupdate.checkpoint.dynamodb_items import (
    MetaItem,
    Truncation,
    decode_page,
    empty_meta,
    pack_offsets,
    plan_chunks,
    unpack_offsets,
)
from bulkupdate.checkpoint.store import CheckpointError, RunRecord, RunState, all_totals
from bulkupdate.models import Outcome, ResumePoint, RowStatus
from tests.unit.test_checkpoint import JOB, outcome, point

DONE, FAILED = RowStatus.DONE, RowStatus.FAILED
NOW = datetime(2025, 1, 1, tzinfo=UTC)
texts = st.text(max_size=40)
failed = st.builds(
    Outcome,
    offset=st.integers(min_value=0, max_value=2**40),
    line=st.integers(min_value=1, max_value=2**32),
    case_id=texts,
    status=st.just(FAILED),
    error_code=st.none() | texts,
    error_message=st.none() | texts,
    raw=st.none() | st.binary(max_size=200),
    attempts=st.integers(min_value=0, max_value=1000),
)


def big_failure(index: int, size: int) -> Outcome:
    raw = random.Random(index).randbytes(size)  # incompressible, so pages fill up
    return Outcome(index * 100, index + 2, f"case-{index}", FAILED, "ValidationException", "x", raw)


def decoded(chunks: list[checkpoint_items.Chunk]) -> list[Outcome]:
    return [row for chunk in chunks for _, page in chunk.pages for row in decode_page(page)]


@given(st.integers(min_value=0, max_value=2**40), st.sets(st.integers(0, 2**40), max_size=200))
def test_offsets_at_or_above_the_base_survive_packing(base: int, gaps: set[int]) -> None:
    offsets = frozenset(base + gap for gap in gaps)
    packed = pack_offsets(base, offsets)
    assert packed  # never an empty Binary, which DynamoDB refuses
    assert unpack_offsets(base, packed) == offsets


@given(st.lists(failed, max_size=30, unique_by=lambda row: row.offset))
def test_failed_rows_survive_their_pages_in_offset_order(rows: list[Outcome]) -> None:
    chunks = plan_chunks(rows)
    assert decoded(chunks) == sorted(rows, key=lambda row: row.offset)
    assert all(not chunk.truncated for chunk in chunks)


def test_done_rows_make_no_page_and_one_chunk() -> None:
    chunks = plan_chunks([outcome(2), outcome(0), outcome(1)])
    assert [(c.outcomes, c.pages) for c in chunks] == [([outcome(i) for i in range(3)], [])]


def test_a_page_of_another_format_is_refused() -> None:
    with pytest.raises(ValueError, match="failure page format"):
        decode_page(b"\x02" + b"anything")


def test_a_row_too_big_for_any_page_keeps_the_head_of_its_raw_bytes_and_says_so() -> None:
    row = big_failure(3, checkpoint_items.PAGE_BYTES + 5_000)
    assert row.raw is not None

    (chunk,) = plan_chunks([row])
    (kept,) = decoded([chunk])

    assert chunk.truncated == [Truncation(row.line, len(row.raw), len(kept.raw or b""))]
    assert kept.raw == row.raw[: len(kept.raw or b"")]
    assert kept.error_message is not None
    assert kept.error_message.startswith("x [the checkpoint kept the first ")


def test_failed_rows_overflowing_one_transaction_split_into_chunks_in_offset_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checkpoint_items, "TRANSACT_BYTES", 100_000)
    failures = [big_failure(i, 30_000) for i in range(12)]
    done = [outcome(i) for i in range(12, 15)]

    chunks = plan_chunks(list(reversed(failures + done)))

    assert len(chunks) > 1
    assert [o for chunk in chunks for o in chunk.outcomes] == failures + done
    assert decoded(chunks) == failures
    for earlier, later in pairwise(chunks):
        assert max(o.offset for o in earlier.outcomes) < min(o.offset for o in later.outcomes)
    for chunk in chunks:  # a page alone may pass the limit; a second one may not
        assert len(chunk.pages) == 1 or sum(len(page) for _, page in chunk.pages) <= 100_000


def full_meta() -> MetaItem:
    run = RunRecord(2, RunState.FINISHED, 4242, NOW, NOW + timedelta(minutes=5), {"rows": 3})
    return MetaItem(
        job=JOB,
        gen="0a1b2c3d",
        resume_point=point(3),
        resolved=frozenset({500, 700}),
        totals=all_totals({"done": 4, "failed": 1}),
        counters={"calls": 9},
        runs=2,
        run=run,
        lease_owner="host pid 1 #abcdef",
        lease_until=1_735_689_660.5,
        version=7,
        token="0123456789ab",
        created_at=NOW,
        updated_at=NOW + timedelta(minutes=5),
    )


@pytest.mark.parametrize("meta", [full_meta(), empty_meta(JOB, NOW)])
def test_the_meta_item_survives_its_attribute_map(meta: MetaItem) -> None:
    item = meta.to_item(JOB.name, "meta#0/1")
    assert (item["pk"], item["sk"]) == ({"S": JOB.name}, {"S": "meta#0/1"})
    assert MetaItem.from_item(item, "here") == meta


def test_an_item_of_a_newer_schema_is_refused() -> None:
    item = full_meta().to_item(JOB.name, "meta#0/1") | {"schema": {"N": "2"}}
    with pytest.raises(CheckpointError, match="written by a newer bulkupdate"):
        MetaItem.from_item(item, "here")


def test_recording_outcomes_counts_them_and_keeps_only_offsets_above_the_resume_point() -> None:
    meta = empty_meta(JOB, NOW)
    rows = [outcome(0), outcome(1, FAILED), outcome(3)]

    after = meta.recorded(rows, point(2), {"calls": 3}, NOW + timedelta(seconds=1))

    assert after.totals == {DONE: 2, FAILED: 1}
    assert after.resolved == {outcome(3).offset}
    assert (after.resume_point, after.counters) == (point(2), {"calls": 3})
    assert after.updated_at == NOW + timedelta(seconds=1)


def test_a_running_run_whose_lease_lapsed_reads_as_crashed() -> None:
    run = RunRecord(1, RunState.RUNNING, 4242, NOW, None, {})
    meta = replace(full_meta(), run=run)
    held = datetime.fromtimestamp(meta.lease_until - 1, UTC)
    lapsed = datetime.fromtimestamp(meta.lease_until + 1, UTC)

    assert meta.status(held).last_run == run
    assert meta.status(lapsed).last_run == replace(run, state=RunState.CRASHED)
    assert meta.status(held).resume_point == ResumePoint(300, 5)
