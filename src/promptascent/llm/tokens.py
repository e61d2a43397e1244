"""How an HTTP model's tokens are counted: the `tokenizer:` of a model spec.

- `server`: the server's own tokenizer, through its tokenize endpoint: llama-cpp-python
  (`POST /extras/tokenize {"input"}`), llama.cpp's server (`POST /tokenize
  {"content"}`) or vLLM (`POST /tokenize {"model", "prompt"}`), each at the server's
  root (the base URL without its `/v1`). The endpoint is probed once per model; counts
  are cached per text (LRU). A server may count a BOS token in, so a count can be one
  over. If a tokenize request fails later, that text is counted in bytes.
- `tiktoken`: OpenAI's tokenizer, for OpenAI model names, only where the tiktoken
  package is installed and the model's encoding file is already on the machine.
  tiktoken downloads encoding files on first use; this never lets it.
- `bytes`: the UTF-8 length, an upper bound for byte-level BPE tokenizers (every one
  this project has met), but 3 to 4 times the real count for English text.
- `auto`: `server` (not tried on api.openai.com, which has no such endpoint), else
  `tiktoken`, else `bytes`. What was chosen, and why, is the counter's `name`, shown
  by `--dry-run`.

Counts are of the text alone; the chat template's tokens are reserved separately
(`ModelInfo.template_tokens` and the client's per-message allowance).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from promptascent.errors import ConfigError

log = logging.getLogger(__name__)

TOKENIZERS = ("auto", "server", "tiktoken", "bytes")
LRU_TEXTS = 4096
PROBE_TEXT = "Hello, world: how many tokens?"
OPENAI_HOST = "api.openai.com"
TIKTOKEN_FILES = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"

# Reads at most `limit` bytes of a streamed response body (http.py's capped reader).
BodyReader = Callable[[httpx.Response], bytes]


class TokenCounter(Protocol):
    """Counts the tokens of a text. `name` says which tokenizer it is."""

    name: str

    def count(self, text: str) -> int: ...


def utf8_length(text: str) -> int:
    # surrogatepass: a lone surrogate still has a length (3 bytes), never an exception
    return len(text.encode("utf-8", "surrogatepass"))


class ByteCounter:
    def __init__(self, why: str = "") -> None:
        self.name = "bytes (UTF-8 length, an upper bound)" + (f": {why}" if why else "")

    def count(self, text: str) -> int:
        return utf8_length(text)


class _Endpoint:
    """One tokenize API: where it is and how its request body is made."""

    def __init__(self, path: str, body: Callable[[str], dict[str, Any]]) -> None:
        self.path = path
        self.body = body


def _endpoints(model: str) -> tuple[_Endpoint, ...]:
    return (
        _Endpoint("/extras/tokenize", lambda text: {"input": text}),  # llama-cpp-python
        _Endpoint("/tokenize", lambda text: {"content": text}),  # llama.cpp server
        _Endpoint(  # vLLM
            "/tokenize",
            lambda text: {"model": model, "prompt": text, "add_special_tokens": False},
        ),
    )


def server_root(base_url: str) -> str:
    """The server's root: tokenize endpoints live beside `/v1`, not under it."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


class ServerCounter:
    """Counts with a server's tokenize endpoint (see the module docstring)."""

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        endpoint: _Endpoint,
        read: BodyReader,
        timeout: float,
    ) -> None:
        self.name = f"server (POST {url})"
        self._client = client
        self._url = url
        self._endpoint = endpoint
        self._read = read
        self._timeout = timeout
        self._cached = functools.lru_cache(maxsize=LRU_TEXTS)(self._ask)

    def count(self, text: str) -> int:
        if not text:
            return 0
        try:
            return self._cached(text)
        except _TokenizeFailed as e:  # not cached: the next count asks again
            log.debug("tokenize failed (%s); counting this text in bytes", e)
            return utf8_length(text)

    def _ask(self, text: str) -> int:
        tokens = tokenize(
            self._client, self._url, self._endpoint.body(text), self._read, self._timeout
        )
        if tokens is None:
            raise _TokenizeFailed(self._url)
        return tokens


class _TokenizeFailed(Exception):
    pass


def tokenize(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    read: BodyReader,
    timeout: float,
) -> int | None:
    """The token count a tokenize endpoint gives for `body`, or None when it gives
    none (an error status, no `tokens` list of integers, a transport error)."""
    import json

    try:
        with client.stream("POST", url, json=body, timeout=timeout) as response:
            if response.status_code != 200:
                return None
            data = json.loads(read(response))
    except (httpx.HTTPError, ValueError, OSError):
        return None
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(tokens, list) or not all(type(t) is int for t in tokens):
        return None
    return len(tokens)


