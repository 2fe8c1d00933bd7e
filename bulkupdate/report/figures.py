"""Figures as a person reads them: rates and durations rounded to what is worth reading (`9.4/s`,
`40/s`, `0.063/s`; `2.5 s`, `17 s`, `12 min 5 s`, `2 h 5 min`).

Pure: formats numbers; what they measure is the caller's business.
"""

from __future__ import annotations

from itertools import pairwise


def rate_text(rate_per_s: float) -> str:
    """A rate without false precision: whole numbers from 10/s, one decimal from 1/s, two
    significant digits below (the slowest rates, `--rate 0.05` or a shard's share)."""
    if rate_per_s >= 9.95:
        return f"{rate_per_s:.0f}"
    if rate_per_s >= 1:
        return f"{rate_per_s:.1f}".removesuffix(".0")
    return f"{rate_per_s:.2g}"


def duration_text(duration_s: float) -> str:
    """Tenths of a second under 10 s, then whole seconds, then two units at most (`12 min 5 s`,
    `2 h 5 min`, `3 d 4 h`): a run at the default quota can last days."""
    if duration_s < 9.95:
        return f"{max(0.0, duration_s):.1f}".removesuffix(".0") + " s"
    seconds = round(duration_s)
    if seconds < 60:
        return f"{seconds} s"
    units = ((86_400, "d"), (3_600, "h"), (60, "min"), (1, "s"))
    for (size, name), (smaller_size, smaller_name) in pairwise(units):
        if seconds >= size:
            whole, rest = divmod(seconds, size)
            smaller = rest // smaller_size
            return f"{whole} {name} {smaller} {smaller_name}" if smaller else f"{whole} {name}"
    return f"{seconds} s"
