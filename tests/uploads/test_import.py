"""``callvault import-audio DIR``: CSV (CP932/UTF-8) and JSON sidecars, traversal, summary, re-runs."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from callvault.apps.calls.models import Call
from callvault.apps.recordings.models import Recording
from callvault.apps.uploads.importer import import_folder
from tests.uploads.conftest import Cast, make_audio, sha256, stored_files

pytestmark = pytest.mark.django_db


def recorder_export(folder: Path, outside: Path) -> dict[str, Path]:
    """A recorder box's export: Japanese CSV headers in CP932, one JSON sidecar, and bad entries."""
    files = {
        "in": make_audio(folder, "wav", name="20261127_140500.wav"),
        "out": make_audio(folder, "mp3", freq=660, name="20261127_150000.mp3"),
    }
    (folder / "2026-11-28").mkdir()
    files["sidecar"] = make_audio(folder / "2026-11-28", "flac", freq=550, name="rec-0001.flac")
    (folder / "2026-11-28" / "rec-0001.json").write_text(
        json.dumps({"started_at": "2026-11-28T09:15:00+09:00", "caller": "201", "callee": "06-6123-4567",
                    "direction": "out", "user": "member"}, ensure_ascii=False),
        encoding="utf-8",
    )  # fmt: skip
    files["secret"] = make_audio(outside, "wav", freq=330, name="secret.wav")
    (folder / "readme.wav").write_text("これは音声ではありません", encoding="utf-8")
    files["no_meta"] = make_audio(folder, "opus", freq=770, name="orphan.opus")
    rows = [
        ["ファイル名", "開始日時", "発信者番号", "着信者番号", "方向", "担当者", "相手先名"],
        ["20261127_140500.wav", "2026/11/27 14:05:00", "03-1234-5678", "201", "着信", "member", "山田 太郎"],
        ["20261127_150000.mp3", "2026/11/27 15:00:00", "201", "090-1111-2222", "発信", "", "株式会社テスト"],
        ["../outside/secret.wav", "2026/11/27 16:00:00", "03-9999-9999", "201", "着信", "", ""],
        ["readme.wav", "2026/11/27 17:00:00", "03-8888-8888", "201", "着信", "", ""],
    ]
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    (folder / "calls.csv").write_bytes(buffer.getvalue().encode("cp932"))
    return files


def test_it_imports_a_recorder_export_with_a_cp932_csv_and_sidecars(
    cast: Cast, data_dir: Path, tmp_path: Path
) -> None:
    folder, outside = tmp_path / "export", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    files = recorder_export(folder, outside)
    summary = import_folder(folder, operator="test")
    by_file = {o.file: o for o in summary.outcomes}
    assert by_file["20261127_140500.wav"].status == "imported"
    assert by_file["20261127_150000.mp3"].status == "imported"
    assert by_file[str(Path("2026-11-28") / "rec-0001.flac")].status == "imported"
    assert by_file["../outside/secret.wav"].status == "rejected"
    assert "フォルダーの外" in by_file["../outside/secret.wav"].detail
    assert (
        by_file["readme.wav"].status == "rejected"
        and "音声ファイルとして読み取れません" in by_file["readme.wav"].detail
    )
    assert (
        by_file["orphan.opus"].status == "rejected"
        and "メタデータがありません" in by_file["orphan.opus"].detail
    )
    assert (summary.count("imported"), summary.count("rejected")) == (3, 3)
    # the rows became calls with the right people, times and teams
    inbound = Call.objects.get(pk=by_file["20261127_140500.wav"].call_id)
    assert (inbound.caller_number, inbound.callee_number, inbound.direction) == ("+81312345678", "201", "in")
    assert inbound.callee_name == "山田 太郎"
    assert inbound.started_at.isoformat() == "2026-11-27T05:05:00+00:00"  # 14:05 in Japan
    assert (inbound.team_id, inbound.agent_id) == (cast.team_a.pk, cast.member.pk)
    outbound = Call.objects.get(pk=by_file["20261127_150000.mp3"].call_id)
    assert (outbound.direction, outbound.callee_number, outbound.callee_name) == (
        "out",
        "+819011112222",
        "株式会社テスト",
    )
    assert outbound.team_id == cast.team_a.pk  # line 201 (the caller's side of an outbound call)
    sidecar = Call.objects.get(pk=by_file[str(Path("2026-11-28") / "rec-0001.flac")].call_id)
    assert (sidecar.callee_number, sidecar.agent_id) == ("+81661234567", cast.member.pk)
    assert Recording.objects.get(call=sidecar).sha256 == sha256(files["sidecar"])
    assert sha256(files["secret"]) not in {r.sha256 for r in Recording.objects.all()}
    assert len(stored_files(data_dir)) == 3


def test_a_second_run_imports_nothing_twice_and_a_dry_run_stores_nothing(
    cast: Cast, data_dir: Path, tmp_path: Path
) -> None:
    folder, outside = tmp_path / "export", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    recorder_export(folder, outside)
    dry = import_folder(folder, dry_run=True)
    assert dry.count("ok") == 3 and Call.objects.count() == 2 and stored_files(data_dir) == []
    import_folder(folder)
    calls = Call.objects.count()
    again = import_folder(folder)
    assert (again.count("imported"), again.count("duplicate"), again.count("rejected")) == (0, 3, 3)
    assert Call.objects.count() == calls and len(stored_files(data_dir)) == 3


def test_a_utf8_csv_with_english_columns_works_too(cast: Cast, data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "box"
    folder.mkdir()
    make_audio(folder, "amr", name="a.amr")
    (folder / "calls.csv").write_text(
        "\ufefffile,started_at,caller,callee,direction,team\n"
        "a.amr,2026-11-27T10:00:00+09:00,+819012345678,301,in,サポート部\n",
        encoding="utf-8",
    )
    summary = import_folder(folder)
    (outcome,) = summary.outcomes
    assert outcome.status == "imported"
    assert Call.objects.get(pk=outcome.call_id).team_id == cast.team_b.pk


def test_the_command_prints_a_summary_and_fails_when_files_were_rejected(tmp_path: Path) -> None:
    """The real command on a fresh data directory, as an operator runs it."""
    folder, outside = tmp_path / "export", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    recorder_export(folder, outside)
    # the CSV names the member; a fresh installation has no such user: that row is refused
    env: dict[str, Any] = {**os.environ, "CALLVAULT_DATA_DIR": str(tmp_path / "fresh")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("DATABASE_URL", None)  # the embedded default of a fresh installation
    cmd = [sys.executable, "-m", "callvault.cli", "import-audio", str(folder)]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 1, first.stderr
    assert "完了: 取込 1 件、重複のためスキップ 0 件、拒否 5 件" in first.stdout
    assert "拒否  ../outside/secret.wav" in first.stdout and "フォルダーの外" in first.stdout
    assert "user: 指定されたユーザーは" in first.stdout
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert "完了: 取込 0 件、重複のためスキップ 1 件、拒否 5 件" in second.stdout
    missing = subprocess.run([*cmd[:-1], str(tmp_path / "nope")], env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "フォルダー" in missing.stderr and "Traceback" not in missing.stderr
