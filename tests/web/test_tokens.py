"""My account: password change and API tokens (shown once, revocable, audited without the token)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import authenticate
from django.test import Client
from django.urls import reverse

from callvault.apps.accounts.models import ApiToken, hash_token
from callvault.apps.accounts.services import MAX_ACTIVE_TOKENS
from callvault.apps.audit.models import AuditEntry
from tests.apps.conftest import PASSWORD, Cast


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def active(token: str) -> ApiToken | None:
    return ApiToken.objects.filter(token_hash=hash_token(token), revoked_at__isnull=True).first()


def create(client: Client, name: str = "CRM連携", **extra: Any) -> tuple[Any, str]:
    response = client.post(reverse("web:account_token_create"), {"name": name}, **extra)
    return response, response.context["new_token"] if response.status_code == 200 else ""


def test_every_logged_in_user_has_an_account_page(cast: Cast) -> None:
    for role, user in cast.users().items():
        response = client_for(user).get(reverse("web:account"))
        assert response.status_code == 200, role
        page = response.content.decode()
        assert user.get_username() in page and "パスワードの変更" in page and "APIトークン" in page
        assert "no-store" in response["Cache-Control"]


def test_a_new_token_is_shown_exactly_once_and_works_as_a_hash_lookup(cast: Cast) -> None:
    client = client_for(cast.supervisor)
    response, token = create(client, REMOTE_ADDR="192.0.2.20")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert token.startswith("cv_") and token in response.content.decode()
    assert "今だけ表示されます" in response.content.decode()
    stored = active(token)
    assert stored is not None and stored.user == cast.supervisor and stored.name == "CRM連携"
    assert token not in {stored.token_hash, stored.prefix} and stored.prefix == token[:10]

    again = client.get(reverse("web:account")).content.decode()
    assert token not in again and stored.prefix in again and "CRM連携" in again

    (entry,) = AuditEntry.objects.filter(action="token")
    assert (entry.username, entry.ip, entry.object_type, entry.object_id) == (
        "supervisor",
        "192.0.2.20",
        "apitoken",
        str(stored.pk),
    )
    assert entry.detail == {"change": "token_created", "name": "CRM連携", "owner": "supervisor", "via": "web"}
    assert token not in json.dumps(entry.detail) and token[3:13] not in json.dumps(entry.detail)


def test_a_revoked_token_no_longer_matches(cast: Cast) -> None:
    client = client_for(cast.member)
    _, token = create(client)
    stored = active(token)
    assert stored is not None
    response = client.post(reverse("web:account_token_revoke", args=[stored.pk]), REMOTE_ADDR="192.0.2.21")
    assert response.status_code == 302
    assert active(token) is None
    stored.refresh_from_db()
    assert stored.revoked_at is not None
    revoked = AuditEntry.objects.filter(action="token").latest("id")
    assert revoked.detail == {"change": "token_revoked", "name": "CRM連携", "owner": "member"}
    assert revoked.ip == "192.0.2.21"
    # Revoking again changes nothing and writes nothing.
    client.post(reverse("web:account_token_revoke", args=[stored.pk]))
    assert AuditEntry.objects.filter(action="token").count() == 2


def test_other_users_tokens_cannot_be_revoked_even_by_an_admin_through_their_own_account(cast: Cast) -> None:
    _, token = create(client_for(cast.member))
    stored = active(token)
    assert stored is not None
    for user in (cast.outsider, cast.supervisor, cast.admin, cast.auditor):
        response = client_for(user).post(reverse("web:account_token_revoke", args=[stored.pk]))
        assert response.status_code == 404, user
    assert active(token) is not None
    assert client_for(cast.member).post("/account/tokens/99999999999999999999/revoke/").status_code == 404


def test_token_names_are_required_and_bounded_and_active_tokens_limited(cast: Cast) -> None:
    client = client_for(cast.member)
    response = client.post(reverse("web:account_token_create"), {"name": "   "})
    assert response.status_code == 400 and "名前を入力してください。" in response.content.decode()
    response = client.post(reverse("web:account_token_create"), {"name": "x" * 101})
    assert response.status_code == 400
    for i in range(MAX_ACTIVE_TOKENS):
        ApiToken.issue(cast.member, f"t{i}")
    response = client.post(reverse("web:account_token_create"), {"name": "one too many"})
    assert response.status_code == 400
    assert f"有効なAPIトークンは1人{MAX_ACTIVE_TOKENS}個までです" in response.content.decode()
    assert ApiToken.objects.filter(user=cast.member).count() == MAX_ACTIVE_TOKENS


def test_it_changes_the_own_password_in_japanese_and_audits_it(cast: Cast) -> None:
    client = client_for(cast.member)
    response = client.post(
        reverse("web:account_password"),
        {"old_password": "wrong", "new_password1": "a-new-pass-123", "new_password2": "a-new-pass-123"},
    )
    assert response.status_code == 400
    assert "元のパスワードが間違っています。" in response.content.decode()
    response = client.post(
        reverse("web:account_password"),
        {"old_password": PASSWORD, "new_password1": "a-new-pass-123", "new_password2": "different-456"},
    )
    assert "確認用パスワードが一致しません。" in response.content.decode()
    assert not AuditEntry.objects.exists()

    response = client.post(
        reverse("web:account_password"),
        {"old_password": PASSWORD, "new_password1": "a-new-pass-123", "new_password2": "a-new-pass-123"},
        REMOTE_ADDR="192.0.2.30",
    )
    assert response.status_code == 302
    assert authenticate(username="member", password="a-new-pass-123") is not None
    assert client.get(reverse("web:account")).status_code == 200  # still logged in
    (entry,) = AuditEntry.objects.all()
    assert (entry.action, entry.username, entry.ip) == ("settings", "member", "192.0.2.30")
    assert entry.detail == {"change": "password_changed", "target": "member"}


def test_account_changes_need_post_and_csrf(cast: Cast) -> None:
    client = client_for(cast.member)
    assert client.get(reverse("web:account_token_create")).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(cast.member)
    assert strict.post(reverse("web:account_token_create"), {"name": "x"}).status_code == 403
    assert not ApiToken.objects.filter(user=cast.member).exists()


def test_a_peer_address_that_is_not_an_ip_is_recorded_as_unknown(cast: Cast) -> None:
    response, token = create(client_for(cast.member), REMOTE_ADDR="unix:/run/callvault.sock")
    assert response.status_code == 200 and token
    assert AuditEntry.objects.get(action="token").ip is None
