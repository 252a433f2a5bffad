"""Request bodies: size cap and streaming decompression (docs/contract.md §3.5).

Input: the body as an async stream of chunks, its `Content-Encoding` and `Content-Length`.
Output: the decompressed bytes, never more than `max_bytes` of them. Decompression runs chunk by
chunk with zlib's `max_length`, so a gzip bomb is refused once it has produced `max_bytes + 1`
bytes, without inflating the rest and without reading the rest of the upload.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

from appliance.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_DEFLATE_WBITS = -zlib.MAX_WBITS
SUPPORTED_ENCODINGS = ("gzip", "deflate")
_STEP = 256 * 1024  # most bytes inflated at once


class _Inflater:
    """Incremental gzip/deflate decoding that stops at an output cap."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._decompressor: zlib._Decompress | None = None
        self._head = b""  # a deflate body's first byte, until the second one tells its kind
        if encoding == "gzip":
            self._decompressor = zlib.decompressobj(_GZIP_WBITS)

    def feed(self, data: bytes, out: bytearray, limit: int) -> None:
        """Inflate `data` onto `out`, stopping once `out` holds more than `limit` bytes (too big).

        Output is produced in steps of at most `_STEP` bytes straight onto `out`, so inflating a
        body costs its own size and no copies of it.
        """
        if self._decompressor is None:
            # The zlib header check needs two bytes, and a chunk may hold only one.
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
        while data:
            if self._decompressor is None:
                # HTTP's "deflate" is zlib-wrapped, but some clients send raw deflate; the zlib
                # header (CMF/FLG, a multiple of 31) tells which.
                wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
                self._decompressor = zlib.decompressobj(_ZLIB_WBITS if wrapped else _RAW_DEFLATE_WBITS)
            try:
                out += self._decompressor.decompress(data, min(_STEP, limit + 1 - len(out)))
            except zlib.error as exc:
                raise BadRequest(f"body: corrupt {self._encoding} stream ({exc})") from None
            if len(out) > limit:
                return
            if self._decompressor.unconsumed_tail:
                data = self._decompressor.unconsumed_tail
            elif self._decompressor.eof and self._decompressor.unused_data and self._encoding == "gzip":
                # A gzip file may hold several members; each starts a new decompressor.
                data = self._decompressor.unused_data
                self._decompressor = zlib.decompressobj(_GZIP_WBITS)
            elif self._decompressor.eof and self._decompressor.unused_data:
                raise BadRequest(f"body: data after the end of the {self._encoding} stream")
            else:
                data = b""

    def finish(self) -> None:
        """Refuse a stream that ended before its end marker."""
        if self._decompressor is None or not self._decompressor.eof:
            raise BadRequest(f"body: truncated {self._encoding} stream")


def parse_encoding(header: str | None) -> str:
    """The one content coding of a request, "" for none; unknown codings → 415."""
    encodings = [part.strip().lower() for part in (header or "").split(",") if part.strip()]
    encodings = [e for e in encodings if e != "identity"]
    if not encodings:
        return ""
    if len(encodings) > 1:
        raise UnsupportedMediaType(f"content-encoding: only one coding is supported, got {header!r}")
    encoding = "gzip" if encodings[0] == "x-gzip" else encodings[0]
    if encoding not in SUPPORTED_ENCODINGS:
        raise UnsupportedMediaType(
            f"content-encoding: {encoding!r} is not supported (use gzip or deflate)"
        )
    return encoding


async def read_body(
    chunks: AsyncIterator[bytes],
    *,
    content_encoding: str | None,
    content_length: int | None,
    max_bytes: int,
) -> bytes:
    """Read and decompress a request body, refusing it past `max_bytes` (after decompression)."""
    encoding = parse_encoding(content_encoding)
    too_large = PayloadTooLarge(f"body: larger than {max_bytes} bytes after decompression")
    # A compressed body never needs to be larger than its inflated cap.
    if content_length is not None and content_length > max_bytes:
        raise too_large
    inflater = _Inflater(encoding) if encoding else None
    body = bytearray()
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > max_bytes:
            raise too_large
        if inflater is not None:
            inflater.feed(chunk, body, max_bytes)
        else:
            body += chunk
        if len(body) > max_bytes:
            raise too_large
    if inflater is not None:
        if received == 0:
            raise BadRequest(f"body: empty {encoding} stream")
        inflater.finish()
    if not body:
        raise BadRequest("body: empty; expected a JSON object")
    return bytes(body)
