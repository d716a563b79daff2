"""On-disk layout of a call spool, shared by the writer, the reader and recovery.

A spool is one directory per call::

    <root>/<call_key>/journal.jsonl     one JSON object per line, UTF-8
    <root>/<call_key>/stream-<n>.rtp    FILE_HEADER, then records

A stream file starts with a 16-byte header: the magic ``b"CVSPOOL1"``, the format
version (uint16), the record header size (uint16) and the stream index (uint32),
all little-endian.  Each record is ``<dH`` (arrival time as a float64 of seconds,
packet length as uint16) followed by the raw packet bytes.  Records are written
only by appending, so after a crash a file is always a prefix of what the writer
meant to write: at most the final record is torn.
"""

from __future__ import annotations

import re
import struct

MAGIC = b"CVSPOOL1"
VERSION = 1
FILE_HEADER = struct.Struct("<8sHHI")
RECORD_HEADER = struct.Struct("<dH")
MAX_PACKET = 0xFFFF

JOURNAL_NAME = "journal.jsonl"
STREAM_NAME_RE = re.compile(r"stream-(0|[1-9][0-9]{0,5})\.rtp")
CALL_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=-]{0,199}")
MAX_STREAM_INDEX = 999_999


def stream_name(index: int) -> str:
    return f"stream-{index}.rtp"


def file_header(index: int) -> bytes:
    return FILE_HEADER.pack(MAGIC, VERSION, RECORD_HEADER.size, index)


class SpoolError(Exception):
    """Any failure to write, read, scan or remove a call spool."""
