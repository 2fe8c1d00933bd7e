"""bulkupdate.run.commits with before-images: images written ahead of a send, recorded again with
the row's outcome, and kept whole (never doubled) when a commit fails and is retried."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkupdate.checkpoint.images import FieldImage, ImageChange
from bulkupdate.checkpoint.store import JobIdentity
from bulkupdate.models import Outcome, ResumePoint, RowStatus
from bulkupdate.run.commits import Commits
from bulkupdate.run.ordering import Frontier
from tests.fakes.checkpoint import MemoryCheckpointStore, Outage
from tests.fakes.clock import FakeClock

HIGH = {"stringValue": "high"}
LOW = {"stringValue": "low"}


class CountingStore(MemoryCheckpointStore):
    """Keeps what each commit was given; a commit may be held until a test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.commits: list[tuple[list[Outcome], list[ImageChange]]] = []
        self.hold: anyio.Event | None = None
        self.entered = anyio.Event()

    async def commit(
        self,
        outcomes: Sequence[Outcome],
        resume_point: ResumePoint,
        counters: Mapping[str, int],
        images: Sequence[ImageChange] = (),
        *,
        groups_done: Sequence[str] = (),
    ) -> None:
        self.commits.append((list(outcomes), list(images)))
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        await super().commit(outcomes, resume_point, counters, images, groups_done=groups_done)

    async def image_map(self) -> dict[tuple[str, str], FieldImage]:
        return {(i.case_id, i.field_id): i async for i in self.images()}


class Run:
    """A Commits over a store and a frontier of rows 0, 10, 20, ... (case C-i)."""

    def __init__(self, store: CountingStore, rows: int = 4) -> None:
        self.store = store
        self.clock = FakeClock()
        self.frontier = Frontier(ResumePoint())
        for i in range(rows):
            self.frontier.read(i * 10, i + 2, ResumePoint((i + 1) * 10, i + 3))
        self.events: list[str] = []
        self.gave_up: list[str] = []
        self.commits = Commits(
            store,
            self.frontier,
            self.clock,
            counters=dict,
            on_event=lambda name, data: self.events.append(name),
            give_up=self.gave_up.append,
            patience_s=60.0,
        )

    def resolve(self, row: int) -> None:
        self.frontier.resolve(row * 10)
        self.commits.add(Outcome(row * 10, row + 2, f"C-{row}", RowStatus.DONE))


def change(row: int, value: dict[str, str] = HIGH, *, applied: bool) -> ImageChange:
    return ImageChange(f"C-{row}", "priority", LOW, value, applied)


async def opened() -> CountingStore:
    store = CountingStore()
    await store.open(JobIdentity("t", "in.csv", "fp", "csv"), restart=False)
    return store


async def test_images_are_recorded_before_the_row_is_sent_then_with_its_outcome() -> None:
    run = Run(await opened())

    assert await run.commits.write_ahead([change(0, applied=False)], 0.1, lambda: False)

    # Recorded before any outcome: the value going out is pending, nothing is applied yet.
    image = (await run.store.image_map())[("C-0", "priority")]
    assert (image.before, image.after, image.pending) == (LOW, None, HIGH)
    assert (await run.store.status()).totals[RowStatus.DONE] == 0

    run.commits.add_images([change(0, applied=True)])
    run.resolve(0)
    await run.commits.flush()

    outcomes, images = run.store.commits[-1]
    assert [o.offset for o in outcomes] == [0]
    assert images == [change(0, applied=True)]  # in the same commit as the row's outcome
    image = (await run.store.image_map())[("C-0", "priority")]
    assert (image.before, image.after, image.pending) == (LOW, HIGH, None)


async def test_a_later_change_keeps_the_first_before_image() -> None:
    run = Run(await opened())
    run.commits.add_images([change(0, HIGH, applied=True)])
    await run.commits.flush()
    run.commits.add_images([ImageChange("C-0", "priority", HIGH, {"stringValue": "mid"}, True)])
    await run.commits.flush()

    image = (await run.store.image_map())[("C-0", "priority")]
    assert (image.before, image.after) == (LOW, {"stringValue": "mid"})


async def test_rows_written_ahead_together_share_one_commit() -> None:
    run = Run(await opened())
    done: list[bool] = []

    async def ahead(row: int) -> None:
        done.append(await run.commits.write_ahead([change(row, applied=False)], 0.1, lambda: False))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for row in range(3):
                tg.start_soon(ahead, row)
    assert done == [True] * 3
    assert sum(1 for _, images in run.store.commits if images) <= 2
    assert len(await run.store.image_map()) == 3


