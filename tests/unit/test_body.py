"""Body reading (docs/contract.md §3.5): caps after decompression, streaming, corrupt and unknown encodings."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Iterable

import pytest

from appliance.body import read_body
from appliance.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

CAP = 10 * 1024 * 1024


async def _chunks(parts: Iterable[bytes], consumed: list[int]) -> AsyncIterator[bytes]:
    for part in parts:
        consumed.append(len(part))
        yield part


def read(parts: Iterable[bytes], encoding: str | None = None, length: int | None = None,
         cap: int = CAP, consumed: list[int] | None = None) -> bytes:
    return asyncio.run(
        read_body(_chunks(parts, consumed if consumed is not None else []),
                  content_encoding=encoding, content_length=length, max_bytes=cap)
    )


def split(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_plain_body() -> None:
    assert read([b'{"a":', b"1}"]) == b'{"a":1}'


def test_gzip_and_deflate_bodies() -> None:
    data = b'{"events": []}' * 1000
    assert read(split(gzip.compress(data), 100), "gzip") == data
    assert read(split(zlib.compress(data), 100), "deflate") == data
    raw = zlib.compressobj(wbits=-15)
    assert read([raw.compress(data) + raw.flush()], "deflate") == data
    assert read([gzip.compress(data[:10]) + gzip.compress(data[10:])], "x-gzip") == data


def test_exactly_the_cap_is_allowed_one_more_byte_is_not() -> None:
    assert len(read(split(b"x" * CAP))) == CAP
    with pytest.raises(PayloadTooLarge):
        read(split(b"x" * (CAP + 1)))
    with pytest.raises(PayloadTooLarge):
        read([gzip.compress(b"x" * (CAP + 1))], "gzip")
    assert len(read([gzip.compress(b"x" * CAP)], "gzip")) == CAP


def test_declared_length_over_the_cap_is_refused_before_reading() -> None:
    consumed: list[int] = []
    with pytest.raises(PayloadTooLarge):
        read([b"x"], length=CAP + 1, consumed=consumed)
    assert consumed == []


def test_gzip_bomb_stops_early_without_reading_the_rest() -> None:
    # ~100 MiB of zeros compress to ~100 KiB; the reader must stop after ~10 MiB of output.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    bomb = b"".join(compressor.compress(block) for _ in range(100)) + compressor.flush()
    parts = split(bomb, 4096)
    consumed: list[int] = []
    with pytest.raises(PayloadTooLarge):
        read(parts, "gzip", consumed=consumed)
    assert sum(consumed) < len(bomb) / 5


@pytest.mark.parametrize(
    ("parts", "encoding", "message"),
    [
        ([b"not gzip at all"], "gzip", "corrupt gzip stream"),
        ([gzip.compress(b"x" * 1000)[:-10]], "gzip", "truncated gzip stream"),
        ([zlib.compress(b"abc") + b"junk"], "deflate", "data after the end"),
        ([], "gzip", "empty gzip stream"),
        ([], None, "empty"),
    ],
)
def test_bad_bodies_are_400(parts: list[bytes], encoding: str | None, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        read(parts, encoding)


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, br", "compress"])
def test_unknown_encoding_is_415(encoding: str) -> None:
    with pytest.raises(UnsupportedMediaType, match="content-encoding"):
        read([b"{}"], encoding)


def test_identity_encoding_is_plain() -> None:
    assert read([b"{}"], "identity") == b"{}"
