"""CPU time and peak memory of the processes under test, read from ``/proc`` (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    found = [pid]
    at = 0
    while at < len(found):
        tasks = Path(f"/proc/{found[at]}/task")
        at += 1
        try:
            threads = list(tasks.iterdir())
        except OSError:
            continue
        for thread in threads:
            try:
                found.extend(int(child) for child in (thread / "children").read_text().split())
            except OSError:
                continue
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of one live process (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mib(pid: int) -> float:
    """The peak resident set size (``VmHWM``) of one live process, in MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass(frozen=True, slots=True)
class Sample:
    """CPU seconds of a set of process trees at one moment, per process."""

    per_pid: dict[int, float]

    @classmethod
    def take(cls, roots: list[int]) -> Sample:
        return cls({pid: cpu_seconds(pid) for root in roots for pid in tree(root)})

    def since(self, earlier: Sample) -> float:
        """CPU seconds spent between ``earlier`` and this sample by the processes alive at this one."""
        return sum(seconds - earlier.per_pid.get(pid, 0.0) for pid, seconds in self.per_pid.items())