def probe_server(
    client: httpx.Client, base_url: str, model: str, read: BodyReader, timeout: float
) -> ServerCounter | None:
    """The first tokenize endpoint that counts a probe text (a non-empty list of
    token ids), or None when the server has none."""
    root = server_root(base_url)
    for endpoint in _endpoints(model):
        url = root + endpoint.path
        count = tokenize(client, url, endpoint.body(PROBE_TEXT), read, timeout)
        if count:
            return ServerCounter(client, url, endpoint, read, timeout)
    return None


# -- tiktoken ---------------------------------------------------------------------------


class TiktokenCounter:
    def __init__(self, encoding: Any, encoding_name: str) -> None:
        self.name = f"tiktoken ({encoding_name})"
        self._encoding = encoding

    def count(self, text: str) -> int:
        return len(self._encoding.encode(text, disallowed_special=()))


_tiktoken_lock = threading.Lock()


def tiktoken_counter(model: str) -> tuple[TiktokenCounter | None, str]:
    """tiktoken's encoding for `model` when it can be had without a download, else
    None and why not."""
    try:
        import tiktoken
        import tiktoken.load
    except ImportError:
        return None, "tiktoken is not installed"
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        return None, f"tiktoken does not know the model {model!r}"
    cache_dir = _tiktoken_cache_dir(tiktoken.load)
    if cache_dir is None:
        return None, "tiktoken's cache is turned off (TIKTOKEN_CACHE_DIR is empty)"
    url = TIKTOKEN_FILES.format(name=name)
    if not (cache_dir / hashlib.sha1(url.encode()).hexdigest()).is_file():
        return None, f"tiktoken's {name} file is not on this machine (in {cache_dir})"
    try:
        with _tiktoken_lock, _no_downloads(tiktoken.load):
            encoding = tiktoken.get_encoding(name)
    except Exception as e:  # a damaged file: tiktoken would fetch it again; we do not
        return None, f"tiktoken's {name} file could not be loaded ({type(e).__name__})"
    return TiktokenCounter(encoding, name), ""


def _tiktoken_cache_dir(load: Any) -> Path | None:
    """Where tiktoken looks for its files (its own rule, as of tiktoken 0.4 to 0.12)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return Path(os.environ[var]) if os.environ[var] else None
    default = getattr(load, "_default_cache_dir", None)
    if callable(default):
        return Path(default())
    return Path(tempfile.gettempdir()) / "data-gym-cache"


class _DownloadRefused(RuntimeError):
    pass


@contextlib.contextmanager
def _no_downloads(load: Any) -> Iterator[None]:
    """tiktoken reads only local files in this block: its downloader refuses."""
    original = getattr(load, "read_file", None)

    def refuse(blobpath: str) -> bytes:
        if "://" in blobpath:
            raise _DownloadRefused(f"promptascent never downloads {blobpath}")
        assert original is not None
        return bytes(original(blobpath))

    if original is not None:
        load.read_file = refuse
    try:
        yield
    finally:
        if original is not None:
            load.read_file = original


# -- the choice ----------------------------------------------------------------------


def choose_counter(
    mode: str,
    *,
    base_url: str,
    model: str,
    client: httpx.Client,
    read: BodyReader,
    timeout: float,
) -> TokenCounter:
    """The counter `mode` asks for. Raises ConfigError when an explicit mode cannot be
    had (no tokenize endpoint, no usable tiktoken)."""
    if mode == "bytes":
        return ByteCounter()
    tried_server = mode == "server" or (
        mode == "auto" and urlsplit(base_url).hostname != OPENAI_HOST
    )
    if tried_server:
        counter = probe_server(client, base_url, model, read, timeout)
        if counter is not None:
            return counter
        if mode == "server":
            raise ConfigError(
                f"tokenizer: server: {server_root(base_url)} has no tokenize endpoint "
                "(tried POST /extras/tokenize, /tokenize); use tokenizer: auto or bytes"
            )
    found, why = tiktoken_counter(model)
    if found is not None:
        return found
    if mode == "tiktoken":
        raise ConfigError(f"tokenizer: tiktoken: {why}")
    return ByteCounter(f"no tokenize endpoint; {why}" if tried_server else why)
