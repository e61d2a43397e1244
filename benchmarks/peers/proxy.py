"""A counting reverse proxy in front of the llama.cpp OpenAI-compatible server (stdlib only).

Clients use base URLs like http://127.0.0.1:PORT/<label>/<phase>/v1 (label: library and
optimizer, e.g. "dspy-miprov2-navigate"; phase: "optimize" or "test"). The proxy strips
"/<label>/<phase>", forwards the request to the upstream server, and counts per
(label, phase): requests, upstream errors, HTTP status codes, prompt and completion
tokens (from the response's `usage`), and wall time spent upstream. The counts are
rewritten atomically to a JSON file after every request; every exchange (request body,
response body, status, latency) is appended to a JSONL log when one is given.

One compatibility fix, applied the same way to every client and counted: the llama.cpp
server ignores `max_completion_tokens` (newer OpenAI clients send it) and then generates
up to the context length, so a request that has `max_completion_tokens` but no
`max_tokens` gets `max_tokens` set to the same value ("max_tokens_rewrites").

Optional hard cap: with cap_for(label) = N > 0, the (N+1)-th and later optimize-phase
requests of that label are answered with HTTP 429 and a JSON error without reaching the
server; they are counted as "refused_over_cap".

Run standalone: python proxy.py --upstream http://127.0.0.1:8080 --port 9000 --counts c.json
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

UPSTREAM_TIMEOUT = 900.0
PHASES = ("optimize", "test")


@dataclass
class Counter:
    """What the proxy saw for one (label, phase)."""

    requests: int = 0
    completed: int = 0
    errors: int = 0
    refused_over_cap: int = 0
    max_tokens_rewrites: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    upstream_seconds: float = 0.0
    status_codes: dict[str, int] = field(default_factory=dict)
    first_request_at: float | None = None
    last_request_at: float | None = None


class Counts:
    """Thread-safe counters keyed by "label/phase", persisted after every change."""

    def __init__(self, path: Path | None, log_path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, Counter] = {}
        self.path = path
        self.log_path = log_path

    def get(self, key: str) -> Counter:
        with self._lock:
            return self._data.setdefault(key, Counter())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: asdict(v) for k, v in self._data.items()}

    def update(self, key: str, fn: Callable[[Counter], None]) -> None:
        with self._lock:
            fn(self._data.setdefault(key, Counter()))
            data = {k: asdict(v) for k, v in self._data.items()}
        self._persist(data)

    def log(self, record: dict[str, Any]) -> None:
        if self.log_path is None:
            return
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock, self.log_path.open("a", encoding="utf-8") as f:
            f.write(line)

    def _persist(self, data: dict[str, Any]) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f"{self.path.name}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


def split_path(path: str) -> tuple[str, str, str] | None:
    """Path "/<label>/<phase>/v1/rest" -> (label, phase, "/v1/rest"); None if it is not one."""
    parts = path.split("/", 3)
    if len(parts) < 4 or not parts[1] or parts[2] not in PHASES:
        return None
    return parts[1], parts[2], "/" + parts[3]


def _fix_max_tokens(body: bytes) -> tuple[bytes, bool]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body, False
    if not isinstance(payload, dict):
        return body, False
    if "max_completion_tokens" in payload and "max_tokens" not in payload:
        payload["max_tokens"] = payload["max_completion_tokens"]
        return json.dumps(payload).encode("utf-8"), True
    return body, False


def _usage(body: bytes) -> tuple[int, int]:
    try:
        usage = json.loads(body).get("usage") or {}
    except (ValueError, UnicodeDecodeError, AttributeError):
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def _text(body: bytes, limit: int = 20000) -> str:
    return body[:limit].decode("utf-8", errors="replace")


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        port: int,
        upstream: str,
        counts: Counts,
        cap_for: Callable[[str], int] = lambda _label: 0,
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.upstream = upstream.rstrip("/")
        self.counts = counts
        self.cap_for = cap_for

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def base_url(self, label: str, phase: str) -> str:
        return f"{self.url}/{label}/{phase}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: ProxyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._forward(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._forward(self.rfile.read(length) if length else b"")

    def _forward(self, body: bytes) -> None:
        route = split_path(self.path)
        if route is None:
            self._reply(404, {"error": {"message": f"proxy: no /<label>/<phase> in {self.path}"}})
            return
        label, phase, rest = route
        key = f"{label}/{phase}"
        counts = self.server.counts
        counter = counts.get(key)
        counting = self.command == "POST"
        cap = self.server.cap_for(label) if phase == "optimize" else 0
        if counting and cap and counter.requests - counter.refused_over_cap >= cap:
            counts.update(key, _refused)
            message = f"proxy: budget cap of {cap} optimize-phase calls reached for {label}"
            self._reply(429, {"error": {"message": message, "type": "budget_exceeded"}})
            return
        body, rewritten = _fix_max_tokens(body) if body else (body, False)
        if counting:
            counts.update(key, lambda c: _started(c, rewritten))
        started = time.monotonic()
        status, headers, payload = self._upstream(rest, body)
        elapsed = time.monotonic() - started
        if counting:
            tokens = _usage(payload) if status == 200 else (0, 0)
            counts.update(key, lambda c: _finished(c, status, tokens, elapsed))
            counts.log(
                {
                    "t": time.time(),
                    "label": label,
                    "phase": phase,
                    "path": rest,
                    "status": status,
                    "seconds": round(elapsed, 3),
                    "request": _text(body),
                    "response": _text(payload),
                }
            )
        self._send(status, headers, payload)

    def _upstream(self, rest: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(
            self.server.upstream + rest,
            data=body if self.command == "POST" else None,
            method=self.command,
            headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
        )
        try:
            with urllib.request.urlopen(req, timeout=UPSTREAM_TIMEOUT) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers or {}), e.read()
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            message = {"error": {"message": f"proxy: upstream failed: {e}"}}
            return 502, {"Content-Type": "application/json"}, json.dumps(message).encode()

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (an adapter killed at its timeout): the call was
            # made and counted; there is no one left to answer.
            self.close_connection = True


def _refused(c: Counter) -> None:
    c.requests += 1
    c.refused_over_cap += 1
    c.status_codes["429"] = c.status_codes.get("429", 0) + 1


def _started(c: Counter, rewritten: bool) -> None:
    now = time.time()
    c.requests += 1
    c.max_tokens_rewrites += int(rewritten)
    c.first_request_at = c.first_request_at or now
    c.last_request_at = now


def _finished(c: Counter, status: int, tokens: tuple[int, int], elapsed: float) -> None:
    c.status_codes[str(status)] = c.status_codes.get(str(status), 0) + 1
    c.upstream_seconds += elapsed
    if status == 200:
        c.completed += 1
        c.prompt_tokens += tokens[0]
        c.completion_tokens += tokens[1]
    else:
        c.errors += 1


def start_proxy(
    upstream: str,
    counts: Counts,
    cap_for: Callable[[str], int] = lambda _label: 0,
    port: int = 0,
) -> ProxyServer:
    """Starts the proxy in a daemon thread; call .shutdown() to stop it."""
    server = ProxyServer(port, upstream, counts, cap_for)
    threading.Thread(target=server.serve_forever, name="peer-proxy", daemon=True).start()
    return server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8080 (no /v1)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--counts", type=Path, required=True)
    ap.add_argument("--log", type=Path)
    ap.add_argument("--cap", type=int, default=0, help="optimize-phase calls per label; 0: none")
    args = ap.parse_args()
    counts = Counts(args.counts, args.log)
    server = ProxyServer(args.port, args.upstream, counts, lambda _: args.cap)
    print(server.url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
