"""Shared helpers for the benchmark scripts (not part of the package)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict[str, Any]:
    model, family = "", ""
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith(("CPU family", "Model:")):
                family += ("/" if family else "") + line.split(":", 1)[1].strip()
    except OSError:
        pass
    # The embedded model's numbers depend on the instruction sets llama.cpp was built
    # for (greedy outputs can differ at near-ties between builds): record them.
    try:
        build = subprocess.run(
            [str(ROOT / "scripts" / "llama-cmake-args.sh")],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        build = ""
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        import llama_cpp

        llama_version = llama_cpp.__version__
    except ImportError:
        llama_version = None
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "cpu_family_model": family,
        "llama_cmake_args": build,
        "mem_gib": mem_gib,
        "python": platform.python_version(),
        "llama_cpp_python": llama_version,
        "loadavg_at_start": os.getloadavg(),
    }


def spread(values: list[float]) -> dict[str, Any]:
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "values": list(values),
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)), line]
    for r in rows:
        out.append("  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(out)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _proc_stat_busy() -> float:
    """Seconds all CPUs spent busy since boot (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMonitor:
    """Measures, over an interval, this process's CPU seconds (with its waited-for
    children) and the CPU seconds everything else on the machine used ("foreign"):
    a busy neighbour makes a timing untrustworthy, so every timed pass records it."""

    def __enter__(self) -> CpuMonitor:
        self._t = time.perf_counter()
        self._busy = _proc_stat_busy()
        self._own = _own_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t
        busy = _proc_stat_busy() - self._busy
        self.own = _own_cpu() - self._own
        # /proc/stat ticks are coarse (10 ms): clamp tiny negative differences.
        self.foreign = max(0.0, busy - self.own)
        self.foreign_cores = self.foreign / self.wall if self.wall > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "wall_s": self.wall,
            "own_cpu_s": self.own,
            "foreign_cpu_s": self.foreign,
            "foreign_cores": self.foreign_cores,
        }


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def wait_quiet(max_wait: float, threshold: float = 0.1, window: float = 2.0) -> bool:
    """Waits (up to max_wait seconds) until the machine's other processes use less
    than `threshold` cores over a `window`-second sample. True when it got quiet."""
    deadline = time.monotonic() + max_wait
    while True:
        with CpuMonitor() as mon:
            time.sleep(window)
        if mon.foreign_cores < threshold:
            return True
        if time.monotonic() >= deadline:
            log(f"machine still busy ({mon.foreign_cores:.2f} cores used by others); going on")
            return False
        log(f"waiting for a quiet machine ({mon.foreign_cores:.2f} cores used by others)")
