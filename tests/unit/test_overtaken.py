"""Failed rows overtaken by later applied rows of their case: which cells, and the rewrite."""

from __future__ import annotations

from bulkupdate.input.framing import Record
from bulkupdate.models import Outcome, RowStatus
from bulkupdate.report.overtaken import Overtaken, find_overtaken, rewrite


def record(offset: int, **values: str | None) -> Record:
    return Record(line=offset + 2, offset=offset, end_offset=offset + 1, raw=b"", values=values)


RECORDS = [
    record(0, case_id="C-1", status="open", total="x"),  # failed
    record(1, case_id="C-2", status="new", total="1"),  # another case
    record(2, case_id="C-1", status="", total="5"),  # applied: sets total only
    record(3, case_id="C-1", status="closed", total=None),  # not applied (pending)
    record(4, case_id="C-1", status="done", total=None),  # applied: sets status
]


def test_only_applied_later_rows_of_the_same_case_overtake_and_blanks_set_nothing() -> None:
    found = find_overtaken(
        RECORDS,
        [(0, "C-1")],
        applied=lambda offset: offset != 3,
        case_id_column="case_id",
        ignored=frozenset(),
        blank_clears=False,
    )
    assert set(found) == {0}
    assert found[0].cells == {"total": "5", "status": "done"}
    assert found[0].lines == [4, 6]


def test_when_blanks_clear_a_later_blank_cell_overtakes_too() -> None:
    found = find_overtaken(
        RECORDS[:3],
        [(0, "C-1")],
        applied=lambda offset: True,
        case_id_column="case_id",
        ignored=frozenset({"total"}),
        blank_clears=True,
    )
    assert found[0].cells == {"status": ""}


def failed_row(raw: bytes) -> Outcome:
    return Outcome(0, 2, "C-1", RowStatus.FAILED, "invalid_number", "total: not a number", raw)


def test_a_csv_row_gets_its_overtaken_cells_blank_and_a_note() -> None:
    later = Overtaken({"status": "done", "total": "5"}, [4, 6])
    out = rewrite(
        failed_row(b'C-1,open,"x, y"\r\n'),
        later,
        fmt="csv",
        header=("case_id", "status", "total"),
        delimiter=",",
        blank_clears=False,
    )
    assert out.raw == b"C-1,,\r\n"
    assert out.error_message == (
        "total: not a number [status, total left blank: line 4, 6 of this case, applied later,"
        " set them]"
    )


def test_when_blanks_clear_the_csv_cell_carries_the_later_value_instead() -> None:
    out = rewrite(
        failed_row(b"C-1,open,x\n"),
        Overtaken({"status": "done"}, [6]),
        fmt="csv",
        header=("case_id", "status", "total"),
        delimiter=",",
        blank_clears=True,
    )
    assert out.raw == b"C-1,done,x\n"


def test_a_ragged_or_unreadable_row_is_left_as_it_stands() -> None:
    for raw in (b"C-1,open\n", b'C-1,"open\n'):
        row = failed_row(raw)
        out = rewrite(
            row,
            Overtaken({"status": "done"}, [6]),
            fmt="csv",
            header=("case_id", "status", "total"),
            delimiter=",",
            blank_clears=False,
        )
        assert out == row


def test_a_jsonl_record_loses_the_overtaken_keys() -> None:
    out = rewrite(
        failed_row(b'{"case_id": "C-1", "status": "open", "total": "x"}\n'),
        Overtaken({"status": "done"}, [6]),
        fmt="jsonl",
        header=None,
        delimiter=",",
        blank_clears=False,
    )
    assert out.raw == b'{"case_id": "C-1", "total": "x"}\n'
    assert out.error_message is not None
    assert "status left out" in out.error_message


def test_a_row_in_another_encoding_is_rewritten_in_that_encoding() -> None:
    later = Overtaken({"status": "clôturé"}, [4])
    out = rewrite(
        failed_row("C-1,ouvert,café\n".encode("cp1252")),
        later,
        fmt="csv",
        header=("case_id", "status", "total"),
        delimiter=",",
        blank_clears=False,
        encoding="cp1252",
    )
    assert out.raw == "C-1,,café\n".encode("cp1252")
