"""管理 → 録音端末 (token shown once, rules, revoke, audit) and crash recovery of stored files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from callvault.apps.accounts.models import hash_token
from callvault.apps.audit.models import AuditEntry
from callvault.apps.calls.models import Call
from callvault.apps.recordings.models import Recording
from callvault.apps.uploads import services
from callvault.apps.uploads.models import Device
from callvault.apps.uploads.tasks import sweep_uploads
from tests.uploads.conftest import META, Cast, device_client, make_audio, stored_files

pytestmark = pytest.mark.django_db


def admin_browser(cast: Cast) -> Client:
    client = Client()
    client.force_login(cast.admin)
    return client


def test_an_admin_registers_a_device_and_sees_its_token_once(cast: Cast) -> None:
    client = admin_browser(cast)
    page = client.post(
        "/admin/devices/new/", {"name": "受付 録音装置", "team": cast.team_a.pk, "user": cast.member.pk}
    )
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    html = page.content.decode()
    device = Device.objects.get()
    token = html.split('id="secret" type="text" value="', 1)[1].split('"', 1)[0]
    assert token.startswith("cvd_") and device.token_hash == hash_token(token)
    assert "今だけ表示され" in html and "/api/v1/uploads" in html
    listing = client.get("/admin/devices/").content.decode()
    assert "受付 録音装置" in listing and token not in listing and device.prefix in listing
    entry = AuditEntry.objects.get(action="token", detail__change="device_created")
    assert token not in str(entry.detail)


def test_a_device_user_must_belong_to_its_team(cast: Cast) -> None:
    page = admin_browser(cast).post(
        "/admin/devices/new/", {"name": "他部署のスマホ", "team": cast.team_a.pk, "user": cast.outsider.pk}
    )
    assert "チーム「営業部」のメンバーではありません" in page.content.decode()
    assert not Device.objects.exists()


def test_revoking_a_device_stops_its_uploads(
    cast: Cast, device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    response = admin_browser(cast).post(f"/admin/devices/{device[0].pk}/revoke/")
    assert response.status_code == 302
    with make_audio(audio_dir, "wav").open("rb") as fh:
        refused = device_client(device[1]).post("/api/v1/uploads", {**META, "file": fh})
    assert refused.status_code == 401
    assert AuditEntry.objects.filter(action="token", detail__change="device_revoked").count() == 1


def test_non_admins_do_not_find_the_device_pages(cast: Cast) -> None:
    client = Client()
    client.force_login(cast.supervisor)
    assert client.get("/admin/devices/").status_code == 404


def test_the_command_prints_only_the_token(cast: Cast, capsys: Any) -> None:
    from django.core.management import call_command

    call_command("create_device", "営業 ボイスレコーダー", "--team", "営業部", "--line", "201")
    token = capsys.readouterr().out.strip()
    device = Device.objects.get()
    assert device.token_hash == hash_token(token) and device.line is not None and device.line.number == "201"


def test_a_crash_between_storing_and_committing_leaves_no_orphan(
    monkeypatch: Any, device: tuple[Device, str], data_dir: Path, audio_dir: Path
) -> None:
    """The database write fails after the file reached storage: the file is removed again; and a
    process killed at that moment leaves a marker that the sweep turns into a deletion."""

    def broken_save(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "_save", broken_save)
    with make_audio(audio_dir, "wav").open("rb") as fh:
        failed = device_client(device[1]).post("/api/v1/uploads", {**META, "file": fh})
    assert failed.status_code == 500 and failed.json()["error"] == "server_error"  # retryable by the client
    calls = Call.objects.count()
    assert stored_files(data_dir) == [] and list((data_dir / "uploads" / "pending").iterdir()) == []
    # Killed mid-way: the file is in storage, the marker names it, no row exists.
    key = "2026/11/27/00000000-0000-0000-0000-000000000001.wav"
    from callvault.storage import get_storage

    get_storage().put_file(key, make_audio(audio_dir, "wav", name="x.wav"))
    (data_dir / "uploads" / "pending" / "00000000-0000-0000-0000-000000000001.json").write_text(
        json.dumps({"key": key})
    )
    # A committed upload's marker (process died just after the commit) keeps its file.
    monkeypatch.undo()
    with make_audio(audio_dir, "mp3").open("rb") as fh:
        kept = device_client(device[1]).post("/api/v1/uploads", {**META, "file": fh}).json()
    rec = Recording.objects.get(call_id=kept["call_id"])
    (data_dir / "uploads" / "pending" / f"{kept['call_id']}.json").write_text(
        json.dumps({"key": rec.storage_key})
    )
    assert sweep_uploads() == (0, 1)
    assert [p.name for p in stored_files(data_dir)] == [Path(rec.storage_key).name]
    assert list((data_dir / "uploads" / "pending").iterdir()) == []
    assert Call.objects.count() == calls + 1


def test_the_device_pages_speak_english_on_request(cast: Cast) -> None:
    client = admin_browser(cast)
    client.cookies["django_language"] = "en"
    html = client.get("/admin/devices/", headers={"Accept-Language": "en"}).content.decode()
    assert "Recording devices" in html and "Register a device" in html and "録音端末" not in html
