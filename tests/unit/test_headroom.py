"""--headroom: the part of the quota the job leaves to the contact centre's agents. The controller
never sends more than its share, gives way when agents need more and takes its share back when
they are done; the gate tells each change of regime; the setting is read like any other."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bulkupdate.config import resolve
from bulkupdate.errors import ConfigError
from bulkupdate.models import Shard
from bulkupdate.pacing.adaptive import AdaptiveRate, RateTuning, Regime
from bulkupdate.pacing.gate import RateGate
from bulkupdate.report.progress import ProgressSink
from bulkupdate.run.startup import Job
from tests.fakes.clock import FakeClock
from tests.unit.test_pacing import saturate

REQUIRED = {"input": "data/crm.csv", "domain_id": "d-1"}

# -- the controller ----------------------------------------------------------------------------


def test_the_job_starts_at_its_share_of_the_ceiling_with_a_floor_under_it() -> None:
    control = AdaptiveRate(ceiling_per_s=2.0, headroom=0.2)
    assert (control.rate_per_s, control.share_per_s) == (pytest.approx(1.6), pytest.approx(1.6))
    assert control.floor_per_s == pytest.approx(0.08)  # 5% of the share
    assert control.regime is Regime.SHARE


def test_throttled_while_the_service_took_its_share_the_job_gives_way_and_keeps_the_quota() -> None:
    control = AdaptiveRate(ceiling_per_s=50.0, headroom=0.2)  # sends 40/s
    # One refusal may be the job's burst meeting an agent's save; a second says they stay.
    assert not control.on_throttle(0.0, sent_s=-0.01)
    assert control.on_throttle(0.01, sent_s=0.0)
    assert control.regime is Regime.YIELDING
    assert control.rate_per_s == pytest.approx(28.0)  # x 0.7
    assert control.quota_estimate_per_s is None  # --rate stands for the quota
    # The service takes all it is sent again (the agents went home): back to the share in a
    # minute or two, and no further.
    now_s = saturate(control, 0.0, quota_per_s=28.0, seconds=60.0)
    assert 28.0 < control.rate_per_s < 40.0
    saturate(control, now_s, quota_per_s=35.0, seconds=90.0)
    assert control.rate_per_s == pytest.approx(40.0)
    assert control.regime is Regime.SHARE


def test_throttled_while_sending_well_above_what_is_accepted_the_job_measures_the_quota() -> None:
    control = AdaptiveRate(ceiling_per_s=200.0, headroom=0.2)  # sends 160/s; the quota is 50
    control.on_throttle(0.0, sent_s=-0.01)
    now_s = saturate(control, 0.0, quota_per_s=50.0, seconds=5.0)
    assert control.on_throttle(now_s + 0.01, sent_s=now_s)
    quota = control.quota_estimate_per_s
    assert quota == pytest.approx(50.0, rel=0.02)
    assert control.rate_per_s == pytest.approx(0.8 * quota)  # keeps 20% of it for others
    assert control.regime is Regime.MEASURED


def test_with_headroom_a_measured_quota_is_checked_again_only_every_few_minutes() -> None:
    control = AdaptiveRate(ceiling_per_s=200.0, headroom=0.2)
    control.on_throttle(0.0, sent_s=-0.01)
    now_s = saturate(control, 0.0, quota_per_s=50.0, seconds=5.0)
    control.on_throttle(now_s + 0.01, sent_s=now_s)
    share = control.rate_per_s
    now_s = saturate(control, now_s + 0.01, quota_per_s=40.0, seconds=120.0)
    assert control.rate_per_s < 1.03 * share  # two minutes on, still at its share
    now_s = saturate(control, now_s, quota_per_s=40.0, seconds=240.0)
    assert control.rate_per_s > 1.1 * share  # then it looks whether the quota was raised
    now_s = saturate(control, now_s, quota_per_s=50.0, seconds=30.0)  # it was not
    control.on_throttle(now_s + 0.01, sent_s=now_s)
    control.on_throttle(now_s + 0.02, sent_s=now_s + 0.01)
    # Back to its share of the quota at once, not yielding: no agents took it.
    assert control.rate_per_s == pytest.approx(share, rel=0.02)
    assert control.regime is Regime.MEASURED


@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=3.0),
            st.booleans(),
            st.floats(min_value=0.0, max_value=0.5),
        ),
        max_size=200,
    ),
    ceiling_per_s=st.floats(min_value=0.5, max_value=1000.0),
    headroom=st.floats(min_value=0.0, max_value=0.9),
)
def test_the_rate_never_exceeds_the_share_or_drops_below_the_floor(
    steps: list[tuple[float, bool, float]], ceiling_per_s: float, headroom: float
) -> None:
    control = AdaptiveRate(ceiling_per_s, headroom=headroom, tuning=RateTuning(min_span_s=0.5))
    share_per_s = ceiling_per_s * (1.0 - headroom)
    now_s = 0.0
    for gap_s, accepted, latency_s in steps:
        now_s += gap_s
        if accepted:
            control.on_accept(now_s, sent_s=now_s - latency_s)
        else:
            control.on_throttle(now_s, sent_s=now_s - latency_s)
        assert control.floor_per_s <= control.rate_per_s <= share_per_s * (1 + 1e-12)


# -- the gate tells each regime ----------------------------------------------------------------


def test_the_gate_tells_its_regime_at_start_and_each_change_with_the_rate_and_why() -> None:
    told: list[tuple[str, Mapping[str, Any]]] = []
    clock = FakeClock()
    gate = RateGate(
        50.0, 50, clock, headroom=0.2, tell=lambda name, data: told.append((name, data))
    )
    assert gate.rate_per_s == pytest.approx(40.0)
    gate.throttled(-0.01)  # agents use more than the headroom
    gate.throttled(0.0)
    gate.throttled(0.0)  # the same regime: not told again
    assert [name for name, _ in told] == ["pacing_regime", "rate_decreased", "pacing_regime"]
    start, cut, yielding = (data for _, data in told)
    assert (cut["from_per_s"], cut["rate_per_s"], cut["regime"]) == (40, 28, "yielding")
    assert start["regime"] == "share"
    assert (start["rate_per_s"], start["share_per_s"], start["headroom_percent"]) == (40, 40, 20)
    assert "20% headroom" in start["why"]
    assert yielding["regime"] == "yielding"
    assert yielding["rate_per_s"] == pytest.approx(28.0)
    assert "more than the headroom" in yielding["why"]


def test_a_change_of_regime_is_logged_as_news_and_each_cut_for_debugging() -> None:
    sink = ProgressSink(bar=False)
    with capture_logs() as logs:
        sink.event("pacing_regime", {"regime": "yielding", "rate_per_s": 28.0})
        sink.event("rate_decreased", {"from_per_s": 40.0, "rate_per_s": 28.0})
    assert [(log["event"], log["log_level"]) for log in logs] == [
        ("pacing_regime", "info"),
        ("rate_decreased", "debug"),
    ]


# -- the setting -------------------------------------------------------------------------------


def test_the_default_headroom_leaves_a_fifth_of_the_rate_to_agents() -> None:
    assert resolve(flags=REQUIRED).headroom == 20.0
    assert Job(resolve(flags=REQUIRED)).settings().headroom == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("job", "env", "flags", "headroom"),
    [
        pytest.param({"headroom": 30}, {}, {}, 30.0, id="job-file"),
        pytest.param({"headroom": 30}, {"BULKUPDATE_HEADROOM": "10%"}, {}, 10.0, id="env"),
        pytest.param({}, {"BULKUPDATE_HEADROOM": "10"}, {"headroom": "0"}, 0.0, id="flag"),
    ],
)
def test_headroom_is_read_from_the_job_file_environment_and_flags(
    job: dict[str, Any], env: dict[str, str], flags: dict[str, Any], headroom: float
) -> None:
    config = resolve(job={**REQUIRED, **job}, env=env, flags=flags)
    assert config.headroom == headroom


@pytest.mark.parametrize("value", ["100", "-5", "x", "nan", "150%"])
def test_a_headroom_that_leaves_the_job_nothing_or_is_not_a_percentage_is_refused(
    value: str,
) -> None:
    with pytest.raises(ConfigError, match="--headroom") as raised:
        resolve(flags={**REQUIRED, "headroom": value})
    assert "percentage" in str(raised.value)


def test_shards_split_the_rate_and_each_keeps_the_headroom_of_its_part() -> None:
    config = resolve(flags={**REQUIRED, "rate": 50.0, "shard": "1/4"})
    settings = Job(config).settings()
    assert config.shard == Shard(1, 4)
    assert (settings.rate_per_s, settings.headroom) == (pytest.approx(12.5), pytest.approx(0.2))
    # Four shards each at 12.5/s less 20%: the job's share of 50/s, 40/s, between them.
    assert 4 * AdaptiveRate(settings.rate_per_s, headroom=settings.headroom).share_per_s == (
        pytest.approx(40.0)
    )
