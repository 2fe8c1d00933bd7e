"""The emulator's token buckets on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkupdate.emulator.config import parse_quota
from bulkupdate.emulator.quotas import Bucket, Quota, QuotaTable


def test_full_bucket_admits_burst_then_refuses() -> None:
    bucket = Bucket(Quota(2, 2), now_s=0.0)
    assert [bucket.try_take(0.0) for _ in range(3)] == [True, True, False]


def test_bucket_refills_at_its_rate() -> None:
    bucket = Bucket(Quota(2, 2), now_s=0.0)
    bucket.try_take(0.0)
    bucket.try_take(0.0)
    assert not bucket.try_take(0.49)
    assert bucket.try_take(0.5)


def test_refused_requests_take_no_token() -> None:
    bucket = Bucket(Quota(1, 1), now_s=0.0)
    assert bucket.try_take(0.0)
    for _ in range(10):
        assert not bucket.try_take(0.5)
    assert bucket.try_take(1.0)


def test_unlimited_operation_is_always_admitted() -> None:
    table = QuotaTable({"UpdateCase": None, "GetCase": Quota(1, 1)}, now_s=0.0)
    assert all(table.admit("UpdateCase", 0.0) for _ in range(1000))
    assert table.admit("GetCase", 0.0)
    assert not table.admit("GetCase", 0.0)


@given(
    rate_per_s=st.floats(0.5, 500),
    burst=st.integers(1, 50),
    gaps_s=st.lists(st.floats(0, 0.2), min_size=1, max_size=300),
)
def test_admitted_never_exceed_burst_plus_rate_times_elapsed(
    rate_per_s: float, burst: int, gaps_s: list[float]
) -> None:
    bucket = Bucket(Quota(rate_per_s, burst), now_s=0.0)
    now_s = admitted = 0
    for gap_s in gaps_s:
        now_s += gap_s
        admitted += bucket.try_take(now_s)
    assert admitted <= burst + rate_per_s * now_s + 1e-9


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("UpdateCase=50/100", ("UpdateCase", Quota(50, 100))),
        ("UpdateCase=50", ("UpdateCase", Quota(50, 50))),
        ("GetCase=0.5", ("GetCase", Quota(0.5, 1))),
        ("UpdateCase=none", ("UpdateCase", None)),
    ],
)
def test_quota_flags_parse(spec: str, expected: tuple[str, Quota | None]) -> None:
    assert parse_quota(spec) == expected


@pytest.mark.parametrize("spec", ["Nope=1", "UpdateCase", "UpdateCase=fast", "UpdateCase=0"])
def test_bad_quota_flags_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_quota(spec)