async def test_images_added_during_a_commit_wait_for_the_next_one() -> None:
    """A write-ahead that came after a commit began is not recorded by it: it must not return
    (and the row must not be sent) until a commit that took it has landed."""
    run = Run(await opened())
    run.store.hold = anyio.Event()
    returned = anyio.Event()

    async def ahead() -> None:
        assert await run.commits.write_ahead([change(1, applied=False)], 0.1, lambda: False)
        returned.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run.commits.flush)  # begins with no images, and is held
            await run.store.entered.wait()
            tg.start_soon(ahead)
            await anyio.wait_all_tasks_blocked()
            assert not returned.is_set()
            run.store.hold.set()  # the first commit lands; the next one takes the images
            run.store.hold = None
    first, second = run.store.commits
    assert first[1] == []
    assert second[1] == [change(1, applied=False)]
    assert returned.is_set()


@pytest.mark.parametrize("outage", list(Outage))
async def test_a_failed_commit_is_retried_with_its_batch_and_records_each_image_once(
    outage: Outage,
) -> None:
    run = Run(await opened())
    run.commits.add_images([change(0, applied=True), change(1, applied=False)])
    run.resolve(0)
    run.store.outage = outage

    assert not await run.commits.try_flush()
    assert run.events == ["checkpoint_commit_failed"]
    run.commits.add_images([change(2, applied=False)])  # arrives while the store is out
    run.store.outage = None
    assert await run.commits.try_flush()

    outcomes, images = run.store.commits[-1]
    assert [o.offset for o in outcomes] == [0]
    assert images == [change(0, applied=True), change(1, applied=False), change(2, applied=False)]
    stored = await run.store.image_map()
    assert {key: (i.after, i.pending) for key, i in stored.items()} == {
        ("C-0", "priority"): (HIGH, None),
        ("C-1", "priority"): (None, HIGH),
        ("C-2", "priority"): (None, HIGH),
    }
    assert (await run.store.status()).totals[RowStatus.DONE] == 1
    assert run.gave_up == []


@pytest.mark.parametrize("then", ["the run stops", "the store answers again"])
async def test_a_write_ahead_waits_out_a_failing_store(then: str) -> None:
    """The row may not be sent unrecorded: the write-ahead returns only once a commit took its
    images, or False when the run stops first."""
    run = Run(await opened())
    run.store.outage = Outage.UNSENT
    stop = False
    result: list[bool] = []

    async def ahead() -> None:
        result.append(await run.commits.write_ahead([change(0, applied=False)], 0.5, lambda: stop))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ahead)
            await anyio.wait_all_tasks_blocked()
            await run.clock.advance(1.0)
            await anyio.wait_all_tasks_blocked()
            assert result == []  # still waiting
            if then == "the run stops":
                stop = True
            else:
                run.store.outage = None
            await run.clock.advance(1.0)
    recorded = await run.store.image_map()
    if then == "the run stops":
        assert result == [False]
        assert recorded == {}
        assert run.commits.failing
    else:
        assert result == [True]
        assert set(recorded) == {("C-0", "priority")}
        assert not run.commits.failing


# A commit either lands (True) or fails, recorded or not; whatever the sequence, once the store
# answers again every image change is recorded, none twice in the commit that lands last.
failures = st.lists(st.sampled_from([None, Outage.UNSENT, Outage.UNANSWERED]), max_size=6)


@settings(max_examples=60, deadline=None)
@given(failures, st.integers(min_value=1, max_value=4))
def test_images_survive_any_run_of_failed_commits(plan: list[Outage | None], rows: int) -> None:
    async def scenario() -> None:
        run = Run(await opened(), rows)
        added: list[ImageChange] = []
        for step, outage in enumerate(plan):
            row = step % rows
            pending = change(row, {"stringValue": f"v{step}"}, applied=False)
            run.commits.add_images([pending])
            added.append(pending)
            run.store.outage = outage
            await run.commits.try_flush()
        run.store.outage = None
        assert await run.commits.try_flush()
        stored = await run.store.image_map()
        last: dict[tuple[str, str], ImageChange] = {}
        for each in added:
            last[(each.case_id, each.field_id)] = each
        assert {k: i.pending for k, i in stored.items()} == {k: c.value for k, c in last.items()}
        every = [c for _, images in run.store.commits for c in images]
        assert all(c in every for c in added)
        _, final = run.store.commits[-1]
        assert len(final) == len({repr(c) for c in final}), "a retried commit doubled its images"

    anyio.run(scenario)
