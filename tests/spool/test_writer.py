from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from callvault.spool import writer as writer_module
from callvault.spool.format import FILE_HEADER, MAGIC
from callvault.spool.reader import read_journal, read_stream
from callvault.spool.writer import CallSpool, SpoolError, SpoolFlusher
from tests.spool.helpers import rtp_packet


def _records(path: Path) -> list[tuple[float, bytes]]:
    return list(read_stream(path))


def test_round_trip_preserves_every_record_and_journal_event(tmp_path: Path) -> None:
    call = CallSpool(tmp_path, "call-1")
    call.journal({"type": "start", "caller": "山田 太郎", "to": "+81312345678"})
    streams = [call.open_stream(0), call.open_stream(1)]
    expected: dict[int, list[tuple[float, bytes]]] = {0: [], 1: []}
    for seq in range(200):
        for index, stream in enumerate(streams):
            record = (1_700_000_000.0 + seq * 0.02 + index * 1e-4, rtp_packet(seq + 1000 * index))
            stream.append(*record)
            expected[index].append(record)
    call.mark_complete()

    for index in (0, 1):
        reader = read_stream(tmp_path / "call-1" / f"stream-{index}.rtp")
        assert list(reader) == expected[index]
        assert reader.truncated_bytes == 0
        assert reader.index == index
    journal = read_journal(tmp_path / "call-1")
    assert [event["type"] for event in journal] == ["opened", "start", "closed"]
    assert journal[0]["call_key"] == "call-1"
    assert journal[1] == {"type": "start", "caller": "山田 太郎", "to": "+81312345678"}


def test_journal_is_utf8_not_ascii_escaped_and_written_through_before_close(tmp_path: Path) -> None:
    call = CallSpool(tmp_path, "call-utf8")
    call.journal({"type": "party", "name": "山田"})
    raw = (tmp_path / "call-utf8" / "journal.jsonl").read_bytes()
    assert "山田".encode() in raw
    assert b"\\u" not in raw
    assert raw.endswith(b"\n")
    assert json.loads(raw.splitlines()[1]) == {"type": "party", "name": "山田"}
    call.close()


def test_stream_file_starts_with_magic_header(tmp_path: Path) -> None:
    with CallSpool(tmp_path, "call-magic") as call:
        call.open_stream(7)
    head = (tmp_path / "call-magic" / "stream-7.rtp").read_bytes()
    assert len(head) == FILE_HEADER.size
    assert FILE_HEADER.unpack(head) == (MAGIC, 1, 10, 7)


def test_append_stays_in_memory_until_flush_writes_it(tmp_path: Path) -> None:
    call = CallSpool(tmp_path, "call-flush")
    stream = call.open_stream(0)
    path = stream.path
    stream.append(1.0, b"abc")
    stream.append(2.0, b"")
    assert path.stat().st_size == FILE_HEADER.size
    assert stream.has_pending
    assert stream.pending_bytes == 10 + 3 + 10

    assert stream.flush() == 23
    assert path.stat().st_size == FILE_HEADER.size + 23
    assert not stream.has_pending
    assert stream.flush() == 0
    assert _records(path) == [(1.0, b"abc"), (2.0, b"")]
    call.close()


def test_flusher_flushes_only_streams_with_pending_data_and_forgets_closed_ones(tmp_path: Path) -> None:
    flusher = SpoolFlusher()
    calls = [CallSpool(tmp_path, f"call-{i}", flusher=flusher) for i in range(3)]
    streams = [call.open_stream(n) for call in calls for n in (0, 1)]
    assert len(flusher) == 6
    streams[0].append(1.0, b"x" * 5)
    streams[3].append(2.0, b"y" * 7)

    assert flusher.flush_all() == (10 + 5) + (10 + 7)
    assert _records(streams[0].path) == [(1.0, b"xxxxx")]
    assert _records(streams[3].path) == [(2.0, b"yyyyyyy")]
    assert _records(streams[1].path) == []
    assert flusher.flush_all() == 0

    calls[0].close()
    assert len(flusher) == 4
    streams[5].close()
    assert len(flusher) == 3
    for call in calls:
        call.close()
    assert len(flusher) == 0


