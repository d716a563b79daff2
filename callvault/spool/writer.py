"""Crash-safe capture spool written by the SIPREC recorder.

The capture hot path is :meth:`StreamSpool.append`: it turns ``(arrival, packet)``
into one record (``<dH`` header + packet bytes) and appends it to an in-memory
list; nothing touches the disk.  :meth:`StreamSpool.flush` joins the pending
records and hands them to the kernel with ``os.write`` on an ``O_APPEND`` fd.  A
:class:`SpoolFlusher` driven by a 0.5 s timer flushes every stream with pending
data, so a ``kill -9`` loses at most the records appended since the last flush
(the page cache survives a process crash; pass ``fsync=True`` to also survive a
power loss, at the price of one fsync per stream and flush).

Journal events are written through immediately, one JSON line per ``os.write``.

Not thread-safe: use a spool, its streams and the flusher from one thread (the
recorder's event loop).
"""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path
from typing import Any

from callvault.spool.format import (
    CALL_KEY_RE,
    JOURNAL_NAME,
    MAX_PACKET,
    MAX_STREAM_INDEX,
    RECORD_HEADER,
    SpoolError,
    file_header,
    stream_name,
)

__all__ = ["CallSpool", "SpoolError", "SpoolFlusher", "StreamSpool"]

_pack_header = RECORD_HEADER.pack
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
_RESERVED_TYPES = ("opened", "closed")


def _write_all(fd: int, data: bytes) -> tuple[int, OSError | None]:
    """Write all of ``data``, retrying short writes; return (bytes written, error or None)."""
    view = memoryview(data)
    done = 0
    total = len(data)
    try:
        while done < total:
            n = os.write(fd, view[done:])
            if n <= 0:
                return done, OSError(0, f"os.write wrote nothing with {total - done} bytes left")
            done += n
    except OSError as exc:
        return done, exc
    return done, None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class StreamSpool:
    """Append-only record file for one RTP stream of a call."""

    __slots__ = ("_call", "_fd", "_flusher", "_fsync", "_parts", "index", "path")

    def __init__(self, path: Path, index: int, fd: int, *, fsync: bool, call: CallSpool | None) -> None:
        self.path = path
        self.index = index
        self._fd = fd
        self._fsync = fsync
        self._parts: list[bytes] = []
        self._flusher: SpoolFlusher | None = None
        self._call = call

    def append(self, arrival: float, packet: bytes) -> None:
        """Queue one packet (the capture hot path: one pack, one concat, one list append)."""
        try:
            self._parts.append(_pack_header(arrival, len(packet)) + packet)
        except struct.error:
            raise SpoolError(
                f"stream {self.index}: packet of {len(packet)} bytes exceeds the {MAX_PACKET}-byte limit"
            ) from None

    def extend(self, records: list[tuple[float, bytes]]) -> None:
        """Queue many ``(arrival, packet)`` records at once (passive capture drains in batches)."""
        try:
            self._parts.extend([_pack_header(arrival, len(packet)) + packet for arrival, packet in records])
        except struct.error:
            big = max(len(p) for _, p in records)
            raise SpoolError(
                f"stream {self.index}: packet of {big} bytes exceeds the {MAX_PACKET}-byte limit"
            ) from None

    def extend_records(self, records: list[bytes]) -> None:
        """Queue records already in the spool format (``RECORD_HEADER`` + packet), e.g. from
        :class:`callvault.pcap.follower.Channel`, which formats them as it captures."""
        self._parts += records

    @property
    def has_pending(self) -> bool:
        return bool(self._parts)

    @property
    def pending_bytes(self) -> int:
        return sum(map(len, self._parts))

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def flush(self) -> int:
        """Write all pending records with one ``os.write``; return the bytes written.

        On a write error the unwritten bytes stay queued (in order) so a later flush
        continues exactly where this one stopped, and the file stays a valid prefix.
        """
        parts = self._parts
        if not parts:
            return 0
        if self._fd < 0:
            raise SpoolError(f"stream {self.index}: flush after close ({len(parts)} records pending)")
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        done, error = _write_all(self._fd, data)
        if error is not None:
            parts.append(data[done:])
            raise SpoolError(
                f"stream {self.index}: wrote {done} of {len(data)} bytes to {self.path}: {_reason(error)}"
            ) from error
        if self._fsync:
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                raise SpoolError(
                    f"stream {self.index}: fdatasync of {self.path} failed: {_reason(exc)}"
                ) from exc
        return len(data)

    def close(self) -> None:
        """Flush and close the file; idempotent.  The fd is closed even if the flush fails."""
        if self._fd < 0:
            return
        try:
            self.flush()
        finally:
            fd, self._fd = self._fd, -1
            os.close(fd)
            if self._flusher is not None:
                self._flusher.discard(self)
            if self._call is not None:
                self._call._forget(self)


