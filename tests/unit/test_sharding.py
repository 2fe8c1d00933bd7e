"""Shards: a stable split by case id, the index from the runner, a share of the rate."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkupdate.models import Shard, parse_shard


@given(st.text(min_size=1), st.integers(min_value=1, max_value=64))
def test_every_case_belongs_to_exactly_one_shard(case_id: str, count: int) -> None:
    owners = [index for index in range(count) if Shard(index, count).owns(case_id)]
    assert len(owners) == 1


def test_the_split_is_stable_across_processes_and_releases() -> None:
    # Pinned: a change here would move cases between the shards of a running job. The hash is
    # the standard CRC-32, whose check value for "123456789" is 0xCBF43926.
    assert Shard(0xCBF43926, 0xCBF43927).owns("123456789")
    assert [i for i in range(3) if Shard(i, 3).owns("case-0000001")] == [2]
    assert [i for i in range(3) if Shard(i, 3).owns("9b8f6c1e-0c9a-4d4e-8a55-1f3a0a4d2c11")] == [0]


def test_cases_spread_evenly_over_shards() -> None:
    counts = Counter(
        next(i for i in range(4) if Shard(i, 4).owns(f"case-{n:07d}")) for n in range(20_000)
    )
    assert min(counts.values()) > 4_500


def test_the_rate_and_burst_are_shared() -> None:
    assert Shard(0, 3).rate_share(30.0, 10) == (10.0, 4)
    assert Shard(2, 4).rate_share(2.0, 2) == (0.5, 1)


def test_each_shard_gets_its_own_files() -> None:
    shard = Shard(1, 3)
    assert shard.name("out/crm.failures.csv.gz") == "out/crm.shard-1-of-3.failures.csv.gz"
    assert (
        shard.name("s3://bucket/runs/summary.json") == "s3://bucket/runs/summary.shard-1-of-3.json"
    )


@pytest.mark.parametrize(
    ("text", "env", "shard"),
    [
        ("2/3", {}, Shard(2, 3)),
        ("3", {"JOB_COMPLETION_INDEX": "1"}, Shard(1, 3)),
        ("/3", {"AWS_BATCH_JOB_ARRAY_INDEX": "0"}, Shard(0, 3)),
        ("1/2", {"JOB_COMPLETION_INDEX": "0"}, Shard(1, 2)),  # the flag's index wins
    ],
)
def test_a_shard_is_read_from_the_flag_or_the_runner(
    text: str, env: dict[str, str], shard: Shard
) -> None:
    assert parse_shard(text, env) == shard


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("3/3", {}, "not in 0..2"),
        ("x/3", {}, "not a whole number"),
        ("3", {}, "JOB_COMPLETION_INDEX"),
        ("0/0", {}, "at least 1"),
        ("3", {"AWS_BATCH_JOB_ARRAY_INDEX": "7"}, "AWS_BATCH_JOB_ARRAY_INDEX 7 is not in 0..2"),
    ],
)
def test_a_bad_shard_says_what_is_wrong(text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shard(text, env)
