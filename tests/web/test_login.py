"""Login, logout, throttling against password guessing, the audit trail, the language switch."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from callvault.apps.audit.models import AuditEntry, verify_chain
from callvault.apps.live.models import LoginThrottle
from tests.apps.conftest import PASSWORD, Cast, make_user

pytestmark = pytest.mark.django_db


def post_login(client: Client, username: str, password: str, **extra: Any) -> Any:
    return client.post("/login/", {"username": username, "password": password, **extra}, **_ip(extra))


def _ip(extra: dict[str, Any]) -> dict[str, Any]:
    return {"REMOTE_ADDR": extra.pop("ip", "127.0.0.1")}


def entries(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def test_it_shows_a_japanese_login_page_with_a_csrf_token(client: Client) -> None:
    response = client.get("/login/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "ログイン" in html and "ユーザー名" in html and "パスワード" in html
    assert 'name="csrfmiddlewaretoken"' in html and 'lang="ja"' in html
    assert 'autocomplete="current-password"' in html


def test_it_sends_anonymous_visitors_to_the_login_page(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/"


def test_it_logs_in_redirects_to_the_calls_and_audits_user_and_ip(cast: Cast, client: Client) -> None:
    response = post_login(client, "supervisor", PASSWORD, ip="192.0.2.10")
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    (entry,) = entries("login")
    assert (entry.user_id, entry.username, entry.ip) == (cast.supervisor.pk, "supervisor", "192.0.2.10")
    assert (entry.object_type, entry.object_id) == ("user", str(cast.supervisor.pk))
    cookie = client.cookies["sessionid"]
    assert cookie["httponly"]


def test_it_follows_only_local_next_addresses(cast: Cast) -> None:
    client = Client()
    response = post_login(client, "member", PASSWORD, next="/calls/export.csv")
    assert response["Location"] == "/calls/export.csv"
    client = Client()
    response = post_login(client, "member", PASSWORD, next="https://evil.example/phish")
    assert response["Location"] == "/"


def test_a_wrong_password_is_refused_and_audited_without_the_password(cast: Cast, client: Client) -> None:
    secret = "hunter2-not-the-password"
    response = post_login(client, "supervisor", secret, ip="198.51.100.7")
    html = response.content.decode()
    assert response.status_code == 200
    assert "ユーザー名またはパスワードが正しくありません。" in html
    assert secret not in html
    (entry,) = entries("login_failed")
    assert (entry.user_id, entry.username, entry.ip) == (None, "supervisor", "198.51.100.7")
    assert entry.detail["reason"] == "invalid_credentials"
    assert (entry.object_type, entry.object_id) == ("user", str(cast.supervisor.pk))
    everything = json.dumps(list(AuditEntry.objects.values()), default=str)
    assert secret not in everything
    assert verify_chain().ok


def test_unknown_users_and_inactive_users_get_the_same_answer(cast: Cast, client: Client) -> None:
    cast.member.is_active = False
    cast.member.save()
    for username in ("nobody", "member"):
        response = post_login(client, username, PASSWORD)
        assert "ユーザー名またはパスワードが正しくありません。" in response.content.decode()
    assert [e.username for e in entries("login_failed")] == ["nobody", "member"]
    assert entries("login") == []


def test_empty_or_oversized_input_is_a_form_error_not_a_crash(cast: Cast, client: Client) -> None:
    response = post_login(client, "", "")
    assert response.status_code == 400
    assert "ユーザー名を入力してください。" in response.content.decode()
    response = post_login(client, "x" * 151, "y" * 5000)
    assert response.status_code == 400
    assert "ユーザー名は150文字以内です。" in response.content.decode()


def test_five_failures_lock_the_user_name_for_fifteen_minutes(cast: Cast) -> None:
    client = Client()
    for _ in range(4):
        assert post_login(client, "supervisor", "wrong").status_code == 200
    assert post_login(client, "supervisor", "wrong").status_code == 429  # the fifth: locked now
    response = post_login(client, "supervisor", PASSWORD)
    html = response.content.decode()
    assert response.status_code == 429
    assert "一時的にログインを制限しています" in html and "15分ほど" in html
    assert "_auth_user_id" not in client.session
    locked = entries("login_failed")[-1]
    assert locked.detail == {"reason": "locked", "scope": "user"}
    # Another user from the same address is not affected.
    assert post_login(Client(), "member", PASSWORD).status_code == 302
    # After the lock has run out the right password works again.
    LoginThrottle.objects.filter(key="user:supervisor").update(
        locked_until=timezone.now() - timedelta(seconds=1)
    )
    assert post_login(client, "supervisor", PASSWORD).status_code == 302


def test_failures_older_than_the_window_do_not_count(cast: Cast) -> None:
    client = Client()
    for _ in range(4):
        post_login(client, "supervisor", "wrong")
    LoginThrottle.objects.update(window_started=timezone.now() - timedelta(minutes=16))
    post_login(client, "supervisor", "wrong")
    assert post_login(client, "supervisor", PASSWORD).status_code == 302


def test_a_correct_password_resets_the_user_names_counter(cast: Cast) -> None:
    for _ in range(4):
        post_login(Client(), "supervisor", "wrong")
    assert post_login(Client(), "supervisor", PASSWORD).status_code == 302
    for _ in range(4):
        post_login(Client(), "supervisor", "wrong")
    assert post_login(Client(), "supervisor", PASSWORD).status_code == 302


def test_twenty_failures_from_one_address_lock_that_address(cast: Cast) -> None:
    for i in range(20):
        post_login(Client(), f"guess{i}", "wrong", ip="203.0.113.5")
    response = post_login(Client(), "member", PASSWORD, ip="203.0.113.5")
    assert response.status_code == 429
    assert entries("login_failed")[-1].detail == {"reason": "locked", "scope": "ip"}
    assert post_login(Client(), "member", PASSWORD, ip="203.0.113.6").status_code == 302


def test_user_names_are_throttled_case_insensitively(cast: Cast) -> None:
    make_user("Tanaka")
    for name in ("tanaka", "TANAKA", "Tanaka", "tAnaka", "tanakA"):
        post_login(Client(), name, "wrong")
    assert post_login(Client(), "Tanaka", PASSWORD).status_code == 429


def test_login_needs_the_csrf_token(cast: Cast) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": "member", "password": PASSWORD})
    assert response.status_code == 403
    assert entries("login") == []


def test_logout_is_post_only_audited_and_ends_the_session(cast: Cast, client: Client) -> None:
    client.force_login(cast.member)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/", REMOTE_ADDR="192.0.2.44")
    assert response.status_code == 302 and response["Location"] == "/login/"
    (entry,) = entries("logout")
    assert (entry.user_id, entry.ip, entry.object_id) == (cast.member.pk, "192.0.2.44", str(cast.member.pk))
    assert client.get("/").status_code == 302
    assert "ログアウトしました。" in client.get("/login/").content.decode()


def test_logout_needs_the_csrf_token(cast: Cast) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.member)
    assert client.post("/logout/").status_code == 403
    assert client.get("/").status_code == 200


def test_the_language_switch_turns_the_ui_english_and_back(cast: Cast, client: Client) -> None:
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/login/"})
    assert response.status_code == 302 and response["Location"] == "/login/"
    html = client.get("/login/").content.decode()
    assert 'lang="en"' in html and "Log in" in html and "User name" in html
    client.post("/i18n/setlang/", {"language": "ja", "next": "/login/"})
    assert "ユーザー名" in client.get("/login/").content.decode()


def test_a_logged_in_user_visiting_the_login_page_goes_to_the_calls(cast: Cast, client: Client) -> None:
    client.force_login(cast.member)
    response = client.get("/login/")
    assert response.status_code == 302 and response["Location"] == "/"


def _po_entries(text: str) -> list[tuple[str | None, str, str]]:
    """(msgctxt, msgid, first msgstr) of each entry of a .po file, header excluded."""

    def joined(lines: list[str], key: str) -> str:
        out, on = [], False
        for line in lines:
            if line.startswith(key + " "):
                on = True
                out.append(line.split(" ", 1)[1])
            elif on and line.startswith('"'):
                out.append(line)
            else:
                on = False
        return "".join(json.loads(part) for part in out)

    entries = []
    for block in text.split("\n\n"):
        lines = [ln for ln in block.splitlines() if not ln.startswith("#")]
        msgid = joined(lines, "msgid")
        if msgid:
            context = joined(lines, "msgctxt") or None
            entries.append((context, msgid, joined(lines, "msgstr") or joined(lines, "msgstr[0]")))
    return entries


def test_every_string_has_a_compiled_english_translation() -> None:
    import gettext
    from pathlib import Path

    import callvault

    folder = Path(callvault.__file__).parent / "locale" / "en" / "LC_MESSAGES"
    entries = _po_entries((folder / "django.po").read_text(encoding="utf-8"))
    assert len(entries) > 100
    untranslated = [msgid for _ctx, msgid, msgstr in entries if not msgstr]
    assert untranslated == []
    with (folder / "django.mo").open("rb") as fh:
        compiled = gettext.GNUTranslations(fh)
    stale = [
        msgid
        for ctx, msgid, msgstr in entries
        if (compiled.pgettext(ctx, msgid) if ctx else compiled.gettext(msgid)) != msgstr
    ]
    assert stale == [], "run `callvault manage compilemessages`"


def test_the_ui_is_japanese_even_for_an_english_browser_until_the_user_switches(client) -> None:
    from django.conf import settings as dj_settings

    page = client.get("/login/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert 'lang="ja"' in page
    client.cookies[dj_settings.LANGUAGE_COOKIE_NAME] = "en"
    page = client.get("/login/", HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert 'lang="en"' in page


def test_not_found_is_a_japanese_page_of_the_product(client, cast) -> None:
    from tests.apps.conftest import PASSWORD

    client.login(username=cast.outsider.username, password=PASSWORD)
    response = client.get(f"/calls/{cast.call_a.pk}/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "ページが見つかりません" in page and "通話一覧へ戻る" in page
