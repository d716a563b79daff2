"""Read call spools back, tolerating the torn tail a crash can leave behind."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from callvault.spool.format import (
    FILE_HEADER,
    JOURNAL_NAME,
    MAGIC,
    RECORD_HEADER,
    VERSION,
    SpoolError,
)

__all__ = ["JournalTail", "SpoolError", "StreamReader", "StreamTail", "read_journal", "read_stream"]

_CHUNK = 1 << 20


def read_journal(spool_dir: Path) -> list[dict[str, Any]]:
    """Return the journal records of a spool directory, in order.

    An incomplete final line (no trailing newline: the writer crashed mid-write) is
    ignored.  Any complete line that is not a JSON object raises SpoolError naming
    its 1-based line number.
    """
    path = Path(spool_dir) / JOURNAL_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpoolError(f"{path}: journal not found") from None
    except OSError as exc:
        raise SpoolError(f"{path}: cannot read journal: {exc.strerror or exc}") from exc
    lines = data.split(b"\n")
    lines.pop()  # b"" after the final newline, or the torn final line
    records: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, start=1):
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SpoolError(f"{path}: line {number} is corrupt: {exc}") from None
        if not isinstance(record, dict):
            raise SpoolError(f"{path}: line {number} is not a JSON object")
        records.append(record)
    return records


class StreamReader(Iterator[tuple[float, bytes]]):
    """Iterates ``(arrival, packet)`` records of one stream file.

    The file header is checked on construction (a foreign file raises SpoolError).
    After iteration finishes, :attr:`truncated_bytes` holds the size of a torn final
    record that was dropped (0 for a cleanly written file) and :attr:`records` the
    number of records returned.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.truncated_bytes = 0
        self.records = 0
        self.index: int | None = None
        self._empty = False
        try:
            self._file = open(self.path, "rb")
        except OSError as exc:
            raise SpoolError(f"{self.path}: cannot open stream file: {exc.strerror or exc}") from exc
        try:
            self._check_header()
        except BaseException:
            self._file.close()
            raise
        self._records = self._iterate()

    def _check_header(self) -> None:
        head = self._file.read(FILE_HEADER.size)
        if len(head) < FILE_HEADER.size:
            if not (MAGIC + VERSION.to_bytes(2, "little")).startswith(head[: len(MAGIC) + 2]):
                raise SpoolError(f"{self.path}: not a callvault spool stream (bad magic)")
            # Crash between creating the file and writing its header: no records.
            self.truncated_bytes = len(head)
            self._empty = True
            return
        magic, version, record_header, index = FILE_HEADER.unpack(head)
        if magic != MAGIC:
            raise SpoolError(f"{self.path}: not a callvault spool stream (bad magic)")
        if version != VERSION:
            raise SpoolError(f"{self.path}: unsupported spool format version {version} (expected {VERSION})")
        if record_header != RECORD_HEADER.size:
            raise SpoolError(
                f"{self.path}: record header size {record_header} does not match format "
                f"version {VERSION} ({RECORD_HEADER.size})"
            )
        self.index = index
        self._empty = False

    def _iterate(self) -> Generator[tuple[float, bytes], None, None]:
        if self._empty:
            self._file.close()
            return
        unpack = RECORD_HEADER.unpack_from
        hsize = RECORD_HEADER.size
        buf = b""
        pos = 0
        try:
            while True:
                chunk = self._file.read(_CHUNK)
                if not chunk:
                    break
                buf = buf[pos:] + chunk
                pos = 0
                end = len(buf)
                while pos + hsize <= end:
                    arrival, length = unpack(buf, pos)
                    stop = pos + hsize + length
                    if stop > end:
                        break
                    self.records += 1
                    yield arrival, buf[pos + hsize : stop]
                    pos = stop
            self.truncated_bytes = len(buf) - pos
        finally:
            self._file.close()

    def __next__(self) -> tuple[float, bytes]:
        return next(self._records)

    def close(self) -> None:
        self._records.close()
        self._file.close()

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_stream(path: Path) -> StreamReader:
    """Open a stream file for iteration; see :class:`StreamReader`."""
    return StreamReader(path)


class StreamTail:
    """Follows a stream file that the recorder is still appending to.

    Each :meth:`read` returns the complete records written since the last one; a
    record the writer has only partly written yet is left for the next read.  The
    file may not exist yet (the stream was not opened) or may lack its header.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self.records = 0
        self._buf = b""

    def read(self) -> list[tuple[float, bytes]]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset + len(self._buf))
                data = fh.read()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SpoolError(f"{self.path}: cannot read stream file: {exc.strerror or exc}") from exc
        buf = self._buf + data
        pos = 0
        if self.offset == 0:
            if len(buf) < FILE_HEADER.size:
                self._buf = buf
                return []
            magic, version, record_header, _index = FILE_HEADER.unpack_from(buf)
            if magic != MAGIC or version != VERSION or record_header != RECORD_HEADER.size:
                raise SpoolError(f"{self.path}: not a callvault spool stream of format {VERSION}")
            pos = FILE_HEADER.size
        unpack = RECORD_HEADER.unpack_from
        hsize = RECORD_HEADER.size
        end = len(buf)
        out: list[tuple[float, bytes]] = []
        while pos + hsize <= end:
            arrival, length = unpack(buf, pos)
            stop = pos + hsize + length
            if stop > end:
                break
            out.append((arrival, buf[pos + hsize : stop]))
            pos = stop
        self.offset += pos
        self._buf = buf[pos:]
        self.records += len(out)
        return out


class JournalTail:
    """Follows a journal that is still being written: complete new lines on each read."""

    def __init__(self, spool_dir: Path) -> None:
        self.path = Path(spool_dir) / JOURNAL_NAME
        self.offset = 0
        self.events: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError as exc:
            raise SpoolError(f"{self.path}: cannot read journal: {exc.strerror or exc}") from exc
        complete = data.rfind(b"\n") + 1
        new: list[dict[str, Any]] = []
        for raw in data[:complete].split(b"\n")[:-1]:
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise SpoolError(f"{self.path}: corrupt line: {exc}") from None
            if not isinstance(record, dict):
                raise SpoolError(f"{self.path}: a line is not a JSON object")
            new.append(record)
        self.offset += complete
        self.events.extend(new)
        return new
