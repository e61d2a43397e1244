"""Reading an HTTP response body with a size limit, decompressing as it streams.

A reply larger than the limit is never held in memory: the body is read in chunks
and decoded here (identity, gzip or deflate, the encodings the HTTP backend asks
for) with the limit applied to the decoded bytes and to the bytes received, so a
small compressed body that expands without end stops at the limit too.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import httpx

CHUNK = 64 * 1024
ACCEPT_ENCODING = "gzip, deflate"


class BodyTooLarge(Exception):
    """The body (decoded) goes past the limit; the rest was not read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


class BodyUndecodable(Exception):
    """The body's Content-Encoding is unknown, or its compressed data is damaged."""


def read_body(response: httpx.Response, limit: int) -> bytes:
    """The decoded body of a streamed `response`, at most `limit` bytes. Raises
    BodyTooLarge as soon as more would be read, BodyUndecodable, or httpx's transport
    errors (a timeout, a dropped connection) while reading."""
    if response.is_stream_consumed:  # built in memory (a mock transport): decoded already
        if len(response.content) > limit:
            raise BodyTooLarge(limit)
        return response.content
    decode = _decoder(response.headers.get("content-encoding", ""))
    out = bytearray()
    received = 0
    for chunk in response.iter_raw(CHUNK):
        received += len(chunk)
        if received > limit:  # compressed data that makes nothing counts too
            raise BodyTooLarge(limit)
        out += decode(chunk, limit + 1 - len(out))
        if len(out) > limit:
            raise BodyTooLarge(limit)
    out += decode(b"", limit + 1 - len(out))
    if len(out) > limit:
        raise BodyTooLarge(limit)
    return bytes(out)


def read_prefix(response: httpx.Response, limit: int) -> bytes:
    """As much of the body as fits in `limit` bytes (for error messages); never raises
    for size or encoding."""
    try:
        return read_body(response, limit)
    except (BodyTooLarge, BodyUndecodable):
        return b""


Decoder = Callable[[bytes, int], bytes]  # (raw chunk, room) -> at most `room` bytes; b"": end


def _decoder(encoding: str) -> Decoder:
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return lambda chunk, room: chunk
    if name in ("gzip", "x-gzip"):
        return _ZlibDecoder(16 + zlib.MAX_WBITS)
    if name == "deflate":
        return _ZlibDecoder(zlib.MAX_WBITS, raw_fallback=True)
    raise BodyUndecodable(f"unsupported Content-Encoding {encoding!r}")


class _ZlibDecoder:
    """gzip or deflate (zlib-wrapped, or raw as some servers send it), never making
    more than `room` bytes from one call: a decompression bomb stops at the limit."""

    def __init__(self, wbits: int, *, raw_fallback: bool = False) -> None:
        self._d = zlib.decompressobj(wbits)
        self._raw_fallback = raw_fallback
        self._started = False

    def __call__(self, chunk: bytes, room: int) -> bytes:
        room = max(room, 1)  # zlib reads max_length 0 as "no limit"
        try:
            if not chunk:  # the end: what zlib still holds (all input was consumed)
                return self._d.flush() if self._started else b""
            data = (
                self._first(chunk, room) if not self._started else self._d.decompress(chunk, room)
            )
        except zlib.error as e:
            raise BodyUndecodable(f"damaged compressed body ({e})") from None
        self._started = True
        return data

    def _first(self, chunk: bytes, room: int) -> bytes:
        try:
            return self._d.decompress(chunk, room)
        except zlib.error:
            if not self._raw_fallback:
                raise
            self._d = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._d.decompress(chunk, room)
