"""What the benchmark ran on: CPU, ISA flags, cores, library versions, install footprints."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from importlib import metadata

from packaging.requirements import Requirement

FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "avx_vnni")
LIBRARIES = (
    "onnxpipe",
    "onnxruntime",
    "tokenizers",
    "numpy",
    "torch",
    "transformers",
    "optimum",
    "optimum-onnx",
    "openvino",
    "nncf",
    "ctranslate2",
)


def describe() -> dict:
    cpu, flags, clock = platform.processor() or "unknown", set(), None
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        cpu = m.group(1).strip() if m else cpu
        m = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
        flags = set(m.group(1).split()) if m else set()
        m = re.search(r"^cpu MHz\s*:\s*([\d.]+)$", text, re.M)
        clock = f"{float(m.group(1)) / 1000:.2f} GHz" if m else None
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "isa": [f for f in FLAGS_OF_INTEREST if f in flags],
        "clock": clock,  # as /proc/cpuinfo reads at the start: a virtual machine's may not be the boost clock
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def install_footprint(packages: list[str]) -> dict:
    """Bytes on disk of ``packages`` and everything they require, from installed metadata.

    Written by hand: pip and importlib.metadata give one distribution's files, not the closure of a
    set of packages' non-optional requirements.
    """
    seen: dict[str, int] = {}
    missing: list[str] = []
    todo = list(packages)
    while todo:
        name = _norm(todo.pop())
        if name in seen or name in missing:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        seen[name] = sum((f.size or 0) for f in (dist.files or []))
        for line in dist.requires or []:
            req = Requirement(line)
            # Optional extras and other platforms' dependencies are not part of this install.
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return {"bytes": sum(seen.values()), "packages": sorted(seen), "missing": sorted(missing)}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
