"""The recording completeness check on real recordings (encoded at test time), its page, CLI and gauges.

A short recording and a one-sided call recorded by the real recorder are in test_e2e.py.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import Client
from django.utils import timezone

from callvault.apps.audit.models import AuditEntry
from callvault.apps.calls.models import Call, Stream
from callvault.apps.completeness.models import OrphanFile
from callvault.apps.completeness.services import run_check, scan_storage
from callvault.apps.recordings.models import Recording
from callvault.media.encode import encode_recording
from callvault.storage import LocalStorage
from tests.pbx.conftest import Cast, Pbx, make_call, tone

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _one_minute_grace(settings: Any) -> None:
    settings.COMPLETENESS_GRACE = 60  # the cast's calls ended about 4 minutes ago


def codes(call: Call) -> list[str]:
    call.refresh_from_db()
    return [r["code"] for r in call.completeness_reasons]


def store_pcm(
    call: Call, pcm: np.ndarray, recordings_dir: Path, tmp_path: Path, fmt: str = "opus", **fields: Any
) -> Recording:
    out = tmp_path / f"{call.pk}.{fmt}"
    info = encode_recording(pcm, 8000, fmt, out)
    key = f"2026/11/27/{call.pk}.{fmt}"
    LocalStorage(recordings_dir).put_file(key, out)
    values = {
        "format": fmt,
        "codec": info.codec,
        "channels": info.channels,
        "sample_rate": info.sample_rate,
        "bytes": info.bytes,
        "sha256": info.sha256,
        "duration": info.duration,
        "channel_map": {"left": "caller", "right": "callee"},
        **fields,
    }
    return Recording.objects.create(call=call, storage_key=key, **values)


def ended_call(cast: Cast, seconds: float = 10.0, **fields: Any) -> Call:
    return make_call(cast.team_a, cast.member, duration=seconds, **fields)


def test_a_complete_recording_is_ok(cast: Cast, make_recording: Any) -> None:
    call = ended_call(cast, 3.0)
    make_recording(call, seconds=3.0)
    summary = run_check(call_ids=[call.pk])
    assert (summary.checked, summary.ok, summary.flagged) == (1, 1, 0)
    assert codes(call) == [] and call.completeness == "ok"


def test_an_answered_pbx_call_without_recording_is_missing_after_the_grace_period(
    cast: Cast, pbx: Pbx, settings: Any
) -> None:
    settings.COMPLETENESS_GRACE = 600
    t = timezone.now()
    pbx.signed(
        {
            "event": "answered",
            "call_id": "m1",
            "time": (t - timedelta(minutes=30)).isoformat(),
            "caller": "0312345678",
            "extension": "201",
        }
    )
    pbx.signed({"event": "ended", "call_id": "m1", "time": (t - timedelta(minutes=20)).isoformat()})
    pbx.signed(
        {
            "event": "answered",
            "call_id": "m2",
            "time": (t - timedelta(minutes=3)).isoformat(),
            "caller": "0312345679",
            "extension": "201",
        }
    )
    pbx.signed({"event": "ended", "call_id": "m2", "time": (t - timedelta(minutes=1)).isoformat()})
    pbx.signed(
        {
            "event": "ringing",
            "call_id": "m3",
            "time": (t - timedelta(minutes=40)).isoformat(),
            "caller": "0312345670",
        }
    )
    pbx.signed({"event": "ended", "call_id": "m3", "time": (t - timedelta(minutes=39)).isoformat()})
    run_check()
    old = Call.objects.get(metadata__pbx__call_id="m1")
    recent = Call.objects.get(metadata__pbx__call_id="m2")
    missed = Call.objects.get(metadata__pbx__call_id="m3")
    assert codes(old) == ["missing"] and old.completeness_reasons[0]["detail"]["recording_state"] == "none"
    assert recent.completeness == ""  # within the grace period: not judged yet
    assert missed.state == "cancelled" and missed.completeness == "ok"  # a missed call needs no recording


def test_a_failed_recording_is_missing_and_can_be_retried(cast: Cast) -> None:
    call = ended_call(cast, recording_state="failed", recording_error="decode error")
    run_check(call_ids=[call.pk])
    assert codes(call) == ["missing"]
    assert call.completeness_reasons[0]["detail"] == {"recording_state": "failed", "error": "decode error"}


def test_a_deleted_file_is_file_missing_and_restoring_it_clears_the_flag(
    cast: Cast, make_recording: Any, recordings_dir: Path, tmp_path: Path
) -> None:
    call = ended_call(cast, 2.0)
    rec = make_recording(call, seconds=2.0)
    path = recordings_dir / rec.storage_key
    backup = tmp_path / "backup.opus"
    backup.write_bytes(path.read_bytes())
    os.chmod(path, 0o640)
    path.unlink()
    run_check(call_ids=[call.pk])
    assert codes(call) == ["file_missing"]
    path.write_bytes(backup.read_bytes())
    run_check()
    assert codes(call) == ["file_missing"]  # flagged calls are looked at again every 15 minutes
    Call.objects.filter(pk=call.pk).update(completeness_checked_at=timezone.now() - timedelta(minutes=16))
    run_check()  # the periodic run re-checks it by itself
    assert codes(call) == [] and call.completeness == "ok"


def test_silence_on_both_channels_and_a_zero_byte_file_are_empty(
    cast: Cast, recordings_dir: Path, tmp_path: Path
) -> None:
    silent = ended_call(cast, 3.0)
    store_pcm(silent, np.zeros((8000 * 3, 2), dtype=np.int16), recordings_dir, tmp_path)
    zero = ended_call(cast, 3.0)
    empty = tmp_path / "empty.opus"
    empty.write_bytes(b"")
    LocalStorage(recordings_dir).put_file(f"2026/11/27/{zero.pk}.opus", empty)
    Recording.objects.create(
        call=zero,
        storage_key=f"2026/11/27/{zero.pk}.opus",
        format="opus",
        codec="opus",
        channels=2,
        sample_rate=8000,
        bytes=0,
        sha256="0" * 64,
        duration=0.0,
    )
    run_check(call_ids=[silent.pk, zero.pk])
    assert codes(silent) == ["empty"] and codes(zero) == ["empty"]


def test_no_packets_on_any_stream_is_empty(cast: Cast, make_recording: Any) -> None:
    call = ended_call(cast, 3.0)
    make_recording(call, seconds=3.0)
    Stream.objects.create(call=call, index=0, role="caller", packets_received=0)
    Stream.objects.create(call=call, index=1, role="callee", packets_received=0)
    run_check(call_ids=[call.pk])
    assert codes(call) == ["empty"]


def test_a_recording_more_than_two_seconds_shorter_than_the_call_is_short(
    cast: Cast, make_recording: Any
) -> None:
    short = ended_call(cast, 65.0)
    make_recording(short, seconds=3.0)
    close = ended_call(cast, 4.5)
    make_recording(close, seconds=3.0)  # 1.5 s shorter: within the tolerance
    run_check(call_ids=[short.pk, close.pk])
    assert codes(short) == ["short"] and short.completeness_reasons[0]["detail"]["call"] == 65.0
    assert codes(close) == []


@pytest.mark.parametrize("fmt", ["opus", "flac", "wav"])
def test_a_silent_channel_in_a_two_party_call_is_one_sided(
    cast: Cast, recordings_dir: Path, tmp_path: Path, fmt: str
) -> None:
    call = ended_call(cast, 3.0)
    pcm = np.stack([tone(440, 3.0), np.zeros(8000 * 3, dtype=np.int16)], axis=1)
    store_pcm(call, pcm, recordings_dir, tmp_path, fmt)
    run_check(call_ids=[call.pk])
    assert codes(call) == ["one_sided"]
    detail = call.completeness_reasons[0]["detail"]
    assert detail["silent"] == ["callee"] and detail["levels_dbfs"][0] > -30


def test_checking_twice_gives_the_same_result_and_does_not_touch_the_call(
    cast: Cast, make_recording: Any
) -> None:
    call = ended_call(cast, 65.0)
    make_recording(call, seconds=3.0)
    run_check(call_ids=[call.pk])
    call.refresh_from_db()
    first = (call.completeness_reasons, call.updated_at)
    run_check(call_ids=[call.pk])
    call.refresh_from_db()
    assert (call.completeness_reasons, call.updated_at) == first
    assert run_check().checked == 2  # the cast's calls (never checked); this one was checked just now


def test_the_storage_scan_finds_orphan_files_and_forgets_them_once_gone(
    cast: Cast, make_recording: Any, recordings_dir: Path
) -> None:
    make_recording(cast.call_a, seconds=1.0)
    orphan = recordings_dir / "2026/11/26/5d1c0c5e-0000-4000-8000-000000000000.opus"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"OggS" + b"\0" * 100)
    (recordings_dir / "2026/11/26/.x.opus.tmp").write_bytes(b"half")  # a write in progress: not an orphan
    seen, orphans = scan_storage()
    assert (seen, orphans) == (2, 1)
    assert OrphanFile.objects.get().storage_key == "2026/11/26/5d1c0c5e-0000-4000-8000-000000000000.opus"
    assert scan_storage() == (2, 1)  # idempotent
    orphan.unlink()
    assert scan_storage() == (1, 0)


def test_the_scan_flags_rows_whose_file_is_gone(
    cast: Cast, make_recording: Any, recordings_dir: Path
) -> None:
    rec = make_recording(cast.call_a, seconds=1.0)
    (recordings_dir / rec.storage_key).unlink()
    scan_storage()
    assert codes(cast.call_a) == ["file_missing"]


def test_metrics_show_flagged_calls_by_reason_and_orphans(
    cast: Cast, make_recording: Any, recordings_dir: Path
) -> None:
    make_recording(cast.call_a, seconds=3.0)  # call_a lasted 65 s: short
    (recordings_dir / "stray.wav").write_bytes(b"RIFF")
    run_check(scan=True)
    body = Client(REMOTE_ADDR="127.0.0.1").get("/metrics").content.decode()
    assert 'callvault_recordings_flagged{reason="short"} 1' in body
    assert 'callvault_recordings_flagged{reason="missing"} 1' in body  # call_b: answered, no recording
    assert "callvault_recordings_flagged_calls 2" in body
    assert "callvault_storage_orphan_files 1" in body
    assert 'callvault_metrics_source_up{source="completeness"} 1' in body


# --- the page ------------------------------------------------------------------------------------


@pytest.fixture
def flagged(cast: Cast, make_recording: Any) -> Cast:
    make_recording(cast.call_a, seconds=3.0)  # short
    run_check()  # call_b of team B: missing
    return cast


def test_supervisors_see_their_teams_flagged_calls_with_reasons(flagged: Cast, client: Client) -> None:
    client.force_login(flagged.supervisor)
    r = client.get("/checks/recordings/")
    assert r.status_code == 200
    html = r.content.decode()
    assert "録音の欠落チェック" in html and str(flagged.call_a.pk) in html and "録音が短い" in html
    assert str(flagged.call_b.pk) not in html  # team B's
    entry = AuditEntry.objects.filter(action="view", object_type="completeness").get()
    assert entry.username == "supervisor"


def test_admins_see_every_flagged_call_and_can_filter_by_reason(flagged: Cast, client: Client) -> None:
    client.force_login(flagged.admin)
    html = client.get("/checks/recordings/").content.decode()
    assert str(flagged.call_a.pk) in html and str(flagged.call_b.pk) in html
    html = client.get("/checks/recordings/", {"reason": "missing", "period": "7"}).content.decode()
    assert str(flagged.call_a.pk) not in html and str(flagged.call_b.pk) in html
    assert client.get("/checks/recordings/", {"reason": "bogus"}).status_code == 400
    assert client.get("/checks/recordings/", {"period": "9999"}).status_code == 400


@pytest.mark.parametrize("role", ["member", "outsider", "auditor"])
def test_agents_and_auditors_do_not_get_the_page(flagged: Cast, client: Client, role: str) -> None:
    client.force_login(flagged.users()[role])
    assert client.get("/checks/recordings/").status_code == 404


def test_rechecking_a_fixed_call_clears_it_and_is_audited(flagged: Cast, client: Client) -> None:
    Call.objects.filter(pk=flagged.call_a.pk).update(duration=3.0)  # say the call was corrected
    client.force_login(flagged.supervisor)
    r = client.post(f"/checks/recordings/{flagged.call_a.pk}/recheck")
    assert r.status_code == 302
    assert codes(flagged.call_a) == []
    assert AuditEntry.objects.filter(action="settings", object_id=str(flagged.call_a.pk)).exists()
    assert client.post(f"/checks/recordings/{flagged.call_b.pk}/recheck").status_code == 404  # team B


def test_the_retry_button_queues_the_failed_recording_again(flagged: Cast, client: Client) -> None:
    from huey.contrib.djhuey import HUEY

    def queued() -> list[tuple[str, tuple[Any, ...]]]:  # what the job queue holds (the real one)
        return [(task.name, tuple(task.args)) for task in HUEY.pending()]

    HUEY.flush()
    Call.objects.filter(pk=flagged.call_b.pk).update(recording_state="failed")
    client.force_login(flagged.admin)
    client.post(f"/checks/recordings/{flagged.call_b.pk}/recheck", {"retry": "1"})
    assert queued() == [("finalize_call_task", (str(flagged.call_b.pk),))]
    assert Call.objects.get(pk=flagged.call_b.pk).recording_state == "pending"


def test_only_admins_run_the_whole_check(flagged: Cast, client: Client) -> None:
    client.force_login(flagged.supervisor)
    assert client.post("/checks/recordings/run").status_code == 404
    client.force_login(flagged.admin)
    assert client.post("/checks/recordings/run").status_code == 302
    assert AuditEntry.objects.filter(action="settings", object_id="run").exists()


def test_the_call_page_and_the_calls_list_show_the_flag(flagged: Cast, client: Client) -> None:
    client.force_login(flagged.supervisor)
    page = client.get(f"/calls/{flagged.call_a.pk}/").content.decode()
    assert "録音の欠落チェックで問題が見つかりました" in page and 'data-reason="short"' in page
    listed = client.get("/", {"recording": "flagged"}).content.decode()
    assert str(flagged.call_a.pk) in listed
    ok_call = make_call(flagged.team_a, flagged.member, minutes_ago=3)
    assert str(ok_call.pk) in client.get("/").content.decode()
    assert str(ok_call.pk) not in client.get("/", {"recording": "flagged"}).content.decode()


def test_the_cli_prints_a_summary(flagged: Cast, capsys: Any) -> None:
    from callvault.cli import _cmd_check_recordings, build_parser

    args = build_parser().parse_args(["check-recordings", "--json", "--no-scan"])
    assert _cmd_check_recordings(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["flagged_total"] == 2 and {c["id"] for c in out["flagged_calls"]} == {
        str(flagged.call_a.pk),
        str(flagged.call_b.pk),
    }
    args = build_parser().parse_args(["check-recordings", "--days", "0"])
    assert _cmd_check_recordings(args) == 2


def test_the_page_speaks_english_when_chosen(flagged: Cast, client: Client, settings: Any) -> None:
    client.force_login(flagged.admin)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    html = client.get("/checks/recordings/").content.decode()
    assert "Recording completeness" in html and "Too short" in html and "Check again" in html
    assert "Recording check" in html  # the main navigation
    r = client.get("/api/v1/events", {"event": "ringing", "call_id": "x", "token": "pbxsec_nope"})
    assert r.json()["message"] == "The token is not valid."


def test_a_recording_that_becomes_ready_clears_the_flag_at_once(cast: Cast, make_recording: Any) -> None:
    from callvault.apps.recordings.signals import recording_ready

    call = ended_call(cast, 3.0, recording_state="failed")
    run_check(call_ids=[call.pk])
    assert codes(call) == ["missing"]
    make_recording(call, seconds=3.0)  # the retried finalize job stored it
    recording_ready.send_robust(sender=Recording, call=call)
    assert codes(call) == [] and call.completeness == "ok"


def test_the_periodic_job_runs_the_check(cast: Cast, make_recording: Any) -> None:
    from callvault.apps.completeness.tasks import check_recordings_task, scan_storage_task

    make_recording(cast.call_a, seconds=3.0)
    check_recordings_task.call_local()
    assert codes(cast.call_a) == ["short"] and codes(cast.call_b) == ["missing"]
    scan_storage_task.call_local()  # again, with the scan: the same result
    assert codes(cast.call_a) == ["short"]
