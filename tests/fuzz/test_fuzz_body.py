"""Property-based fuzzing of the body reader: any bytes, any chunking, any coding header.

Invariant: `read_body` either returns at most `max_bytes` bytes (exactly the inflated input when
that fits) or raises a 4xx `GatewayError`; nothing else, whatever the input.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.body import read_body
from appliance.errors import GatewayError

MAX_BYTES = 4096


async def _chunks(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    position = 0
    for size in sizes:
        if position >= len(data):
            break
        yield data[position : position + size]
        position += size
    if position < len(data):
        yield data[position:]


def _read(data: bytes, sizes: list[int], encoding: str | None) -> bytes | GatewayError:
    try:
        return asyncio.run(read_body(_chunks(data, sizes), content_encoding=encoding, content_length=None,
                                     max_bytes=MAX_BYTES))
    except GatewayError as exc:
        return exc


_encodings = st.sampled_from([None, "", "gzip", "x-gzip", "deflate", "identity", "br", "gzip, deflate", "GZIP", "²"])


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=6000), sizes=st.lists(st.integers(1, 700), max_size=20), encoding=_encodings)
def test_any_bytes_are_read_or_refused_with_a_4xx(data: bytes, sizes: list[int], encoding: str | None) -> None:
    result = _read(data, sizes, encoding)
    if isinstance(result, GatewayError):
        assert 400 <= result.status_code < 500
    else:
        assert 0 < len(result) <= MAX_BYTES


@settings(max_examples=200, deadline=None)
@given(plain=st.binary(min_size=1, max_size=8000), sizes=st.lists(st.integers(1, 300), max_size=30),
       coding=st.sampled_from(["gzip", "deflate", "raw-deflate"]), cut=st.integers(0, 50))
def test_compressed_bodies_inflate_exactly_or_are_refused(plain: bytes, sizes: list[int], coding: str, cut: int) -> None:
    if coding == "gzip":
        data = gzip.compress(plain)
    elif coding == "deflate":
        data = zlib.compress(plain)
    else:
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data = packer.compress(plain) + packer.flush()
    truncated = data[: len(data) - cut] if cut else data
    result = _read(truncated, sizes, "gzip" if coding == "gzip" else "deflate")
    if len(plain) > MAX_BYTES:
        assert isinstance(result, GatewayError) and result.status_code in (400, 413)
    elif not cut:
        assert result == plain
    else:
        assert isinstance(result, GatewayError) and result.status_code == 400
