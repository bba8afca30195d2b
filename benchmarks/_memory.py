"""CPU peak-memory measurement for the benchmarks: peak RSS growth of a fresh child process.

CPU tensors come from the system allocator, so there is no ``max_memory_allocated``; instead each measurement
runs in a new process (``script --child ARGS``) that warms up, reads its resident size, runs the measured
work and prints ``PEAK_MB <VmHWM - resident before>``. The smallest of a few tries is kept (allocator noise).
``VmHWM`` (the high-water mark of this process image) is used rather than ``getrusage().ru_maxrss``, which
Linux carries over from the forking parent through ``exec`` and so reports the parent's peak.
"""

from __future__ import annotations

import os
import subprocess
import sys


def rss_mb() -> float:
    """Current resident set size of this process in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """High-water resident set size of this process image in MiB (``VmHWM``)."""
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def report_peak_growth(base_mb: float) -> None:
    """Child side: print the peak RSS growth over ``base_mb`` (call after the measured work)."""
    print(f"PEAK_MB {peak_rss_mb() - base_mb:.1f}", flush=True)


def child_peak_mb(script: str, child_args: list[str], threads: int, tries: int = 2) -> float:
    """Parent side: run ``script --child *child_args`` ``tries`` times and return the smallest reported growth."""
    values = []
    for _ in range(tries):
        out = subprocess.run([sys.executable, script, "--child", *child_args], capture_output=True, text=True,
                             check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        values.append(float(out.stdout.split("PEAK_MB")[-1]))
    return min(values)
