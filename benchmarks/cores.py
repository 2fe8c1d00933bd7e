"""CPU accounting for benchmarks on a shared machine: how busy given cores were, how much CPU one
process used, and waiting until other processes leave the cores alone.

Reads /proc only (Linux); starts and stops nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Collection

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def busy_s(cores: Collection[int]) -> float:
    """CPU seconds the given cores have spent on anything but idling, since boot.

    Steal time counts as busy: it is capacity another virtual machine took.
    """
    ticks = 0
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            name, *counts = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, counts[:8])
                ticks += user + nice + system + irq + softirq + steal
    return ticks / CLOCK_TICKS_PER_S


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds a live process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


async def wait_until_quiet(
    cores: Collection[int],
    busy_percent_max: float,
    patience_s: float,
    log: Callable[[str], None],
    sample_s: float = 1.0,
) -> float:
    """Wait until the cores were busy at most busy_percent_max (of one core) over one sample.

    Call it while nothing of the benchmark's own runs. Gives up after patience_s; returns the
    last sample's busy percentage either way.
    """
    waited_s = 0.0
    while True:
        before_s = busy_s(cores)
        await asyncio.sleep(sample_s)
        busy_percent = 100 * (busy_s(cores) - before_s) / sample_s
        if busy_percent <= busy_percent_max or waited_s >= patience_s:
            return busy_percent
        if waited_s == 0:
            log(f"other processes keep cores {sorted(cores)} {busy_percent:.0f}% busy; waiting")
        waited_s += sample_s
