"""Who may drive the web app: the token, the Host check, reads from loopback only.

- Every write (start, stop, resume, verdict, feedback, refine) needs the token the
  server printed at start, in the `X-Promptascent-Token` header or a `token` form
  field, compared in constant time. A cookie is never enough, so a page on another
  site cannot make the browser write (CSRF); the token is never put in a page.
- Reads are allowed without the token only from a loopback address; from anywhere
  else they need it too (header, or a `token` query parameter).
- The Host header must name this server (`127.0.0.1:PORT`, `localhost:PORT`,
  `[::1]:PORT`, or the address it was bound to): a page whose DNS name is re-bound to
  127.0.0.1 sends its own name and is refused (DNS rebinding).
Refusals are 403 with a one-line reason.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_HEADER = "x-promptascent-token"
TOKEN_FIELD = "token"
READ_METHODS = frozenset({"GET", "HEAD"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Access:
    """The server's token and the Host values that name it."""

    token: str
    host: str
    port: int

    @property
    def allowed_hosts(self) -> frozenset[str]:
        names = {*LOOPBACK_NAMES, self.host if ":" not in self.host else f"[{self.host}]"}
        return frozenset(f"{name}:{self.port}" for name in names)

    def host_ok(self, host: str | None) -> bool:
        return host is not None and host.lower() in self.allowed_hosts

    def token_ok(self, given: str | None) -> bool:
        if not given:
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())


def is_loopback(client: str | None) -> bool:
    if client is None:
        return False
    try:
        return ipaddress.ip_address(client).is_loopback
    except ValueError:
        return False


class AccessMiddleware:
    """Refuses a bad Host on every request, a read from a non-loopback client without
    the token, and a write that carries neither a token header nor a form (the form's
    token is checked by `require_token`, which every write route calls)."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self.refusal(request)
        if refusal is not None:
            await PlainTextResponse(refusal, status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, request: Request) -> str | None:
        if not self.access.host_ok(request.headers.get("host")):
            return "refused: the Host header does not name this server"
        header = request.headers.get(TOKEN_HEADER)
        if request.method in READ_METHODS:
            client = request.client.host if request.client else None
            if is_loopback(client):
                return None
            if self.access.token_ok(header or request.query_params.get(TOKEN_FIELD)):
                return None
            return "refused: reading from another address needs the token"
        if header:
            return None if self.access.token_ok(header) else "refused: wrong token"
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return None  # the route checks the form's token
        return "refused: a write needs the token"


Handler = Callable[[Request], Awaitable[Response]]


async def require_token(request: Request, access: Access) -> str | None:
    """None when the request carries the token (header or form field), else the
    one-line refusal."""
    if access.token_ok(request.headers.get(TOKEN_HEADER)):
        return None
    form = await request.form()
    given = form.get(TOKEN_FIELD)
    if isinstance(given, str) and access.token_ok(given):
        return None
    return "refused: a write needs the token"
