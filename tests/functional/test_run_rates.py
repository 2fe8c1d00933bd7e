"""Any positive `--rate` paces a run, however small: a rate under 0.1/s, and one shard's share of
the default 2/s over 32 shards (0.0625/s). The real command against the emulator; each run's own
rows fit in its burst, so no test waits on the slow rate. A rate that is not a usable positive
number is refused before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulkupdate.exits import EXIT_OK, EXIT_USAGE
from bulkupdate.models import Shard
from tests.functional.test_run_resume import FIRST_VALUE, Job, Row, emulator, run, update_calls

CASES = 40


def rows_of(case_numbers: list[int]) -> list[Row]:
    return [
        Row(index, f"case-{number:07d}", FIRST_VALUE + index)
        for index, number in enumerate(case_numbers)
    ]


async def test_a_shard_of_the_default_rate_over_32_shards_applies_its_rows(
    tmp_path: Path,
) -> None:
    shard = Shard(0, 32)  # 2/s over 32 shards: 0.0625/s and a burst of 1 for this one
    rows = rows_of(list(range(1, CASES + 1)))
    mine = [row.case_id for row in rows if shard.owns(row.case_id)]
    assert len(mine) == 2, "the input gives shard 0 two cases"
    async with emulator(CASES) as emu:
        job = Job(tmp_path, emu.url, rows)
        # The default burst of 2 shared by 32 leaves 1, so a burst of 64 lets both go at once.
        done = await run(job, "--rate", "2", "--burst", "64", "--shard", "0/32")

        assert done.returncode == EXIT_OK, done.stderr
        assert sorted(u["caseId"] for u in emu.service.updates) == sorted(mine)
    summary = json.loads(Path(shard.name(str(job.summary))).read_text(encoding="utf-8"))
    assert (summary["applied"], summary["other_shards"]) == (len(mine), CASES - len(mine))


async def test_a_rate_below_one_call_in_ten_seconds_applies_the_rows_in_its_burst(
    tmp_path: Path,
) -> None:
    rows = rows_of([1, 2, 3])
    async with emulator(CASES) as emu:
        job = Job(tmp_path, emu.url, rows)
        done = await run(job, "--rate", "0.05", "--burst", "3")

        assert done.returncode == EXIT_OK, done.stderr
        assert sorted(u["caseId"] for u in emu.service.updates) == [r.case_id for r in rows]
        assert job.read_summary()["applied"] == len(rows)


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(("--rate", "0"), id="zero"),
        pytest.param(("--rate", "-1"), id="negative"),
        pytest.param(("--rate", "nan"), id="nan"),
        pytest.param(("--rate", "inf"), id="infinite"),
        pytest.param(("--rate", "1e-320"), id="no-float-interval"),
        pytest.param(("--rate", "1e-305", "--shard", "0/10000"), id="shard-share-too-small"),
    ],
)
async def test_a_rate_that_cannot_pace_exits_2_naming_the_flag_before_anything_is_written(
    tmp_path: Path, flags: tuple[str, ...]
) -> None:
    async with emulator(CASES) as emu:
        job = Job(tmp_path, emu.url, rows_of([1, 2]))
        done = await run(job, *flags)

        assert done.returncode == EXIT_USAGE, done.stderr
        assert "--rate" in done.stderr
        assert update_calls(emu) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if "orders" in p.name) == ["orders.csv"]
