"""Telling the user how the run goes: a tqdm bar (rows, rate, ETA, throttles, current rate) on a
terminal, periodic structured `progress` events otherwise.

Presentation only: it reads the engine's progress snapshots and never changes the run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

import structlog
from tqdm import tqdm

log = structlog.get_logger("bulkupdate")
LOG_EVERY_S = 10.0


class ProgressSink:
    """Receives engine events. Bar by input bytes when the size is known (gives an ETA)."""

    def __init__(self, *, bar: bool | None = None) -> None:
        self._bar_wanted = sys.stderr.isatty() if bar is None else bar
        self._bar: tqdm[Any] | None = None
        self._last_log_s = 0.0
        self._done_bytes = 0

    def start(self, *, total_bytes: int | None, done_bytes: int) -> None:
        self._done_bytes = done_bytes
        if self._bar_wanted:
            self._bar = tqdm(
                total=total_bytes,
                initial=done_bytes if total_bytes else 0,
                unit="B",
                unit_scale=True,
                desc="bulkupdate",
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def event(self, name: str, data: Mapping[str, Any]) -> None:
        if name != "progress":
            log.warning(name, **data)
            return
        if self._bar is not None:
            offset = int(data.get("resume_offset", self._done_bytes))
            if self._bar.total:
                self._bar.update(max(0, offset - self._bar.n))
            self._bar.set_postfix(
                applied=data.get("applied"),
                failed=data.get("failed"),
                throttles=data.get("throttles"),
                rate=f"{data.get('rate_per_s')}/s",
                refresh=False,
            )
            return
        now_s = time.monotonic()
        if now_s - self._last_log_s >= LOG_EVERY_S:
            self._last_log_s = now_s
            log.info("progress", **data)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
