"""The before-images part of the checkpoint contract, against every store alike (memory, SQLite,
DynamoDB on a moto server): first values kept, last writes recorded, committed with their batch."""

from __future__ import annotations

import pytest

from bulkupdate.checkpoint.images import EMPTY, FieldImage, ImageChange
from bulkupdate.checkpoint.store import CheckpointError, CheckpointStore
from bulkupdate.models import RowStatus
from tests.functional.test_checkpoint_contract import (  # noqa: F401 - fixtures
    CommitFault,
    clock,
    dynamodb,
    fault,
    reopen,
    store,
)
from tests.unit.test_checkpoint import JOB, outcome, point

OPEN, CLOSED, PENDING = ({"stringValue": v} for v in ("open", "closed", "pending"))


def sending(case: str, field: str, before: dict, value: dict) -> ImageChange:
    return ImageChange(case, field, before, value, applied=False)


def applied(case: str, field: str, before: dict, value: dict) -> ImageChange:
    return ImageChange(case, field, before, value, applied=True)


async def images(checkpoint: CheckpointStore) -> list[FieldImage]:
    return [image async for image in checkpoint.images()]


async def test_an_accepted_write_keeps_the_value_before_it_and_the_value_written(
    store: CheckpointStore,  # noqa: F811
) -> None:
    await store.open(JOB, restart=False)
    await store.commit([], point(0), {}, [sending("case-0", "status", OPEN, CLOSED)])
    await store.commit([outcome(0)], point(1), {}, [applied("case-0", "status", OPEN, CLOSED)])
    await reopen(store)

    assert await images(store) == [FieldImage("case-0", "status", OPEN, CLOSED, None)]


async def test_a_write_whose_answer_was_never_recorded_stays_pending_after_a_crash(
    store: CheckpointStore,  # noqa: F811
) -> None:
    await store.open(JOB, restart=False)
    await store.commit([], point(0), {}, [sending("case-0", "status", EMPTY, CLOSED)])
    await reopen(store)  # the run died with the call in flight

    assert await images(store) == [FieldImage("case-0", "status", EMPTY, None, CLOSED)]


async def test_later_changes_of_a_field_keep_its_first_before_and_record_the_last_write(
    store: CheckpointStore,  # noqa: F811
) -> None:
    await store.open(JOB, restart=False)
    first = [sending("case-1", "status", OPEN, CLOSED), applied("case-1", "status", OPEN, CLOSED)]
    await store.commit([outcome(0)], point(1), {}, first)
    # The next row of the case read CLOSED before it sent PENDING; one commit holds both steps.
    later = [
        sending("case-1", "status", CLOSED, PENDING),
        applied("case-1", "status", CLOSED, PENDING),
        sending("case-0", "title", EMPTY, OPEN),
    ]
    await store.commit([outcome(1)], point(2), {}, later)

    assert await images(store) == [
        FieldImage("case-0", "title", EMPTY, None, OPEN),
        FieldImage("case-1", "status", OPEN, PENDING, None),
    ]


async def test_a_write_sent_after_an_accepted_one_keeps_both_the_accepted_and_the_pending(
    store: CheckpointStore,  # noqa: F811
) -> None:
    await store.open(JOB, restart=False)
    changes = [
        applied("case-1", "status", OPEN, CLOSED),
        sending("case-1", "status", CLOSED, PENDING),
    ]
    await store.commit([outcome(0)], point(1), {}, changes)

    (image,) = await images(store)
    assert (image.after, image.pending) == (CLOSED, PENDING)
    assert image.written() == [CLOSED, PENDING]


async def test_restart_forgets_the_images_of_the_old_job(
    store: CheckpointStore,  # noqa: F811
) -> None:
    await store.open(JOB, restart=False)
    await store.commit([outcome(0)], point(1), {}, [applied("case-0", "status", OPEN, CLOSED)])
    await reopen(store, restart=True)

    assert await images(store) == []


async def test_more_changes_than_one_transaction_holds_all_come_back(
    store: CheckpointStore,  # noqa: F811
) -> None:
    await store.open(JOB, restart=False)
    changes = [applied(f"case-{i:03d}", "status", OPEN, CLOSED) for i in range(150)]
    failed = [outcome(i, RowStatus.FAILED) for i in range(3)]
    await store.commit([*failed, outcome(3)], point(4), {}, changes)

    found = await images(store)
    assert [image.case_id for image in found] == [f"case-{i:03d}" for i in range(150)]
    assert {(image.before, image.after) == (OPEN, CLOSED) for image in found} == {True}


@pytest.mark.parametrize("lands", [False, True], ids=["request-lost", "answer-lost"])
async def test_a_failed_commit_retried_with_its_batch_records_its_images_once(
    store: CheckpointStore,  # noqa: F811
    fault: CommitFault,  # noqa: F811
    lands: bool,
) -> None:
    await store.open(JOB, restart=False)
    kept = [sending("case-0", "status", OPEN, CLOSED), applied("case-0", "status", OPEN, CLOSED)]
    fault.begin(lands=lands)
    with pytest.raises(CheckpointError):
        await store.commit([outcome(0)], point(1), {}, kept)
    fault.end()
    # Retried with what happened since appended: the next row of the case read CLOSED.
    kept += [sending("case-0", "status", CLOSED, PENDING)]
    await store.commit([outcome(0)], point(1), {}, kept)

    assert await images(store) == [FieldImage("case-0", "status", OPEN, CLOSED, PENDING)]
