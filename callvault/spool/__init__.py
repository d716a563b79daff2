"""Capture spool: per-call journal and per-stream RTP record files (see writer.py)."""

from callvault.spool.format import SpoolError
from callvault.spool.reader import StreamReader, read_journal, read_stream
from callvault.spool.recovery import SpoolInfo, find_spools, remove_spool
from callvault.spool.writer import CallSpool, SpoolFlusher, StreamSpool

__all__ = [
    "CallSpool",
    "SpoolError",
    "SpoolFlusher",
    "SpoolInfo",
    "StreamReader",
    "StreamSpool",
    "find_spools",
    "read_journal",
    "read_stream",
    "remove_spool",
]