class CallSpool:
    """The spool directory of one call: a journal plus one file per stream.

    Creating a ``CallSpool`` writes a first journal record
    ``{"type": "opened", "call_key": ..., "format": 1, "time": ...}``;
    :meth:`mark_complete` writes ``{"type": "closed", "time": ...}`` after all
    stream data is flushed.  A spool whose journal lacks the ``closed`` record was
    interrupted (see :mod:`callvault.spool.recovery`).
    """

    def __init__(
        self,
        root: Path,
        call_key: str,
        *,
        fsync: bool = False,
        flusher: SpoolFlusher | None = None,
    ) -> None:
        if not CALL_KEY_RE.fullmatch(call_key):
            raise SpoolError(
                f"invalid call key {call_key!r}: use 1-200 characters from [A-Za-z0-9._@+=-], "
                "starting with a letter or digit"
            )
        self.root = Path(root)
        self.call_key = call_key
        self.path = self.root / call_key
        self._fsync = fsync
        self._flusher = flusher
        self._streams: dict[int, StreamSpool] = {}
        self._journal_tail = b""
        self._journal_fd = -1
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            os.mkdir(self.path, 0o750)
        except FileExistsError:
            raise SpoolError(f"spool directory {self.path} already exists") from None
        except OSError as exc:
            raise SpoolError(f"cannot create spool directory {self.path}: {_reason(exc)}") from exc
        try:
            self._journal_fd = os.open(self.path / JOURNAL_NAME, _OPEN_FLAGS, 0o640)
        except OSError as exc:
            raise SpoolError(f"cannot create journal in {self.path}: {_reason(exc)}") from exc
        self._write_journal({"type": "opened", "call_key": call_key, "format": 1, "time": time.time()})
        self._sync_dir()

    # -- journal -----------------------------------------------------------------

    def journal(self, event: dict[str, Any]) -> None:
        """Append one event as a JSON line and write it through immediately."""
        if not isinstance(event, dict):
            raise SpoolError(f"journal event must be a dict, not {type(event).__name__}")
        if event.get("type") in _RESERVED_TYPES:
            raise SpoolError(f"journal event type {event['type']!r} is reserved for the spool itself")
        self._write_journal(event)

    def _write_journal(self, event: dict[str, Any]) -> None:
        if self._journal_fd < 0:
            raise SpoolError(f"journal of call {self.call_key} is closed")
        try:
            line = json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            data = line.encode("utf-8") + b"\n"
        except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            raise SpoolError(f"journal event is not JSON-serialisable: {exc}") from exc
        tail = self._journal_tail
        done, error = _write_all(self._journal_fd, tail + data)
        if error is not None:
            if done > len(tail):
                # Part of this line reached the file: the rest must be written before
                # anything else, or the journal would get a corrupt line in the middle.
                self._journal_tail = (tail + data)[done:]
            else:  # this event was not written at all: drop it (the caller gets the error)
                self._journal_tail = tail[done:]
            raise SpoolError(
                f"journal write to {self.path / JOURNAL_NAME} failed: {_reason(error)}"
            ) from error
        self._journal_tail = b""
        if self._fsync:
            try:
                os.fdatasync(self._journal_fd)
            except OSError as exc:
                raise SpoolError(f"fdatasync of {self.path / JOURNAL_NAME} failed: {_reason(exc)}") from exc

    # -- streams -----------------------------------------------------------------

    def open_stream(self, index: int) -> StreamSpool:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_STREAM_INDEX:
            raise SpoolError(f"stream index must be an integer in 0..{MAX_STREAM_INDEX}, got {index!r}")
        if self._journal_fd < 0:
            raise SpoolError(f"spool of call {self.call_key} is closed")
        path = self.path / stream_name(index)
        try:
            fd = os.open(path, _OPEN_FLAGS, 0o640)
        except FileExistsError:
            raise SpoolError(f"stream {index} of call {self.call_key} already exists") from None
        except OSError as exc:
            raise SpoolError(f"cannot create {path}: {_reason(exc)}") from exc
        _, error = _write_all(fd, file_header(index))
        if error is not None:
            os.close(fd)
            raise SpoolError(f"cannot write header of {path}: {_reason(error)}") from error
        stream = StreamSpool(path, index, fd, fsync=self._fsync, call=self)
        self._streams[index] = stream
        if self._flusher is not None:
            self._flusher.add(stream)
        self._sync_dir()
        return stream

    @property
    def streams(self) -> dict[int, StreamSpool]:
        return dict(self._streams)

    def _forget(self, stream: StreamSpool) -> None:
        if self._streams.get(stream.index) is stream:
            del self._streams[stream.index]

    def flush(self) -> int:
        return sum(stream.flush() for stream in list(self._streams.values()))

    # -- lifecycle ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._journal_fd < 0

    def mark_complete(self) -> None:
        """Flush every stream, write the ``closed`` journal record and close the spool."""
        self.flush()  # with fsync=True each flush is followed by fdatasync
        self._write_journal({"type": "closed", "time": time.time()})
        self.close()

    def close(self) -> None:
        """Flush and close every stream and the journal; idempotent.

        Everything is closed even if a flush fails; the first failure is raised after.
        """
        first: SpoolError | None = None
        for stream in list(self._streams.values()):
            try:
                stream.close()
            except SpoolError as exc:
                first = first or exc
        if self._journal_fd >= 0:
            fd, self._journal_fd = self._journal_fd, -1
            os.close(fd)
        if first is not None:
            raise first

    def sync(self) -> None:
        """Make the journal and the directory entries durable now, whatever ``fsync`` says.

        The recorder calls this once per call before answering, so an answered call
        always has its spool on disk.
        """
        if self._journal_fd >= 0:
            try:
                os.fdatasync(self._journal_fd)
            except OSError as exc:
                raise SpoolError(f"fdatasync of {self.path / JOURNAL_NAME} failed: {_reason(exc)}") from exc
        self._sync_dir(force=True)

    def _sync_dir(self, *, force: bool = False) -> None:
        if not (self._fsync or force):
            return
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> CallSpool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SpoolFlusher:
    """Holds every open stream and flushes those with pending data.

    The recorder calls :meth:`flush_all` from a 0.5 s timer.  Streams join when a
    :class:`CallSpool` created with ``flusher=`` opens them (or via :meth:`add`) and
    leave when closed.
    """

    def __init__(self) -> None:
        self._streams: dict[StreamSpool, None] = {}

    def add(self, stream: StreamSpool) -> None:
        stream._flusher = self
        self._streams[stream] = None

    def discard(self, stream: StreamSpool) -> None:
        self._streams.pop(stream, None)
        if stream._flusher is self:
            stream._flusher = None

    def __len__(self) -> int:
        return len(self._streams)

    def flush_all(self) -> int:
        """Flush every stream with pending data; return the total bytes written.

        A failing stream does not stop the others; its data stays queued and one
        SpoolError summarising the failures is raised at the end.
        """
        written = 0
        failures: list[SpoolError] = []
        for stream in list(self._streams):
            if stream._parts:
                try:
                    written += stream.flush()
                except SpoolError as exc:
                    failures.append(exc)
        if failures:
            raise SpoolError(
                f"{len(failures)} of {len(self._streams)} streams failed to flush; first: {failures[0]}"
            ) from failures[0]
        return written
