"""One virtual environment per peer library, at a pinned version, made on demand.

The venvs live under ~/.cache/promptascent/peers/<lib>-<version>/ and are never touched
by `make test`. A venv counts as ready once its marker file records the exact
requirement list it was installed with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CACHE = Path.home() / ".cache" / "promptascent" / "peers"


@dataclass(frozen=True)
class PeerLib:
    """A library under test: its import name, pinned version and pip requirements."""

    name: str
    version: str
    requirements: tuple[str, ...]

    @property
    def venv(self) -> Path:
        return CACHE / f"{self.name}-{self.version}"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


# Pinned to the newest release on PyPI when this benchmark was written (2026-11).
LIBS: dict[str, PeerLib] = {
    "dspy": PeerLib("dspy", "3.4.1", ("dspy==3.4.1",)),
    "gepa": PeerLib("gepa", "0.1.4", ("gepa==0.1.4", "litellm")),
    "promptolution": PeerLib("promptolution", "2.3.0", ("promptolution==2.3.0",)),
}


def ensure_venv(lib: PeerLib, log: Path | None = None) -> Path:
    """Creates lib's venv and installs its requirements unless done already; its python."""
    marker = lib.venv / "peer-requirements.json"
    wanted = list(lib.requirements)
    if marker.exists() and json.loads(marker.read_text()) == wanted and lib.python.exists():
        return lib.python
    lib.venv.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("ab") if log else None
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(lib.venv)], check=True)
        pip = [str(lib.python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True, stdout=out, stderr=out)
        subprocess.run([*pip, *wanted], check=True, stdout=out, stderr=out)
    finally:
        if out:
            out.close()
    marker.write_text(json.dumps(wanted))
    return lib.python


def installed_version(lib: PeerLib, dist: str | None = None) -> str:
    """The version pip reports inside lib's venv for `dist` (default the library)."""
    code = f"import importlib.metadata as m; print(m.version({(dist or lib.name)!r}))"
    res = subprocess.run([str(lib.python), "-c", code], capture_output=True, text=True)
    return res.stdout.strip() or "?"


if __name__ == "__main__":
    names = sys.argv[1:] or list(LIBS)
    for n in names:
        print(n, ensure_venv(LIBS[n], CACHE / f"install-{n}.log"), flush=True)
