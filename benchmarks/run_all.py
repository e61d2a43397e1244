"""Runs the three benchmarks in turn (`make bench`); each writes benchmarks/results/*.json."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("cached_call_overhead.py", "eval_throughput.py", "warm_rerun.py")


def main() -> int:
    status = 0
    for script in SCRIPTS:
        print(f"\n=== {script} ===", flush=True)
        status |= subprocess.run([sys.executable, str(HERE / script)], check=False).returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
