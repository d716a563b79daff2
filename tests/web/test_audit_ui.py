"""The audit log browser: who may see it, filters, keyset pagination, verification, CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from callvault.apps.audit.models import AuditEntry, record
from tests.apps.conftest import Cast

EXPECTED_STATUS = {"admin": 200, "auditor": 200, "supervisor": 404, "member": 404, "outsider": 404}


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def fill(cast: Cast) -> list[AuditEntry]:
    return [
        record("login", user=cast.member, ip="192.0.2.1"),
        record("playback", user=cast.member, obj=cast.call_a, ip="192.0.2.1", seconds=12.5),
        record("login_failed", username="mallory", ip="198.51.100.7"),
        record("download", user=cast.supervisor, obj=cast.call_a, ip="192.0.2.2"),
        record(
            "role_change",
            user=cast.admin,
            obj=cast.member,
            ip="192.0.2.3",
            target="member",
            to="auditor",
            **{"from": "member"},
        ),
    ]


def shown_ids(response: Any) -> list[int]:
    return [row.entry.pk for row in response.context["page"].rows]


def test_only_admins_and_auditors_reach_the_audit_log(cast: Cast) -> None:
    fill(cast)
    for role, user in cast.users().items():
        client = client_for(user)
        assert client.get(reverse("web:audit")).status_code == EXPECTED_STATUS[role], role
        assert client.post(reverse("web:audit_verify")).status_code == EXPECTED_STATUS[role], role
        export = client.post(reverse("web:audit_export"))
        assert export.status_code == EXPECTED_STATUS[role], role
    # Only the two allowed exports (and verifications) were recorded.
    assert AuditEntry.objects.filter(action="export").count() == 2


def test_it_lists_entries_newest_first_in_japanese_with_links_to_calls(cast: Cast) -> None:
    entries = fill(cast)
    response = client_for(cast.admin).get(reverse("web:audit"))
    assert shown_ids(response) == [e.pk for e in reversed(entries)]
    page = response.content.decode()
    for label in ("ログイン", "再生", "ログイン失敗", "ダウンロード", "権限変更"):
        assert label in page
    started = timezone.localtime(cast.call_a.started_at).strftime("%Y/%m/%d %H:%M")
    assert f'href="/calls/{cast.call_a.pk}/"' in page
    assert f"通話 {started} 03-1234-5678 → 201" in page
    assert f'href="/admin/users/{cast.member.pk}/"' in page and "ユーザー member" in page
    assert "198.51.100.7" in page and "mallory" in page
    assert "監査担当" in page  # the role in the detail, in Japanese
    local = timezone.localtime(entries[0].at).strftime("%Y/%m/%d %H:%M:%S")
    assert local in page


def test_auditors_see_call_ids_but_neither_numbers_nor_links_they_could_not_open(cast: Cast) -> None:
    fill(cast)
    page = client_for(cast.auditor).get(reverse("web:audit")).content.decode()
    assert f"通話 {str(cast.call_a.pk)[:8]}…" in page and f'title="{cast.call_a.pk}"' in page
    assert f"/calls/{cast.call_a.pk}/" not in page and "03-1234-5678" not in page
    assert "/admin/users/" not in page and "ユーザー member" in page


def test_browsing_is_not_audited_but_exports_are(cast: Cast) -> None:
    fill(cast)
    client = client_for(cast.admin)
    before = AuditEntry.objects.count()
    for _ in range(3):
        client.get(reverse("web:audit"))
    assert AuditEntry.objects.count() == before


def test_it_filters_by_action_user_object_ip_and_date(cast: Cast) -> None:
    entries = fill(cast)
    old = record("login", user=cast.admin, ip="192.0.2.9")
    AuditEntry.objects.filter(pk=old.pk).update(
        at=timezone.now() - timedelta(days=40)
    )  # breaks the chain; fine here
    client = client_for(cast.admin)

    def ids(**params: str) -> list[int]:
        response = client.get(reverse("web:audit"), params)
        assert response.status_code == 200, response.context["form"].errors
        return shown_ids(response)

    assert ids(action="login") == [old.pk, entries[0].pk]
    assert ids(user="MEMBER") == [entries[1].pk, entries[0].pk]
    assert ids(user="mallory") == [entries[2].pk]
    assert ids(object=cast.call_a.pk.hex.upper()) == [entries[3].pk, entries[1].pk]
    assert ids(ip="192.0.2.1") == [entries[1].pk, entries[0].pk]
    today = timezone.localdate()
    assert old.pk not in ids(date_from=today.isoformat())
    assert ids(date_to=(today - timedelta(days=30)).strftime("%Y/%m/%d")) == [old.pk]
    assert ids(action="download", user="supervisor", date_from=str(today), date_to=str(today)) == [
        entries[3].pk
    ]


def test_invalid_filters_get_a_clear_400_never_a_500(cast: Cast) -> None:
    fill(cast)
    client = client_for(cast.admin)
    cases = [
        ({"date_from": "2026-13-45"}, "日付は 2026/11/27 の形で入力してください。"),
        ({"ip": "999.1.1.1"}, "IPアドレスの形式が正しくありません"),
        ({"action": "hack"}, "操作の種類が正しくありません。"),
        ({"date_from": "2026-11-27", "date_to": "2026-11-01"}, "終了日は開始日以降の日付にしてください。"),
        ({"user": "x" * 5000}, ""),
        ({"object": "y" * 100}, ""),
        ({"before": "99999999999999999999999"}, ""),
        ({"after": "-5"}, ""),
    ]
    for params, message in cases:
        response = client.get(reverse("web:audit"), params)
        assert response.status_code == 400, params
        assert message in response.content.decode(), params
        assert response.context["page"] is None
    export = client.post(reverse("web:audit_export"), {"ip": "not-an-ip"})
    assert export.status_code == 400
    assert not AuditEntry.objects.filter(action="export").exists()


def test_keyset_pages_walk_the_whole_log_without_gaps_or_repeats(cast: Cast) -> None:
    made = [record("view", user=cast.member, ip="192.0.2.1", n=i).pk for i in range(123)]
    client = client_for(cast.auditor)
    seen: list[int] = []
    response = client.get(reverse("web:audit"))
    pages = 0
    while True:
        pages += 1
        ids = shown_ids(response)
        assert len(ids) <= 50 and ids == sorted(ids, reverse=True)
        seen += ids
        older = response.context["page"].older
        if older is None:
            break
        assert f"before={older}" in response.content.decode()
        response = client.get(reverse("web:audit"), {"before": older})
    assert pages == 3 and seen == list(reversed(made))

    # New entries arriving meanwhile do not shift an older page.
    second = client.get(reverse("web:audit"), {"before": made[-50]})
    record("view", user=cast.member, n="late")
    assert shown_ids(client.get(reverse("web:audit"), {"before": made[-50]})) == shown_ids(second)

    # And "newer" walks back up to the first page, keeping the filters.
    newer = second.context["page"].newer
    assert newer is not None
    back = client.get(reverse("web:audit"), {"after": newer, "action": "view"})
    assert shown_ids(back) == list(reversed(made))[:50]


def test_verification_says_ok_then_lists_the_problem_after_tampering(cast: Cast) -> None:
    entries = fill(cast)
    client = client_for(cast.auditor)
    response = client.post(reverse("web:audit_verify"), REMOTE_ADDR="192.0.2.50")
    assert response.status_code == 200
    page = response.content.decode()
    assert "改ざんは見つかりませんでした" in page and "5 件の記録" in page
    check = AuditEntry.objects.filter(action="view").latest("id")
    assert (check.username, check.ip) == ("auditor", "192.0.2.50")
    assert check.detail == {"kind": "chain_verified", "ok": True, "entries": 5, "problems": 0}

    AuditEntry.objects.filter(pk=entries[1].pk).update(ip="203.0.113.66")
    response = client.post(reverse("web:audit_verify"))
    page = response.content.decode()
    assert "監査ログに問題が見つかりました" in page
    assert f"記録 #{entries[1].pk}: 内容がハッシュ値と一致しません" in page
    assert response.context["report"].ok is False


def test_the_csv_export_holds_the_filtered_entries_and_is_audited(cast: Cast) -> None:
    entries = fill(cast)
    record("login_failed", username='=HYPERLINK("http://evil")', ip="198.51.100.8")
    client = client_for(cast.admin)
    response = client.post(reverse("web:audit_export"), {"action": "login_failed"}, REMOTE_ADDR="192.0.2.77")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="callvault-audit-')
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0][:4] == ["ID", "日時", "ユーザー", "操作"]
    assert [r[2] for r in rows[1:]] == ['\'=HYPERLINK("http://evil")', "mallory"]
    assert {r[3] for r in rows[1:]} == {"ログイン失敗"}
    assert rows[2][0] == str(entries[2].pk) and rows[2][7] == "198.51.100.7"

    export = AuditEntry.objects.get(action="export")
    assert (export.username, export.ip, export.object_type) == ("admin", "192.0.2.77", "auditentry")
    assert export.detail == {
        "kind": "audit_log",
        "format": "csv",
        "rows": 2,
        "filters": {"action": "login_failed"},
    }


def test_the_chain_still_verifies_after_the_pages_own_entries(cast: Cast) -> None:
    fill(cast)
    client = client_for(cast.admin)
    client.post(reverse("web:audit_export"))
    client.post(reverse("web:audit_verify"))
    response = client.post(reverse("web:audit_verify"))
    assert response.context["report"].ok and response.context["report"].entries == 7


def test_dates_typed_with_slashes_come_back_in_the_date_pickers_format(cast: Cast) -> None:
    fill(cast)
    response = client_for(cast.admin).get(reverse("web:audit"), {"date_from": "2026/11/27"})
    assert response.status_code == 200
    assert 'value="2026-11-27"' in response.content.decode()
    assert response.context["filter_query"] == "date_from=2026-11-27"
