"""`issue_token` and `audit_verify`: output, exit codes, in-process and as real `callvault manage` runs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from callvault.apps.accounts.models import ApiToken, Profile, hash_token
from callvault.apps.audit.models import AuditEntry, record
from tests.apps.conftest import PASSWORD, Cast


def run(*args: str, **options: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def test_issue_token_prints_only_a_working_token_and_audits_it_without_the_token(cast: Cast) -> None:
    output = run("issue_token", "supervisor", "--name", "夜間バックアップ")
    token = output.strip()
    assert output == token + "\n" and token.startswith("cv_")
    stored = ApiToken.objects.get(token_hash=hash_token(token))
    assert (stored.user, stored.name, stored.revoked_at) == (cast.supervisor, "夜間バックアップ", None)
    (entry,) = AuditEntry.objects.filter(action="token")
    assert entry.object_id == str(stored.pk) and entry.username == ""
    assert entry.detail == {
        "change": "token_created",
        "name": "夜間バックアップ",
        "owner": "supervisor",
        "via": "command",
    }
    assert token not in str(entry.detail)


def test_issue_token_names_a_token_when_no_name_is_given(cast: Cast) -> None:
    token = run("issue_token", "member").strip()
    assert ApiToken.objects.get(token_hash=hash_token(token)).name == "コマンドで発行"


def test_issue_token_refuses_unknown_and_inactive_users_in_japanese(cast: Cast) -> None:
    with pytest.raises(CommandError, match="ユーザー「nobody」は存在しません。") as unknown:
        run("issue_token", "nobody")
    assert unknown.value.returncode == 1
    cast.outsider.is_active = False
    cast.outsider.save()
    with pytest.raises(CommandError, match="無効になっています"):
        run("issue_token", "outsider")
    assert not ApiToken.objects.exists()


def test_audit_verify_reports_ok_then_exits_1_with_the_problems_after_tampering(cast: Cast) -> None:
    entries = [
        record("login", user=cast.member, ip="192.0.2.1"),
        record("playback", user=cast.member, obj=cast.call_a),
    ]
    assert "監査ログ: OK (2 件を検証" in run("audit_verify")

    AuditEntry.objects.filter(pk=entries[0].pk).update(username="someone-else")
    out = StringIO()
    with pytest.raises(CommandError, match="ハッシュチェーンが壊れています") as broken:
        call_command("audit_verify", stdout=out)
    assert broken.value.returncode == 1
    text = out.getvalue()
    assert "監査ログ: 問題があります (2 件を検証し、1 件の問題)" in text
    assert f"記録 #{entries[0].pk}: 内容がハッシュ値と一致しません" in text
    assert f"[entry {entries[0].pk}: content does not match its hash" in text


def test_createsuperuser_makes_an_admin_profile(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("createsuperuser", interactive=False, username="boss", email="", stdout=StringIO())
    boss = get_user_model().objects.get(username="boss")
    assert Profile.objects.get(user=boss).role == "admin"


# --- as real processes on a migrated data directory -------------------------------------------


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # its own SQLite database
    env.update(CALLVAULT_DATA_DIR=str(data_dir), DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    env.pop("CALLVAULT_SECRET_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "callvault.cli", "manage", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("callvault-data")
    migrated = cli(path, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    made = cli(path, "createsuperuser", "--noinput", "--username", "ops", "--email", "")
    assert made.returncode == 0, made.stderr
    return path


def test_the_cli_prints_just_the_token_so_scripts_can_capture_it(data_dir: Path) -> None:
    result = cli(data_dir, "issue_token", "ops", "--name", "CRM連携")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and token.startswith("cv_") and len(token) > 40
    with sqlite3.connect(data_dir / "callvault.sqlite3") as db:
        row = db.execute(
            "SELECT t.name, u.username, p.role FROM accounts_apitoken t JOIN auth_user u ON u.id = t.user_id "
            "JOIN accounts_profile p ON p.user_id = u.id WHERE t.token_hash = ?",
            (hash_token(token),),
        ).fetchone()
    assert row == ("CRM連携", "ops", "admin")


def test_the_cli_exits_1_with_a_japanese_message_for_an_unknown_user(data_dir: Path) -> None:
    result = cli(data_dir, "issue_token", "ghost")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "ユーザー「ghost」は存在しません。" in result.stderr


def test_the_cli_verifies_the_chain_and_exits_1_once_it_is_broken(data_dir: Path) -> None:
    assert cli(data_dir, "issue_token", "ops").returncode == 0  # at least one audit entry
    ok = cli(data_dir, "audit_verify")
    assert ok.returncode == 0, ok.stderr
    assert "監査ログ: OK" in ok.stdout
    with sqlite3.connect(data_dir / "callvault.sqlite3") as db:
        (first,) = db.execute("SELECT min(id) FROM audit_auditentry").fetchone()
        db.execute("UPDATE audit_auditentry SET ip = '203.0.113.9' WHERE id = ?", (first,))
    broken = cli(data_dir, "audit_verify")
    assert broken.returncode == 1
    assert f"記録 #{first}: 内容がハッシュ値と一致しません" in broken.stdout
    assert "監査ログのハッシュチェーンが壊れています。" in broken.stderr
