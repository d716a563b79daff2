"""pcap and pcapng files, read from bytes (sans-I/O): ``feed(data)`` then iterate ``records()``.

Classic pcap (https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcap/): magic
``a1b2c3d4`` (microseconds) or ``a1b23c4d`` (nanoseconds) in either byte order,
one link type.  pcapng (draft-ietf-opsawg-pcapng): Section Header Blocks in either
byte order, any number of Interface Description Blocks (each with its own link type
and ``if_tsresol``/``if_tsoffset``), Enhanced/Simple/obsolete Packet Blocks, and
Interface Statistics Blocks whose drop counters (``isb_ifdrop``, ``isb_osdrop``)
are the capture's own loss (see :mod:`callvault.pcap.follower`).  Other blocks are skipped.

A file that ends inside a record raises :class:`PcapTruncated` from :meth:`PcapReader.close`
naming how many packets were read; a record that cannot be right raises :class:`PcapError`
with its byte offset.  Everything read before the error stays valid.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["CaptureStats", "PcapError", "PcapReader", "PcapTruncated", "Record"]

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D
BLOCK_IDB = 0x00000001
BLOCK_OPB = 0x00000002  # obsolete Packet Block
BLOCK_SPB = 0x00000003
BLOCK_ISB = 0x00000005
BLOCK_EPB = 0x00000006
OPT_END = 0
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14
OPT_ISB_IFDROP = 4
OPT_ISB_OSDROP = 7
# A captured packet larger than this is a corrupt length field, not a packet
# (libpcap's own limit for the largest snapshot length, 256 KiB).
MAX_PACKET = 262144
MAX_BLOCK = 16 * 1024 * 1024

# (timestamp seconds, link type, frame bytes)
Record = tuple[float, int, bytes]


class PcapError(ValueError):
    """The bytes are not a pcap/pcapng file, or a record is corrupt."""


class PcapTruncated(PcapError):
    """The file ends inside a record (a capture that was cut off)."""


@dataclass
class CaptureStats:
    """What the capture itself says it missed (pcapng ISB, or libpcap's counters when sniffing)."""

    drops: int = 0  # packets the kernel/interface dropped (isb_ifdrop + isb_osdrop)
    time: float | None = None  # timestamp of the latest statistics


@dataclass
class _Interface:
    linktype: int
    scale: float  # seconds per timestamp unit
    offset: float  # if_tsoffset seconds
    drops: int = 0


class PcapReader:
    """Incremental reader; see the module docstring."""

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._consumed = 0  # bytes of the file before self._buf
        self._kind: str | None = None  # "pcap" or "pcapng"
        self._endian = "<"
        self._linktype = 0
        self._scale = 1e-6
        self._ifaces: list[_Interface] = []
        self._last_ts = 0.0
        self.packets = 0
        self.bytes_read = 0
        self.stats = CaptureStats()
        self.stats_changed = False

    @property
    def kind(self) -> str | None:
        return self._kind

    def feed(self, data: bytes) -> None:
        self._buf = self._buf[self._pos :] + data if self._pos < len(self._buf) else data
        self._consumed += self._pos
        self._pos = 0
        self.bytes_read += len(data)

    def close(self) -> None:
        """End of file: anything left over is a cut-off record."""
        left = len(self._buf) - self._pos
        if self._kind is None:
            if left == 0:
                raise PcapError("empty file: not a pcap or pcapng capture")
            raise PcapTruncated(f"file of {left} bytes is too short for a pcap or pcapng header")
        if left:
            raise PcapTruncated(
                f"capture is cut off: {self.packets} packets read, the record at byte "
                f"{self._consumed + self._pos} is incomplete ({left} bytes left)"
            )

    def _where(self, pos: int) -> str:
        return f"at byte {self._consumed + pos} (after {self.packets} packets)"

    def records(self) -> Iterator[Record]:
        """Every complete record in the bytes fed so far, in file order (one generator, no wrapper)."""
        if self._kind is None and not self._start():
            return iter(())
        return self._pcap_records() if self._kind == "pcap" else self._pcapng_records()

    # ------------------------------------------------------------------ classic pcap
    def _start(self) -> bool:
        buf = self._buf
        if len(buf) - self._pos < 4:
            return False
        head = buf[self._pos : self._pos + 4]
        le = struct.unpack("<I", head)[0]
        be = struct.unpack(">I", head)[0]
        if le == PCAPNG_SHB:
            self._kind = "pcapng"
            return True
        for magic, endian in ((le, "<"), (be, ">")):
            if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
                if len(buf) - self._pos < 24:
                    return False
                self._endian = endian
                self._scale = 1e-9 if magic == PCAP_MAGIC_NS else 1e-6
                major, _minor, _zone, _sig, _snap, network = struct.unpack_from(
                    endian + "HHiIII", buf, self._pos + 4
                )
                if major != 2:
                    raise PcapError(f"unsupported pcap version {major} (expected 2)")
                self._linktype = network & 0xFFFF
                self._pos += 24
                self._kind = "pcap"
                return True
        raise PcapError(f"not a pcap or pcapng file (starts with {head.hex(' ')})")

    def _pcap_records(self) -> Iterator[Record]:
        buf = self._buf
        end = len(buf)
        pos = self._pos
        unpack = struct.Struct(self._endian + "IIII").unpack_from
        scale = self._scale
        linktype = self._linktype
        start = self.packets
        count = 0  # counted locally: this loop runs once per packet of the file
        try:
            while pos + 16 <= end:
                sec, frac, incl, _orig = unpack(buf, pos)
                if incl > MAX_PACKET:
                    self._pos = pos
                    self.packets = start + count
                    raise PcapError(
                        f"corrupt record {self._where(pos)}: captured length {incl} exceeds {MAX_PACKET}"
                    )
                stop = pos + 16 + incl
                if stop > end:
                    break
                count += 1
                yield sec + frac * scale, linktype, buf[pos + 16 : stop]
                pos = stop
        finally:
            self._pos = pos
            self.packets = start + count

    # ------------------------------------------------------------------ pcapng
    def _pcapng_records(self) -> Iterator[Record]:
        buf = self._buf
        end = len(buf)
        pos = self._pos
        try:
            while pos + 12 <= end:
                head = buf[pos : pos + 4]
                if head == b"\x0a\x0d\x0d\x0a":
                    # section header: the byte-order magic decides this section's endianness
                    bom = buf[pos + 8 : pos + 12]
                    if bom == b"\x4d\x3c\x2b\x1a":
                        self._endian = "<"
                    elif bom == b"\x1a\x2b\x3c\x4d":
                        self._endian = ">"
                    else:
                        raise PcapError(f"corrupt section header {self._where(pos)}: bad byte-order magic")
                    self._ifaces = []
                e = self._endian
                btype, blen = struct.unpack_from(e + "II", buf, pos)
                if blen < 12 or blen % 4 or blen > MAX_BLOCK:
                    raise PcapError(f"corrupt block {self._where(pos)}: length {blen}")
                if pos + blen > end:
                    break
                if struct.unpack_from(e + "I", buf, pos + blen - 4)[0] != blen:
                    raise PcapError(f"corrupt block {self._where(pos)}: trailing length does not match")
                if btype == BLOCK_EPB or btype == BLOCK_OPB:
                    # EPB: interface u32; obsolete Packet Block: interface u16 + drops u16; then the same
                    fields = "IIIII" if btype == BLOCK_EPB else "HHIIII"
                    iface_id, *_rest, hi, lo, cap, _orig = struct.unpack_from(e + fields, buf, pos + 8)
                    if cap > blen - 32:
                        raise PcapError(f"corrupt packet block {self._where(pos)}: length {cap}")
                    iface = self._iface(iface_id, pos)
                    ts = ((hi << 32) | lo) * iface.scale + iface.offset
                    self._last_ts = ts
                    self.packets += 1
                    yield ts, iface.linktype, buf[pos + 28 : pos + 28 + cap]
                elif btype == BLOCK_SPB:
                    iface = self._iface(0, pos)
                    (orig,) = struct.unpack_from(e + "I", buf, pos + 8)
                    cap = min(orig, blen - 16)
                    self.packets += 1
                    yield self._last_ts, iface.linktype, buf[pos + 12 : pos + 12 + cap]
                elif btype == BLOCK_IDB:
                    self._interface_block(buf, pos, blen)
                elif btype == BLOCK_ISB:
                    self._statistics_block(buf, pos, blen)
                pos += blen
        finally:
            self._pos = pos

    def _iface(self, index: int, pos: int) -> _Interface:
        if index >= len(self._ifaces):
            raise PcapError(f"corrupt packet block {self._where(pos)}: interface {index} was never described")
        return self._ifaces[index]

    def _options(self, buf: bytes, start: int, stop: int) -> Iterator[tuple[int, bytes]]:
        e = self._endian
        pos = start
        while pos + 4 <= stop:
            code, length = struct.unpack_from(e + "HH", buf, pos)
            if code == OPT_END:
                return
            value = buf[pos + 4 : pos + 4 + length]
            yield code, value
            pos += 4 + ((length + 3) & ~3)

    def _interface_block(self, buf: bytes, pos: int, blen: int) -> None:
        e = self._endian
        linktype, _reserved, _snap = struct.unpack_from(e + "HHI", buf, pos + 8)
        scale, offset = 1e-6, 0.0
        for code, value in self._options(buf, pos + 16, pos + blen - 4):
            if code == OPT_IF_TSRESOL and value:
                v = value[0]
                scale = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0**-v
            elif code == OPT_IF_TSOFFSET and len(value) == 8:
                offset = float(struct.unpack(e + "q", value)[0])
        self._ifaces.append(_Interface(linktype, scale, offset))

    def _statistics_block(self, buf: bytes, pos: int, blen: int) -> None:
        e = self._endian
        iface_id, hi, lo = struct.unpack_from(e + "III", buf, pos + 8)
        drops = 0
        for code, value in self._options(buf, pos + 20, pos + blen - 4):
            if code in (OPT_ISB_IFDROP, OPT_ISB_OSDROP) and len(value) == 8:
                drops += struct.unpack(e + "Q", value)[0]
        if iface_id < len(self._ifaces):
            iface = self._ifaces[iface_id]
            ts = ((hi << 32) | lo) * iface.scale + iface.offset
            # counters are cumulative per interface: add what is new
            if drops > iface.drops:
                self.stats.drops += drops - iface.drops
                iface.drops = drops
                self.stats_changed = True
            self.stats.time = ts
