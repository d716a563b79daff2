from __future__ import annotations

from pathlib import Path

import pytest

from callvault.spool import reader as reader_module
from callvault.spool.format import FILE_HEADER, MAGIC, RECORD_HEADER
from callvault.spool.reader import SpoolError, read_journal, read_stream
from callvault.spool.writer import CallSpool
from tests.spool.helpers import rtp_packet


def _write_stream(root: Path, records: list[tuple[float, bytes]]) -> Path:
    with CallSpool(root, "call") as call:
        stream = call.open_stream(0)
        for record in records:
            stream.append(*record)
    return root / "call" / "stream-0.rtp"


def test_torn_final_record_at_every_byte_offset_returns_all_complete_records(tmp_path: Path) -> None:
    records = [(i * 0.02, rtp_packet(i, payload_len=20 + i)) for i in range(5)]
    source = _write_stream(tmp_path / "spool", records)
    data = source.read_bytes()
    last_start = len(data) - (RECORD_HEADER.size + len(records[-1][1]))
    torn = tmp_path / "torn.rtp"
    for cut in range(last_start, len(data)):
        torn.write_bytes(data[:cut])
        reader = read_stream(torn)
        assert list(reader) == records[:-1], f"cut at {cut}"
        assert reader.truncated_bytes == cut - last_start, f"cut at {cut}"
        assert reader.records == len(records) - 1
    torn.write_bytes(data)
    reader = read_stream(torn)
    assert list(reader) == records
    assert reader.truncated_bytes == 0


def test_file_torn_inside_its_header_reads_as_empty(tmp_path: Path) -> None:
    header = FILE_HEADER.pack(MAGIC, 1, RECORD_HEADER.size, 0)
    path = tmp_path / "stream-0.rtp"
    for cut in range(len(header)):
        path.write_bytes(header[:cut])
        reader = read_stream(path)
        assert list(reader) == []
        assert reader.truncated_bytes == cut


def test_foreign_file_is_rejected_for_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "stream-0.rtp"
    for content in (b"RIFF\x00\x00\x00\x00WAVEfmt ", b"hello", b"CVSPOOL2" + bytes(8)):
        path.write_bytes(content)
        with pytest.raises(SpoolError, match=r"not a callvault spool stream \(bad magic\)$"):
            read_stream(path)


def test_unknown_version_and_record_header_size_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "stream-0.rtp"
    path.write_bytes(FILE_HEADER.pack(MAGIC, 2, RECORD_HEADER.size, 0))
    with pytest.raises(SpoolError, match=r"unsupported spool format version 2 \(expected 1\)$"):
        read_stream(path)
    path.write_bytes(FILE_HEADER.pack(MAGIC, 1, 12, 0))
    with pytest.raises(SpoolError, match=r"record header size 12 does not match format version 1 \(10\)$"):
        read_stream(path)


def test_missing_stream_file_raises(tmp_path: Path) -> None:
    with pytest.raises(
        SpoolError, match=r"stream-9\.rtp: cannot open stream file: No such file or directory$"
    ):
        read_stream(tmp_path / "stream-9.rtp")


def test_records_spanning_read_chunks_are_reassembled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [(float(i), rtp_packet(i, payload_len=i % 50)) for i in range(300)]
    path = _write_stream(tmp_path, records)
    monkeypatch.setattr(reader_module, "_CHUNK", 7)
    assert list(read_stream(path)) == records


def test_torn_journal_line_at_every_byte_offset_is_ignored(tmp_path: Path) -> None:
    with CallSpool(tmp_path / "spool", "call") as call:
        call.journal({"type": "start", "caller": "山田"})
        call.journal({"type": "dtmf", "digit": "#", "note": "番号"})
    data = (tmp_path / "spool" / "call" / "journal.jsonl").read_bytes()
    last_start = data.rindex(b"\n", 0, len(data) - 1) + 1
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    journal = crashed / "journal.jsonl"
    for cut in range(last_start, len(data)):
        journal.write_bytes(data[:cut])  # includes cuts inside a multi-byte UTF-8 character
        assert [e["type"] for e in read_journal(crashed)] == ["opened", "start"], f"cut at {cut}"
    journal.write_bytes(data)
    assert [e["type"] for e in read_journal(crashed)] == ["opened", "start", "dtmf"]


def test_corrupt_journal_line_in_the_middle_raises_with_its_line_number(tmp_path: Path) -> None:
    (tmp_path / "journal.jsonl").write_bytes(b'{"type":"opened"}\n{"type":"sta\n{"type":"end"}\n')
    with pytest.raises(SpoolError, match=r"journal\.jsonl: line 2 is corrupt: "):
        read_journal(tmp_path)
    (tmp_path / "journal.jsonl").write_bytes(b'{"type":"opened"}\n{}\n[1, 2]\n')
    with pytest.raises(SpoolError, match=r"journal\.jsonl: line 3 is not a JSON object$"):
        read_journal(tmp_path)
    (tmp_path / "journal.jsonl").write_bytes(b'{"type":"opened"}\n\xff\xfe\n{}\n')
    with pytest.raises(SpoolError, match=r"journal\.jsonl: line 2 is corrupt: 'utf-8' codec"):
        read_journal(tmp_path)


def test_missing_journal_raises(tmp_path: Path) -> None:
    with pytest.raises(SpoolError, match=r"journal\.jsonl: journal not found$"):
        read_journal(tmp_path)


def test_reader_can_be_closed_early(tmp_path: Path) -> None:
    path = _write_stream(tmp_path, [(1.0, b"a"), (2.0, b"b")])
    with read_stream(path) as reader:
        assert next(reader) == (1.0, b"a")
    assert reader._file.closed
    with pytest.raises(StopIteration):
        next(reader)
