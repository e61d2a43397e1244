"""A fault-injecting OpenAI-compatible server for tests, on 127.0.0.1 (stdlib only).

    with fault_server(["503", "ok"]) as srv:
        llm = OpenAICompatibleLLM(srv.base_url, "fake", ...)
        ...
        assert srv.count == 2

Each POST /v1/chat/completions takes the next fault from a thread-safe script queue
(`script`, `.push(*faults)`); once it is empty, the default ("ok"). A fault is a name,
optionally with an argument after a colon ("429:3", "hang:1.5"):

  ok             200, a valid completion with usage (reply text: `reply` option, cut
                 to `max_tokens` words: a token is a word)
  429[:N]        429 with `Retry-After: N` (N defaults to the `retry_after` option)
  429_date[:N]   429 with Retry-After as an HTTP-date N seconds ahead
  500, 503       server error with a JSON error body
  401, 403, 400  client error with a JSON error body
  hang[:S]       waits S s (default `hang_seconds`, at most MAX_HANG) then answers ok
  drop           closes the socket without sending any response
  malformed      200 with a body that is not JSON
  empty_choices  200 with `"choices": []`
  truncated      200 whose Content-Length exceeds the body sent, then closes
  usage_10x      200, a valid completion whose usage reports 10 x max_tokens
                 completion tokens (a server billing more than was asked)
  huge           200 whose JSON body is HUGE_BYTES long (padding inside the reply)
  gzip           200, a valid completion sent gzip-compressed
  gzip_bomb      200, gzip-compressed, expanding to HUGE_BYTES (about 64 KiB sent)

With `echo_auth=True` the server is hostile: every error body and the malformed
body quote the Authorization header it received (to test that no key leaks).
GET /v1/models always answers 200 and consumes no fault. With `tokenize=True` (the
default), POST /extras/tokenize {"input": text} answers llama-cpp-python's way with one
token per whitespace-separated word (the rule of the usage it reports); it consumes no
fault. Every request (any path) is recorded in `.requests` (method, path, headers,
parsed JSON body) and counted; `.completions` counts the chat completion requests.
Bounded: hangs are capped and cut short at shutdown; idle keep-alive connections
time out after IDLE_TIMEOUT s and are closed at shutdown; shutdown joins every thread.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = frozenset(
    {
        "ok",
        "429",
        "429_date",
        "500",
        "503",
        "hang",
        "drop",
        "malformed",
        "empty_choices",
        "truncated",
        "401",
        "403",
        "400",
        "usage_10x",
        "huge",
        "gzip",
        "gzip_bomb",
    }
)
HUGE_BYTES = 64 * 1024 * 1024
MAX_HANG = 5.0
IDLE_TIMEOUT = 10.0
MODEL = "fault-model"

Reply = str | Callable[[dict[str, Any]], str] | None


@functools.cache
def gzip_bomb() -> bytes:
    """A gzip body that expands to HUGE_BYTES of spaces (a decompression bomb: about
    64 KiB sent), made once, on first use (about a second: a test with a short client
    timeout calls it first)."""
    return gzip.compress(b" " * HUGE_BYTES, compresslevel=9)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None when absent or not JSON
    fault: str | None  # the fault served (None for paths that take no fault)


def _parse_fault(fault: str) -> tuple[str, str | None]:
    name, sep, arg = fault.partition(":")
    if name not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(sorted(FAULTS))}")
    if sep and name not in ("429", "429_date", "hang"):
        raise ValueError(f"fault {name!r} takes no argument ({fault!r})")
    if sep:
        float(arg)  # validates now rather than in the server thread
    return name, arg if sep else None


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins the handler threads

    def __init__(self, owner: FaultServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout) makes writes fail: expected, stay quiet


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    # -- routes -------------------------------------------------------------------

    def do_GET(self) -> None:
        self._record(None, None)
        if self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self._json(404, {"error": {"message": f"no route GET {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        owner = self.server.owner
        if self.path.rstrip("/") == "/extras/tokenize" and owner.tokenize:
            self._record(body, None)
            text = body.get("input") if isinstance(body, dict) else None
            if not isinstance(text, str):
                self._json(422, {"detail": "input: field required"})
            else:
                self._json(200, {"tokens": list(range(len(text.split())))})
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._record(body, None)
            self._json(404, {"error": {"message": f"no route POST {self.path}"}})
            return
        fault = owner._next_fault()
        self._record(body, fault)
        name, arg = _parse_fault(fault)
        echo = f" (you sent {self.headers.get('Authorization')})" if owner.echo_auth else ""
        if name == "ok":
            self._json(200, owner._completion(body))
        elif name in ("429", "429_date"):
            seconds = float(arg) if arg is not None else owner.retry_after
            if name == "429":
                value = f"{seconds:g}"
            else:
                when = datetime.now(UTC) + timedelta(seconds=seconds)
                value = format_datetime(when, usegmt=True)
            limited = {"error": {"message": f"rate limited{echo}", "type": "rate_limit"}}
            self._json(429, limited, {"Retry-After": value})
        elif name in ("500", "503", "401", "403", "400"):
            error = {"error": {"message": f"injected {name}{echo}", "code": int(name)}}
            self._json(int(name), error)
        elif name == "hang":
            seconds = min(float(arg) if arg is not None else owner.hang_seconds, MAX_HANG)
            owner._stopping.wait(seconds)
            self._json(200, owner._completion(body))
        elif name == "drop":
            self._drop()
        elif name == "malformed":
            text = '{"choices": [{"message": oops, not json' + echo
            self._raw(200, text.encode(), "application/json")
        elif name == "empty_choices":
            self._json(200, {"id": "x", "object": "chat.completion", "choices": [], "usage": None})
        elif name == "usage_10x":
            reply = owner._completion(body)
            max_tokens = body.get("max_tokens", 16) if isinstance(body, dict) else 16
            reply["usage"]["completion_tokens"] = 10 * int(max_tokens)
            self._json(200, reply)
        elif name == "huge":
            self._huge()
        elif name in ("gzip", "gzip_bomb"):
            if name == "gzip":
                data = gzip.compress(json.dumps(owner._completion(body)).encode())
            else:
                data = gzip_bomb()
            self._raw(200, data, "application/json", {"Content-Encoding": "gzip"})
        elif name == "truncated":
            data = json.dumps(owner._completion(body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data) + 100))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._drop()

    # -- helpers ------------------------------------------------------------------

    def _record(self, body: Any, fault: str | None) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.owner._add(RecordedRequest(self.command, self.path, headers, body, fault))

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _raw(
        self,
        status: int,
        data: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _huge(self) -> None:
        """A valid-looking completion of HUGE_BYTES, written in chunks (a client that
        stops reading makes the writes fail: expected)."""
        head = b'{"choices": [{"message": {"role": "assistant", "content": "'
        tail = b'"}, "finish_reason": "stop"}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(HUGE_BYTES))
        self.end_headers()
        chunk = b"x" * 65536
        with contextlib.suppress(OSError):
            self.wfile.write(head)
            left = HUGE_BYTES - len(head) - len(tail)
            while left > 0 and not self.server.owner._stopping.is_set():
                self.wfile.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
            self.wfile.write(tail)
        self.close_connection = True

    def _drop(self) -> None:
        """Closes the connection at once; nothing more is sent."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class FaultServer:
    """See the module docstring. Use `fault_server(...)` rather than this directly."""

    def __init__(
        self,
        script: list[str] | None = None,
        *,
        default: str = "ok",
        reply: Reply = None,
        retry_after: float = 1,
        hang_seconds: float = 2.0,
        echo_auth: bool = False,
        tokenize: bool = True,
    ) -> None:
        _parse_fault(default)
        self.tokenize = tokenize
        self.default = default
        self.reply = reply
        self.retry_after = retry_after
        self.hang_seconds = min(hang_seconds, MAX_HANG)
        self.echo_auth = echo_auth
        self._lock = threading.Lock()
        self._script: deque[str] = deque()
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self.push(*(script or []))
        self._httpd = _Server(self)
        self.port = int(self._httpd.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.url = f"{self.base_url}/chat/completions"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fault-server-{self.port}",
            daemon=True,
        )

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving, cuts hangs short, closes open connections, joins every thread."""
        self._stopping.set()
        if self._thread.is_alive():
            self._httpd.shutdown()
        with self._lock:
            open_connections = list(self._connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- script and records ---------------------------------------------------------

    def push(self, *faults: str) -> None:
        """Appends faults to the script (each is served to one completion request)."""
        for fault in faults:
            _parse_fault(fault)
        with self._lock:
            self._script.extend(faults)

    @property
    def pending(self) -> list[str]:
        with self._lock:
            return list(self._script)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def count(self) -> int:
        """Requests received (all paths)."""
        with self._lock:
            return len(self._requests)

    @property
    def completions(self) -> int:
        """Chat completion requests received."""
        return sum(r.fault is not None for r in self.requests)

    def faults_served(self) -> list[str | None]:
        return [r.fault for r in self.requests]

    # -- used by the handler ----------------------------------------------------------

    def _next_fault(self) -> str:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def _add(self, record: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(record)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _completion(self, body: Any) -> dict[str, Any]:
        messages = body.get("messages", []) if isinstance(body, dict) else []
        if callable(self.reply):
            text = self.reply(body if isinstance(body, dict) else {})
        elif self.reply is not None:
            text = self.reply
        else:
            users = [m.get("content", "") for m in messages if m.get("role") == "user"]
            text = f"echo: {users[-1]}" if users else "echo: (no user message)"
        finish = "stop"
        limit = body.get("max_tokens") if isinstance(body, dict) else None
        if isinstance(limit, int) and len(text.split()) > limit:  # a token is a word
            text, finish = " ".join(text.split()[:limit]), "length"
        prompt = sum(len(str(m.get("content", "")).split()) + 4 for m in messages)
        completion = max(len(text.split()), 1)
        return {
            "id": "chatcmpl-fault",
            "object": "chat.completion",
            "model": body.get("model", MODEL) if isinstance(body, dict) else MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }


@contextlib.contextmanager
def fault_server(script: list[str] | None = None, **opts: Any) -> Iterator[FaultServer]:
    """A running FaultServer on a free 127.0.0.1 port; stopped on exit.
    `opts`: default, reply, retry_after, hang_seconds, echo_auth, tokenize (see
    FaultServer)."""
    server = FaultServer(script, **opts).start()
    try:
        yield server
    finally:
        server.stop()
