"""Starts a real llama.cpp OpenAI-compatible server (`python -m llama_cpp.server`) for tests."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def llama_server(model_path: Path | str, *, timeout: float = STARTUP_TIMEOUT) -> Iterator[str]:
    """Serves `model_path` as model "local"; yields the base URL ("http://127.0.0.1:PORT/v1").

    Waits until GET /v1/models answers 200 (up to `timeout` s; on failure raises
    RuntimeError with the log tail). On exit terminates the server, then kills it.
    """
    port = free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--model_alias", "local",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_threads", "1",
        "--n_threads_batch", "1",
        "--n_ctx", "2048",
        "--interrupt_requests", "False",
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryDirectory(prefix="llama-server-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            try:
                _wait_ready(proc, base_url, log_path, timeout)
                yield base_url
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def _wait_ready(
    proc: subprocess.Popen[bytes], base_url: str, log_path: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"llama.cpp server exited with code {proc.returncode} before answering "
                f"{base_url}/models; log tail:\n{_tail(log_path)}"
            )
        try:
            if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"llama.cpp server did not answer {base_url}/models within {timeout:g} s; "
        f"log tail:\n{_tail(log_path)}"
    )