def test_flush_after_partial_write_failure_resumes_without_loss_or_duplication(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = CallSpool(tmp_path, "call-enospc")
    stream = call.open_stream(0)
    packets = [(i * 0.02, rtp_packet(i)) for i in range(30)]
    for record in packets:
        stream.append(*record)

    real_write = os.write
    calls = {"n": 0}

    def short_then_enospc(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[:1000]))  # short write mid-record
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module.os, "write", short_then_enospc)
    with pytest.raises(
        SpoolError, match=r"stream 0: wrote 1000 of 5460 bytes to .*: No space left on device"
    ):
        stream.flush()
    monkeypatch.setattr(writer_module.os, "write", real_write)

    stream.append(9.0, b"late")
    stream.flush()
    assert _records(stream.path) == [*packets, (9.0, b"late")]
    call.close()


def test_flush_all_flushes_healthy_streams_and_reports_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flusher = SpoolFlusher()
    call = CallSpool(tmp_path, "call-partial-fail", flusher=flusher)
    bad, good = call.open_stream(0), call.open_stream(1)
    bad.append(1.0, b"bad")
    good.append(1.0, b"good")
    real_write = os.write
    bad_fd = bad._fd

    def failing_for_bad(fd: int, data: bytes | memoryview) -> int:
        if fd == bad_fd:
            raise OSError(errno.EIO, "Input/output error")
        return real_write(fd, data)

    monkeypatch.setattr(writer_module.os, "write", failing_for_bad)
    with pytest.raises(
        SpoolError, match=r"^1 of 2 streams failed to flush; first: stream 0: wrote 0 of 13 bytes"
    ):
        flusher.flush_all()
    assert _records(good.path) == [(1.0, b"good")]
    assert bad.has_pending
    monkeypatch.setattr(writer_module.os, "write", real_write)
    assert flusher.flush_all() == 13
    assert _records(bad.path) == [(1.0, b"bad")]
    call.close()


def test_journal_line_torn_by_write_error_is_completed_before_the_next_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = CallSpool(tmp_path, "call-journal-enospc")
    real_write = os.write
    calls = {"n": 0}

    def half_then_fail(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[:5]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module.os, "write", half_then_fail)
    with pytest.raises(SpoolError, match=r"journal write to .*journal.jsonl failed: No space left on device"):
        call.journal({"type": "dtmf", "digit": "5"})
    monkeypatch.setattr(writer_module.os, "write", real_write)
    call.journal({"type": "hold"})
    assert [e["type"] for e in read_journal(call.path)] == ["opened", "dtmf", "hold"]
    call.close()


def test_journal_event_not_written_at_all_is_dropped_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = CallSpool(tmp_path, "call-journal-eio")

    def fail(fd: int, data: bytes | memoryview) -> int:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(writer_module.os, "write", fail)
        with pytest.raises(SpoolError, match="Input/output error"):
            call.journal({"type": "lost"})
    call.journal({"type": "kept"})
    assert [e["type"] for e in read_journal(call.path)] == ["opened", "kept"]
    call.close()


def test_mark_complete_flushes_streams_writes_closed_record_and_closes(tmp_path: Path) -> None:
    call = CallSpool(tmp_path, "call-done", fsync=True)
    stream = call.open_stream(0)
    stream.append(5.0, b"pkt")
    call.mark_complete()
    assert call.closed and stream.closed
    assert _records(stream.path) == [(5.0, b"pkt")]
    assert read_journal(call.path)[-1]["type"] == "closed"
    call.close()  # idempotent
    stream.append(6.0, b"too late")
    with pytest.raises(SpoolError, match=r"^stream 0: flush after close \(1 records pending\)$"):
        stream.flush()
    with pytest.raises(SpoolError, match=r"^journal of call call-done is closed$"):
        call.journal({"type": "late"})
    with pytest.raises(SpoolError, match=r"^spool of call call-done is closed$"):
        call.open_stream(1)


