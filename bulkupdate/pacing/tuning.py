"""The pacing controller's constants in one frozen record; why each has its value is told in
`bulkupdate.pacing.adaptive` (the controller) and `bulkupdate.pacing.meter` (the measurement).

Plain data: stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RateTuning"]


@dataclass(frozen=True, slots=True)
class RateTuning:
    """The controller's constants; the modules named above say why each has its value."""

    # The cut and the way back (adaptive).
    margin: float = 0.01
    beta: float = 0.7
    fast_doubling_s: float = 4.0
    probe_gain_per_s: float = 0.0005
    probe_doubling_s: float = 30.0
    unmeasured_gain_per_s: float = 0.0005
    unmeasured_doubling_s: float = 4.0
    probe_calls_per_s: float = 10.0
    quota_gain_per_s: float = 0.00005  # with headroom: the measured quota's own regrowth
    quota_doubling_s: float = 60.0
    # When answers are evidence (adaptive).
    evidence_answers: int = 8
    evidence_s: float = 0.1
    jitter_share: float = 0.1
    measured_jitter_share: float = 0.3
    settle_s: float = 2.0
    assumed_rtt_s: float = 0.25
    # Measuring the quota (meter).
    window_s: float = 30.0
    min_samples: int = 4
    min_span_s: float = 2.0
    confident_samples: int = 20
    bound_span_s: float = 0.5
    bound_pad: float = 0.02
    count_lean: float = 0.5
    latency_weight: float = 0.1
