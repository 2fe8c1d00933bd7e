"""Crash anywhere, resume, and the final state equals the last row per case: the checkpoint
protocol (per-case lanes, resume frontier, batches committed whole) on a model, with hypothesis.

The model plays the engine's moves in any order hypothesis picks: read a record, finish a call,
commit a batch, or crash (losing the uncommitted batch and the calls in flight).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkupdate.models import ResumePoint
from bulkupdate.run.ordering import CaseLanes, Frontier


@dataclass
class Store:
    """What a checkpoint keeps: the resume point and resolved offsets at or after it."""

    point: int = 0
    resolved: set[int] = field(default_factory=set)
    done: set[int] = field(default_factory=set)  # every offset ever committed as done


@dataclass
class Run:
    rows: list[str]  # case id of each record; record i has offset i
    store: Store
    frontier: Frontier
    lanes: CaseLanes[int] = field(default_factory=CaseLanes)
    next_offset: int = 0
    in_flight: list[int] = field(default_factory=list)
    batch: list[int] = field(default_factory=list)

    @classmethod
    def resume(cls, rows: list[str], store: Store) -> Run:
        run = cls(rows, store, Frontier(ResumePoint(store.point, store.point + 1)))
        run.next_offset = store.point
        return run

    def read(self) -> None:
        while self.next_offset < len(self.rows) and self.next_offset in self.store.resolved:
            self.next_offset += 1
            self.frontier.skip(ResumePoint(self.next_offset, self.next_offset + 1))
        if self.next_offset >= len(self.rows):
            return
        offset = self.next_offset
        self.next_offset += 1
        self.frontier.read(offset, offset + 1, ResumePoint(offset + 1, offset + 2))
        if self.lanes.admit(self.rows[offset], offset):
            self.in_flight.append(offset)

    def finish(self, index: int, server: dict[str, int], sent: list[int]) -> None:
        offset = self.in_flight.pop(index % len(self.in_flight))
        server[self.rows[offset]] = offset  # the service applies the update
        sent.append(offset)
        self.batch.append(offset)
        self.frontier.resolve(offset)
        following = self.lanes.release(self.rows[offset])
        if following is not None:
            self.in_flight.append(following)

    def commit(self) -> None:
        point = self.frontier.resume_point().offset
        store = self.store
        store.done.update(self.batch)
        store.resolved = {o for o in store.resolved | set(self.batch) if o >= point}
        store.point = point
        self.batch = []
        # Never a later row of a case recorded done while an earlier one is not.
        for offset in store.done:
            earlier = [o for o in range(offset) if self.rows[o] == self.rows[offset]]
            assert all(o in store.done for o in earlier)

    def finished(self) -> bool:
        return self.next_offset >= len(self.rows) and not self.in_flight and not self.lanes.waiting


moves = st.lists(
    st.one_of(
        st.just(("read", 0)),
        st.tuples(st.just("finish"), st.integers(0, 50)),
        st.just(("commit", 0)),
        st.just(("crash", 0)),
    ),
    max_size=400,
)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.sampled_from("ABCDE"), min_size=1, max_size=40), script=moves)
def test_crash_anywhere_then_resume_ends_in_the_last_row_per_case(
    rows: list[str], script: list[tuple[str, int]]
) -> None:
    store, server, sent = Store(), {}, []
    run = Run.resume(rows, store)
    crashes = 0
    for move, argument in script:
        if move == "read":
            run.read()
        elif move == "finish" and run.in_flight:
            run.finish(argument, server, sent)
        elif move == "commit":
            run.commit()
        elif move == "crash":
            crashes += 1
            run = Run.resume(rows, store)
    # The last run goes to the end undisturbed.
    while not run.finished():
        run.read()
        while run.in_flight:
            run.finish(0, server, sent)
    run.commit()
    expected = {case: offset for offset, case in enumerate(rows)}
    assert server == expected
    assert store.done == set(range(len(rows)))
    # Every row was sent at least once; repeats only after crashes lost their record.
    assert set(sent) == set(range(len(rows)))
    if crashes == 0:
        assert len(sent) == len(rows)
