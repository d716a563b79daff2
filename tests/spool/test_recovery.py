from __future__ import annotations

import os
from pathlib import Path

import pytest

from callvault.spool.recovery import SpoolError, find_spools, remove_spool
from callvault.spool.writer import CallSpool


def _make_spools(root: Path) -> None:
    done = CallSpool(root, "call-done")
    done.journal({"type": "start"})
    done.open_stream(0).append(1.0, b"abc")
    done.mark_complete()

    crashed = CallSpool(root, "call-crashed")  # never closed: as after kill -9
    crashed.journal({"type": "start"})
    for index in (10, 2):
        stream = crashed.open_stream(index)
        stream.append(1.0, b"xyz")
        stream.flush()


def test_scan_tells_closed_spools_from_interrupted_ones(tmp_path: Path) -> None:
    _make_spools(tmp_path)
    spools = {info.call_key: info for info in find_spools(tmp_path)}
    assert sorted(spools) == ["call-crashed", "call-done"]

    done = spools["call-done"]
    assert done.closed is True
    assert done.error is None
    assert [e["type"] for e in done.journal] == ["opened", "start", "closed"]
    assert done.stream_files == [tmp_path / "call-done" / "stream-0.rtp"]

    crashed = spools["call-crashed"]
    assert crashed.closed is False
    assert [e["type"] for e in crashed.journal] == ["opened", "start"]
    assert [p.name for p in crashed.stream_files] == ["stream-2.rtp", "stream-10.rtp"]
    assert crashed.path == tmp_path / "call-crashed"
    assert crashed.bytes == sum(p.stat().st_size for p in (tmp_path / "call-crashed").iterdir())


def test_scan_skips_foreign_entries_and_reports_unreadable_journals(tmp_path: Path) -> None:
    _make_spools(tmp_path)
    (tmp_path / "notes.txt").write_text("not a spool")
    (tmp_path / "other-app").mkdir()
    (tmp_path / "other-app" / "data.db").write_bytes(b"x")
    os.symlink(tmp_path / "call-done", tmp_path / "link-to-done")
    (tmp_path / ".tmp").mkdir()
    bad = tmp_path / "call-corrupt"
    bad.mkdir()
    (bad / "journal.jsonl").write_bytes(b"garbage\n{}\n")
    (tmp_path / "call-no-journal").mkdir()

    spools = {info.call_key: info for info in find_spools(tmp_path)}
    assert sorted(spools) == ["call-corrupt", "call-crashed", "call-done", "call-no-journal"]
    assert spools["call-corrupt"].closed is False
    assert spools["call-corrupt"].error is not None
    assert "line 1 is corrupt" in spools["call-corrupt"].error
    assert spools["call-no-journal"].error == f"{tmp_path / 'call-no-journal'}: journal not found"


def test_scan_of_missing_root_finds_nothing_and_a_file_root_raises(tmp_path: Path) -> None:
    assert find_spools(tmp_path / "absent") == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpoolError, match=r"^spool root .*file is not a directory$"):
        find_spools(tmp_path / "file")


def test_remove_spool_deletes_a_finished_spool(tmp_path: Path) -> None:
    _make_spools(tmp_path)
    remove_spool(tmp_path / "call-done", root=tmp_path)
    assert not (tmp_path / "call-done").exists()
    assert [info.call_key for info in find_spools(tmp_path)] == ["call-crashed"]


def test_remove_spool_refuses_paths_outside_root(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    outside = tmp_path / "elsewhere"
    _make_spools(outside)
    root.mkdir()
    with pytest.raises(SpoolError, match=r"^refusing to remove .*: not directly inside spool root "):
        remove_spool(outside / "call-done", root=root)
    with pytest.raises(SpoolError, match=r"^refusing to remove .*: not directly inside spool root "):
        remove_spool(root / ".." / "elsewhere" / "call-done", root=root)
    with pytest.raises(SpoolError, match=r"^refusing to remove .*: not directly inside spool root "):
        remove_spool(root / "call-done" / "nested", root=root)
    assert (outside / "call-done" / "journal.jsonl").exists()


def test_remove_spool_never_follows_a_symlink_out_of_root(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    outside = tmp_path / "elsewhere"
    _make_spools(outside)
    root.mkdir()
    os.symlink(outside / "call-done", root / "call-done")
    with pytest.raises(SpoolError, match=r"^refusing to remove .*call-done: it is a symlink$"):
        remove_spool(root / "call-done", root=root)
    assert (outside / "call-done" / "journal.jsonl").exists()
    assert (root / "call-done").is_symlink()


def test_remove_spool_refuses_directories_that_are_not_spools(tmp_path: Path) -> None:
    _make_spools(tmp_path)
    (tmp_path / "call-done" / "precious.txt").write_text("keep me")
    with pytest.raises(
        SpoolError, match=r"^refusing to remove .*call-done: 'precious.txt' is not a spool file$"
    ):
        remove_spool(tmp_path / "call-done", root=tmp_path)
    assert (tmp_path / "call-done" / "journal.jsonl").exists()  # nothing deleted

    os.symlink("/etc/passwd", tmp_path / "call-crashed" / "stream-5.rtp")
    with pytest.raises(SpoolError, match=r"'stream-5.rtp' is not a spool file$"):
        remove_spool(tmp_path / "call-crashed", root=tmp_path)
    assert Path("/etc/passwd").exists()

    (tmp_path / "plainfile").write_text("x")
    with pytest.raises(SpoolError, match=r"plainfile: not a directory$"):
        remove_spool(tmp_path / "plainfile", root=tmp_path)
    with pytest.raises(SpoolError, match=r"^cannot remove .*call-gone: no such spool$"):
        remove_spool(tmp_path / "call-gone", root=tmp_path)
    with pytest.raises(SpoolError, match=r"^refusing to remove .*: '\.cache' is not a call key$"):
        remove_spool(tmp_path / ".cache", root=tmp_path)
