"""The CPU this process runs on, as Linux describes it: what decides whether int8 pays and how it must run."""

from __future__ import annotations

import functools
import platform
from pathlib import Path


@functools.cache  # read once a process: every session load and every tune cache key ask for it
def cpu() -> tuple[str, frozenset[str]]:
    """(model name, feature flags) from ``/proc/cpuinfo``; where it cannot be read, the platform's name and none."""
    model, flags = platform.processor() or platform.machine(), frozenset[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = frozenset(value.split())
    except OSError:
        pass
    return model, flags
