"""Telling a service outage from a row the service cannot take.

A row that keeps getting 5xx, timeouts or refused connections while other calls succeed is that
row's problem: it fails as `retries_exhausted` after --max-attempts. When such failures are most
of what the service answers, or nothing has succeeded for a while, the service (or the way to
it) is down: then no row is failed for it. Calls pause, one probe goes out now and then, the
first answer ends the outage, and the run gives up resumably after --outage-timeout.

Pure: stdlib only. No I/O, no sleeping; callers pass the time in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Tell = Callable[[str, Mapping[str, Any]], None]


@dataclass(frozen=True, slots=True)
class OutageRule:
    """When answers mean an outage. Any answer that is not a transient failure (accepted,
    throttled, rejected) shows the service is up."""

    quiet_s: float = 10.0  # nothing but transient failures for this long...
    min_failures: int = 3  # ...and at least this many of them
    window: int = 20  # or, of the last `window` answers,
    failed_share: float = 0.8  # at least this share failed transiently
    probe_interval_s: float = 5.0  # during an outage, one call this often

    def __post_init__(self) -> None:
        if self.window < 1 or not 0.0 < self.failed_share <= 1.0 or self.min_failures < 1:
            raise ValueError("an outage needs window >= 1, 0 < failed_share <= 1, failures >= 1")


class OutageWatch:
    """Watches the answers of every call of a run; says whether the service is out."""

    __slots__ = (
        "_failures_since_up",
        "_last_up_s",
        "_next_probe_s",
        "_probing",
        "_recent",
        "_rule",
        "_tell",
        "since_s",
    )

    def __init__(
        self, now_s: float, rule: OutageRule | None = None, tell: Tell | None = None
    ) -> None:
        self._rule = rule or OutageRule()
        self._tell = tell  # told `outage_started` and `outage_ended`
        self._recent: deque[bool] = deque(maxlen=self._rule.window)  # True: failed transiently
        self._last_up_s = now_s  # the start counts as up: nothing failed yet
        self._failures_since_up = 0
        self._probing = False
        self._next_probe_s = now_s
        self.since_s: float | None = None  # when the current outage began; None: no outage

    @property
    def active(self) -> bool:
        return self.since_s is not None

    def up(self, now_s: float) -> None:
        """The service answered something other than a transient failure."""
        if self.since_s is not None and self._tell is not None:
            self._tell("outage_ended", {"lasted_s": round(now_s - self.since_s, 3)})
        self._recent.append(False)
        self._last_up_s = now_s
        self._failures_since_up = 0
        self._probing = False
        self.since_s = None

    def failed(self, now_s: float) -> bool:
        """A call failed transiently (5xx, timeout, connection). True when the service is now
        (or still) out: the row should not use up an attempt for it."""
        rule = self._rule
        self._recent.append(True)
        self._failures_since_up += 1
        self._probing = False
        if self.since_s is None:
            quiet = (
                now_s - self._last_up_s >= rule.quiet_s
                and self._failures_since_up >= rule.min_failures
            )
            recent = self._recent
            mostly = len(recent) == rule.window and sum(recent) >= rule.failed_share * len(recent)
            if quiet or mostly:
                self.since_s = now_s
                self._next_probe_s = now_s + rule.probe_interval_s
                if self._tell is not None:
                    self._tell("outage_started", {"probe_interval_s": rule.probe_interval_s})
        return self.since_s is not None

    def may_send(self, now_s: float) -> bool:
        """Whether a call may go now: always outside an outage; during one, a single probe at a
        time, at most one per probe interval (the call then goes, and its answer decides)."""
        if self.since_s is None:
            return True
        if self._probing or now_s < self._next_probe_s:
            return False
        self._probing = True
        self._next_probe_s = now_s + self._rule.probe_interval_s
        return True

    def not_sent(self) -> None:
        """A call `may_send` let go did not go after all (the run stopped, or sending paused):
        the next probe need not wait for its answer."""
        self._probing = False

    def up_since(self, then_s: float) -> bool:
        """Whether the service has answered (not a transient failure) after `then_s`: only
        then is a row that keeps failing known to be the row's problem."""
        return self._last_up_s > then_s

    def lasted_s(self, now_s: float) -> float:
        """How long the current outage has lasted (0 when there is none)."""
        return 0.0 if self.since_s is None else now_s - self.since_s
