"""The benchmark scripts BENCHMARKS.md tells readers to run still import: a refactor that
moves a name they use (as the model hub did with runner.model_client) fails here, not
when somebody tries to reproduce a figure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# Imports every script (each runs its work only under `if __name__ == "__main__"`) in one
# fresh interpreter, benchmarks/ first on the path as when a script is run; prints the
# ones that fail with their error.
IMPORT_ALL = """
import importlib, sys, traceback
sys.path.insert(0, sys.argv[1])
failed = 0
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except BaseException:
        failed += 1
        print(name, traceback.format_exc(limit=1).strip().splitlines()[-1])
sys.exit(1 if failed else 0)
"""


def test_every_benchmark_script_imports() -> None:
    names = sorted(p.stem for p in BENCHMARKS.glob("*.py"))
    assert "headroom" in names and "compare_optimizers" in names
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, str(BENCHMARKS), *names],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
