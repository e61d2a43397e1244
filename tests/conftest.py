from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# The scripted backend is a test double, refused outside tests: every test (and every
# CLI subprocess a test starts, which inherits the environment) may use it. The tests
# of the refusal remove it.
os.environ["PROMPTASCENT_TEST_BACKENDS"] = "1"
# Tests send Ctrl-C (SIGINT) to the commands they start. A suite started in the
# background by a shell without job control inherits SIGINT ignored, and so would every
# command it starts (an ignored signal stays ignored across exec); a handled one is reset
# to the default in the child, so the commands get Ctrl-C as from a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from promptascent.llm.embedded import EmbeddedLLM

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets" / "bigbench"


@pytest.fixture(scope="session")
def embedded() -> EmbeddedLLM:
    """The real embedded model (SmolLM2-135M-Instruct), loaded once per session."""
    llm = EmbeddedLLM(n_ctx=2048)
    yield llm
    llm.close()


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every attempt to open a connection off this machine, refused and listed."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0])
            if not (host.startswith("127.") or host in ("::1", "localhost")):
                attempts.append(address)
                raise OSError("tests: no network")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts
