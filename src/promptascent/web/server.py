"""Runs the web app with uvicorn: bound to 127.0.0.1 unless told otherwise, with a new
random token printed once at start (the address to open carries it in its fragment,
which browsers never send to a server). The access log is off: nothing the server
prints holds a request's token."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from promptascent.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
GRACEFUL_SHUTDOWN_SECONDS = 3  # open live streams are closed after this


def serve(
    runs_dir: Path,
    cache_dir: Path,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    announce: Callable[[str], None],
) -> None:
    """Serves until interrupted; `announce` gets the lines to show the person (the
    address with the token). ConfigError when the web extra is not installed."""
    try:
        import uvicorn

        from promptascent.web.app import WebSettings, create_app
        from promptascent.web.security import Access, new_token
    except ImportError as e:
        raise ConfigError(
            f"promptascent serve needs the web extra ({e.name} is missing): "
            "pip install 'promptascent[web]'"
        ) from None
    if not 0 < port < 65536:
        raise ConfigError(f"port {port}: not a TCP port", key="port")
    token = new_token()
    app = create_app(WebSettings(runs_dir, cache_dir, Access(token, host, port)))
    shown = f"[{host}]" if ":" in host else host
    announce(f"promptascent serve: http://{shown}:{port}/#token={token}")
    announce(f"token for writes (start, stop, verdicts, feedback): {token}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        announce(f"note: bound to {host}: reads from other addresses need the token too")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,
        proxy_headers=False,  # the client address is the socket's, never a header's
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        log_level="warning",
    )
    uvicorn.Server(config).run()
