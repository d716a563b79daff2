"""The webhook settings pages under /settings/webhooks/: admins only, audited, secrets shown once.

These pages live inside the site (the admin layout and navigation of the web app), so they are
tested through the site's own URLconf.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import resolve, reverse

from callvault.apps.audit.models import AuditEntry, verify_chain
from callvault.apps.webhooks import services
from callvault.apps.webhooks.models import Delivery, Webhook
from tests.api.conftest import PASSWORD, Cast
from tests.api.receiver import Receiver, Reply, running_receiver

pytestmark = pytest.mark.django_db

BASE = "/settings/webhooks/"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()


def logged_in(username: str, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    assert client.login(username=username, password=PASSWORD)
    return client


def create(client: Client, url: str, **fields: Any) -> Any:
    data = {"name": "CRM 連携", "url": url, "events": ["call.completed"], "active": "on", **fields}
    return client.post(f"{BASE}new", data)


def test_the_site_mounts_the_api_and_the_webhook_pages() -> None:
    assert resolve("/api/v1/calls").namespace == "api"
    assert resolve(BASE).url_name == "list" and resolve(BASE).namespace == "webhooks"
    assert reverse("webhooks:list") == BASE


@pytest.mark.parametrize("role", ["supervisor", "member", "outsider", "auditor"])
def test_only_admins_reach_the_pages(cast: Cast, role: str) -> None:
    hook = Webhook.objects.create(name="x", url="http://127.0.0.1:9/", events=["call.completed"])
    client = logged_in(role)
    for path in (BASE, f"{BASE}new", f"{BASE}{hook.pk}/", f"{BASE}{hook.pk}/edit"):
        assert client.get(path).status_code == 404, (role, path)
    assert client.post(f"{BASE}{hook.pk}/delete").status_code == 404
    assert Webhook.objects.filter(pk=hook.pk).exists()


def test_anonymous_visitors_are_sent_to_the_login_page(cast: Cast) -> None:
    response = Client().get(BASE)
    assert response.status_code == 302 and "next=/settings/webhooks/" in response["Location"]


def test_creating_a_webhook_shows_the_secret_once_and_audits_without_it(cast: Cast) -> None:
    client = logged_in("admin")
    response = create(client, "https://crm.example.co.jp/hooks?token=abc", team=cast.team_a.pk)
    assert response.status_code == 200
    hook = Webhook.objects.get()
    page = response.content.decode()
    assert hook.secret in page and "今だけ表示" in page
    assert (hook.team_id, hook.events, hook.active, hook.created_by_id) == (
        cast.team_a.pk,
        ["call.completed"],
        True,
        cast.admin.pk,
    )
    detail = client.get(f"{BASE}{hook.pk}/").content.decode()
    assert hook.secret not in detail and hook.secret_hint in detail
    assert hook.secret not in client.get(BASE).content.decode()
    entry = AuditEntry.objects.get(action="settings")
    assert (entry.user_id, entry.object_type, entry.object_id, entry.ip) == (
        cast.admin.pk,
        "webhook",
        str(hook.pk),
        "127.0.0.1",
    )
    assert entry.detail["op"] == "webhook_create"
    assert entry.detail["url"] == "https://crm.example.co.jp/hooks"  # the query string may hold a token
    assert hook.secret not in str(entry.detail)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://169.254.169.254/latest/meta-data/", "メタデータ"),
        ("http://[fe80::1]/", "リンクローカル"),
        ("ftp://example.com/", "http:// または https://"),
        ("not a url", "URLを正しく入力してください"),
        ("http://user:pw@127.0.0.1/", "ユーザー名"),
        ("", "必須"),
    ],
)
def test_unsafe_or_invalid_urls_are_refused_with_a_reason(cast: Cast, url: str, message: str) -> None:
    response = create(logged_in("admin"), url)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Webhook.objects.exists()


def test_a_webhook_needs_at_least_one_event(cast: Cast) -> None:
    response = create(logged_in("admin"), "http://127.0.0.1:9/", events=[])
    assert "イベントを 1 つ以上選んでください" in response.content.decode()


def test_editing_records_what_changed(cast: Cast) -> None:
    client = logged_in("admin")
    create(client, "http://127.0.0.1:9/a")
    hook = Webhook.objects.get()
    response = client.post(
        f"{BASE}{hook.pk}/edit",
        {"name": "CRM 連携 (本番)", "url": "http://127.0.0.1:9/b", "events": ["call.completed"]},
    )
    assert response.status_code == 302
    hook.refresh_from_db()
    assert (hook.name, hook.url, hook.active) == ("CRM 連携 (本番)", "http://127.0.0.1:9/b", False)
    entry = AuditEntry.objects.filter(action="settings").latest("id")
    assert entry.detail["op"] == "webhook_update"
    assert entry.detail["changes"] == {
        "name": {"from": "CRM 連携", "to": "CRM 連携 (本番)"},
        "url": {"from": "http://127.0.0.1:9/a", "to": "http://127.0.0.1:9/b"},
        "active": {"from": True, "to": False},
    }


def test_rotating_the_secret_shows_the_new_one_once(cast: Cast) -> None:
    client = logged_in("admin")
    create(client, "http://127.0.0.1:9/")
    hook = Webhook.objects.get()
    old = hook.secret
    response = client.post(f"{BASE}{hook.pk}/rotate-secret")
    hook.refresh_from_db()
    assert hook.secret != old and hook.secret in response.content.decode()
    assert AuditEntry.objects.filter(action="settings", detail__op="webhook_rotate_secret").count() == 1


def test_deleting_a_webhook_removes_its_log_and_is_audited_as_a_deletion(cast: Cast) -> None:
    client = logged_in("admin")
    create(client, "http://127.0.0.1:9/")
    hook = Webhook.objects.get()
    services.create_ping(hook)
    response = client.post(f"{BASE}{hook.pk}/delete")
    assert response.status_code == 302
    assert not Webhook.objects.exists() and not Delivery.objects.exists()
    assert AuditEntry.objects.filter(action="delete", object_type="webhook", object_id=str(hook.pk)).exists()
    assert AuditEntry.objects.filter(action="settings", detail__op="webhook_delete").exists()
    assert verify_chain().ok


def test_the_delivery_log_shows_status_attempts_codes_errors_and_the_next_retry(
    cast: Cast, receiver: Receiver
) -> None:
    receiver.reply(Reply(500, b"db down"))
    client = logged_in("admin")
    create(client, receiver.url)
    hook = Webhook.objects.get()
    [delivery] = services.create_call_deliveries(cast.call_a)
    services.deliver(delivery.pk)
    delivery.refresh_from_db()
    for page in (client.get(BASE), client.get(f"{BASE}{hook.pk}/")):
        html = page.content.decode()
        assert "再送待ち" in html and "HTTP 500" in html and "500" in html
        assert delivery.next_attempt_at is not None
        assert f"{BASE}deliveries/{delivery.pk}/" in html
    detail = client.get(f"{BASE}deliveries/{delivery.pk}/").content.decode()
    assert "db down" in detail and "送信の履歴" in detail and cast.call_a.caller_number in detail
    assert client.get(BASE, {"status": "pending"}).status_code == 200
    assert client.get(BASE, {"status": "nonsense"}).status_code == 400


def test_the_resend_button_sends_again_now(cast: Cast, receiver: Receiver) -> None:
    receiver.reply(Reply(500), Reply(204))
    client = logged_in("admin")
    create(client, receiver.url)
    [delivery] = services.create_call_deliveries(cast.call_a)
    services.deliver(delivery.pk)
    response = client.post(f"{BASE}deliveries/{delivery.pk}/resend", follow=True)
    assert "送信しました (HTTP 204)" in response.content.decode()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_log.count()) == ("succeeded", 2)
    assert AuditEntry.objects.filter(action="settings", detail__op="webhook_resend").count() == 1


def test_the_test_button_pings_the_receiver_and_reports_the_answer(cast: Cast, receiver: Receiver) -> None:
    client = logged_in("admin")
    create(client, receiver.url)
    hook = Webhook.objects.get()
    response = client.post(f"{BASE}{hook.pk}/ping", follow=True)
    assert "送信しました (HTTP 200)" in response.content.decode()
    assert receiver.requests[0].headers["X-Callvault-Event"] == "ping"
    receiver.reply(Reply(503))
    response = client.post(f"{BASE}{hook.pk}/ping", follow=True)
    assert "送信に失敗しました: HTTP 503" in response.content.decode()


def test_forms_need_the_csrf_token(cast: Cast) -> None:
    client = logged_in("admin", enforce_csrf_checks=True)
    assert create(client, "http://127.0.0.1:9/").status_code == 403
    assert not Webhook.objects.exists()


def test_get_cannot_change_anything(cast: Cast) -> None:
    client = logged_in("admin")
    create(client, "http://127.0.0.1:9/")
    hook = Webhook.objects.get()
    for path in (f"{BASE}{hook.pk}/delete", f"{BASE}{hook.pk}/rotate-secret", f"{BASE}{hook.pk}/ping"):
        assert client.get(path).status_code == 405
    assert Webhook.objects.filter(pk=hook.pk, secret=hook.secret).exists()
