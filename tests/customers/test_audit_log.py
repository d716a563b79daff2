"""Customer entries in the audit log: readable for admins, without personal data for auditors."""

from __future__ import annotations

from typing import Any

from django.test import Client

from callvault.apps.customers.services import add_list_entry, add_note, delete_customer
from tests.customers.conftest import Cast, new_customer


def page(user: Any, path: str = "/audit/") -> str:
    c = Client()
    c.force_login(user)
    response = c.post(path) if path.endswith("export/") else c.get(path)
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return body.decode("utf-8-sig")


def test_auditors_see_what_happened_but_no_names_numbers_or_notes(cast: Cast, yamada: Any) -> None:
    add_note(yamada, "秘密の対応メモ", user=cast.member)
    gone = new_customer("削除される顧客", ["06-7777-8888"], cast.team_a)
    delete_customer(gone, user=cast.supervisor)
    add_list_entry("090-4444-5555", "nuisance", "しつこい勧誘", team_id=cast.team_a.pk, user=cast.supervisor)
    c = Client()
    c.force_login(cast.member)
    c.get("/customers/", {"q": "やまだ"})

    for text in (page(cast.auditor), page(cast.auditor, "/audit/export/")):
        secrets = ["山田", "秘密の対応メモ", "削除される顧客", "06-7777-8888", "+8167777"]
        secrets += ["090-4444-5555", "+81904444", "しつこい勧誘", "やまだ"]
        for secret in secrets:
            assert secret not in text, secret
    audit_log = page(cast.auditor)
    assert "顧客の登録" in audit_log and "対応メモの追加" in audit_log and "顧客の削除" in audit_log

    admin_log = page(cast.admin)
    assert "山田 太郎" in admin_log and f'href="/customers/{yamada.pk}/"' in admin_log
    assert "削除される顧客" in admin_log and "しつこい勧誘" in admin_log
