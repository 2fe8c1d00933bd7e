"""Telling the user how the run goes: what the job has done so far (`RunView`, also read by the
metrics endpoint), a tqdm bar on a terminal (rows done / total, rate, ETA, throttles, current
adaptive rate), periodic structured `progress` events otherwise.

Presentation only: it reads the engine's counters and never changes the run.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog
from tqdm import tqdm

from bulkupdate.report.figures import rate_text
from bulkupdate.report.stats import RunStats

log = structlog.get_logger("bulkupdate")
LOG_EVERY_S = 10.0
# Engine events that are news, not trouble: logged at info (or debug); any other is a warning.
INFO_EVENTS = frozenset({"pacing_regime"})
DEBUG_EVENTS = frozenset({"rate_decreased"})  # every cut of the adaptive rate
# At the end, how long the bar waits for a count still going on, so it can end on done/total.
FINAL_COUNT_WAIT_S = 1.0


class Running(Protocol):
    """What a view reads from the engine."""

    stats: RunStats

    def progress(self) -> dict[str, Any]: ...


class RowTotal:
    """The number of records in the input, counted in a background thread (a file's total is
    known; stdin's is not). `rows` is None until the count is done."""

    def __init__(self, count: Callable[[], int] | None) -> None:
        self.rows: int | None = None
        self._counting: threading.Thread | None = None
        if count is not None:
            self._counting = threading.Thread(target=self._count, args=(count,), daemon=True)
            self._counting.start()

    def wait(self, timeout_s: float) -> int | None:
        """The count, waiting at most `timeout_s` for it; None if it is not done by then."""
        if self._counting is not None:
            self._counting.join(timeout_s)
        return self.rows

    def _count(self, count: Callable[[], int]) -> None:
        try:
            self.rows = count()
        except Exception:  # only the bar's total is lost; the run reads on
            log.warning("row_count_failed", exc_info=True)


class RunView:
    """The job's progress across its runs: rows resolved by earlier runs plus this run's."""

    def __init__(self, engine: Running, *, resolved_before: int, total: RowTotal) -> None:
        self.engine = engine
        self.resolved_before = resolved_before
        self.total = total

    def snapshot(self) -> dict[str, Any]:
        data = self.engine.progress()
        done = self.resolved_before + data["applied"] + data["failed"] + data["unchanged"]
        total = self.total.rows
        data.update(
            rows_done=done,
            rows_total=total,
            rows_left=max(0, total - done) if total is not None else None,
        )
        return data


class ProgressSink:
    """Receives engine events; a bar of rows when the output is a terminal."""

    def __init__(self, *, bar: bool | None = None) -> None:
        self._bar_wanted = sys.stderr.isatty() if bar is None else bar
        self._bar: tqdm[Any] | None = None
        self._view: RunView | None = None
        self._last_log_s = 0.0

    def start(self, view: RunView) -> None:
        self._view = view
        if self._bar_wanted:
            self._bar = tqdm(
                total=view.total.rows,
                initial=view.resolved_before,
                unit="rows",
                desc="bulkupdate",
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def event(self, name: str, data: Mapping[str, Any]) -> None:
        if name in INFO_EVENTS:
            log.info(name, **data)
            return
        if name in DEBUG_EVENTS:
            log.debug(name, **data)
            return
        if name != "progress":
            log.warning(name, **data)
            return
        snapshot = self._view.snapshot() if self._view is not None else dict(data)
        if self._bar is not None:
            self._draw(self._bar, snapshot)
            return
        now_s = time.monotonic()
        if now_s - self._last_log_s >= LOG_EVERY_S:
            self._last_log_s = now_s
            log.info("progress", **snapshot)

    @staticmethod
    def _draw(bar: tqdm[Any], snapshot: Mapping[str, Any]) -> None:
        if bar.total is None and snapshot.get("rows_total") is not None:
            bar.total = snapshot["rows_total"]
        bar.update(max(0, snapshot.get("rows_done", bar.n) - bar.n))
        rate_per_s = snapshot.get("rate_per_s")
        bar.set_postfix(
            failed=snapshot.get("failed"),
            throttles=snapshot.get("throttles"),
            rate=f"{rate_text(rate_per_s)}/s" if rate_per_s is not None else "-",
            refresh=False,
        )

    def close(self) -> None:
        """The engine has ended: the bar shows where the run ended (its last progress event
        may be a commit old) before the summary is printed below it."""
        bar, view = self._bar, self._view
        if bar is None:
            return
        self._bar = None
        if view is not None:
            if view.total.rows is None:
                view.total.wait(FINAL_COUNT_WAIT_S)
            self._draw(bar, view.snapshot())
            bar.refresh()
        bar.close()
