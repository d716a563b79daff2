"""HTTP range requests (RFC 9110 §14) for recordings, and a response that streams a byte range.

- no ``Range``, an unknown unit, several ranges, or an ``If-Range`` that does not match the
  ETag: the whole file, 200;
- one satisfiable ``bytes=`` range: 206 with ``Content-Range``;
- a malformed or unsatisfiable ``bytes=`` range: 416 with ``Content-Range: bytes */<size>``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse

CHUNK = 64 * 1024
_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")


class Unsatisfiable(Exception):
    pass


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to serve, or None for the whole file; ``Unsatisfiable`` for a 416."""
    if not header:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None  # a unit we do not serve: ignore the header (RFC 9110 §14.2)
    if "," in spec:
        return None  # several ranges: the whole file is simpler and allowed
    m = _SPEC.fullmatch(spec)
    if not m or (not m.group(1) and not m.group(2)) or len(spec) > 60:
        raise Unsatisfiable(header)
    first, last = m.group(1), m.group(2)
    if not first:  # bytes=-N: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise Unsatisfiable(header)
    return ByteRange(start, min(end, size - 1))


class RangeFileResponse(StreamingHttpResponse):
    """Streams ``length`` bytes of ``fh`` from ``start`` in 64 KiB chunks.

    Iterates synchronously under WSGI (and the test client) and asynchronously under ASGI,
    so neither server reads a long WAV recording into memory first.
    """

    def __init__(self, fh: BinaryIO, start: int, length: int, **kwargs: object) -> None:
        self._fh = fh
        self._start = start
        self._length = length
        super().__init__(self._sync_chunks(), **kwargs)
        self._resource_closers.append(fh.close)
        self["Content-Length"] = str(length)

    def _read(self, remaining: int) -> bytes:
        return self._fh.read(min(CHUNK, remaining))

    def _sync_chunks(self) -> Iterator[bytes]:
        self._fh.seek(self._start)
        remaining = self._length
        while remaining > 0:
            chunk = self._read(remaining)
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await sync_to_async(self._fh.seek, thread_sensitive=False)(self._start)
        remaining = self._length
        while remaining > 0:
            chunk = await sync_to_async(self._read, thread_sensitive=False)(remaining)
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