def test_close_without_mark_complete_leaves_spool_interrupted(tmp_path: Path) -> None:
    with CallSpool(tmp_path, "call-shutdown") as call:
        call.open_stream(0).append(1.0, b"a")
    assert [e["type"] for e in read_journal(call.path)] == ["opened"]
    assert _records(call.path / "stream-0.rtp") == [(1.0, b"a")]


@pytest.mark.parametrize(
    ("key", "fragment"),
    [("", "''"), ("../evil", "'../evil'"), ("a/b", "'a/b'"), (".hidden", "'.hidden'"), ("x" * 201, "xxx")],
)
def test_invalid_call_keys_are_rejected(tmp_path: Path, key: str, fragment: str) -> None:
    with pytest.raises(SpoolError, match=r"^invalid call key .*use 1-200 characters") as info:
        CallSpool(tmp_path, key)
    assert fragment in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_existing_spool_directory_is_not_reused(tmp_path: Path) -> None:
    CallSpool(tmp_path, "dup").close()
    with pytest.raises(SpoolError, match=rf"^spool directory {tmp_path / 'dup'} already exists$"):
        CallSpool(tmp_path, "dup")


def test_stream_index_must_be_new_and_in_range(tmp_path: Path) -> None:
    with CallSpool(tmp_path, "call-idx") as call:
        call.open_stream(0)
        with pytest.raises(SpoolError, match=r"^stream 0 of call call-idx already exists$"):
            call.open_stream(0)
        for bad in (-1, 1_000_000, True, "1"):
            with pytest.raises(SpoolError, match=r"^stream index must be an integer in 0\.\.999999, got "):
                call.open_stream(bad)  # type: ignore[arg-type]


def test_oversized_packet_is_rejected(tmp_path: Path) -> None:
    with CallSpool(tmp_path, "call-big") as call:
        stream = call.open_stream(3)
        with pytest.raises(
            SpoolError, match=r"^stream 3: packet of 65536 bytes exceeds the 65535-byte limit$"
        ):
            stream.append(1.0, bytes(65536))
        stream.append(1.0, bytes(65535))
        assert stream.pending_bytes == 65545


def test_bad_journal_events_are_rejected(tmp_path: Path) -> None:
    with CallSpool(tmp_path, "call-bad-events") as call:
        with pytest.raises(SpoolError, match=r"^journal event must be a dict, not list$"):
            call.journal(["type", "x"])  # type: ignore[arg-type]
        with pytest.raises(
            SpoolError, match=r"^journal event type 'closed' is reserved for the spool itself$"
        ):
            call.journal({"type": "closed"})
        with pytest.raises(SpoolError, match=r"^journal event is not JSON-serialisable: .*bytes"):
            call.journal({"type": "x", "raw": b"\x00"})
        with pytest.raises(SpoolError, match=r"^journal event is not JSON-serialisable: .*float"):
            call.journal({"type": "x", "v": float("nan")})
        with pytest.raises(SpoolError, match=r"^journal event is not JSON-serialisable: .*surrogate"):
            call.journal({"type": "x", "v": "\udc80"})
    assert [e["type"] for e in read_journal(call.path)] == ["opened"]


def test_extend_queues_a_batch_exactly_like_appends(tmp_path: Path) -> None:
    call = CallSpool(tmp_path, "batch")
    one, many = call.open_stream(0), call.open_stream(1)
    records = [(1_700_000_000.0 + i * 0.02, rtp_packet(i)) for i in range(50)]
    for record in records:
        one.append(*record)
    many.extend(records)
    call.mark_complete()
    folder = tmp_path / "batch"
    assert _records(folder / "stream-0.rtp") == _records(folder / "stream-1.rtp") == records


def test_extend_refuses_an_oversized_packet(tmp_path: Path) -> None:
    call = CallSpool(tmp_path, "big")
    stream = call.open_stream(0)
    with pytest.raises(SpoolError, match="packet of 70000 bytes exceeds"):
        stream.extend([(1.0, b"x" * 10), (2.0, b"x" * 70000)])
    call.close()
