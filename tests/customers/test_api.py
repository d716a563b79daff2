"""API v1 customers: CRUD, notes, lookup by number; access per role and audit."""

from __future__ import annotations

from typing import Any

import pytest

from callvault.apps.audit.models import AuditEntry
from callvault.apps.customers.models import Customer, CustomField, NumberListEntry, PhoneLabel
from callvault.apps.customers.services import add_note
from tests.customers.conftest import Cast, new_customer

pytestmark = pytest.mark.django_db


def test_phone_labels_in_the_schema_match_the_model() -> None:
    from typing import get_args

    from callvault.apps.api.customers import PhoneLabelName

    assert set(get_args(PhoneLabelName)) == set(PhoneLabel.values)


def test_lookup_returns_the_caller_card(cast: Cast, yamada: Any, api_for: Any) -> None:
    add_note(yamada, "請求の件で折り返し待ち", user=cast.member)
    NumberListEntry.objects.create(pattern="+81312345678", kind="caution", reason="要確認", team=cast.team_a)
    r = api_for("member").get("/customers/lookup", {"number": "03-1234-5678"})
    assert r.status_code == 200
    card = r.json()
    assert card["customer"] == {
        "id": yamada.pk,
        "name": "山田 太郎",
        "company": "山田商事",
        "url": f"/customers/{yamada.pk}/",
    }
    assert card["kind"] == "normal" and card["number_display"] == "03-1234-5678"
    assert card["last_call"]["url"] == f"/calls/{cast.call_a.pk}/"
    assert card["last_note"]["text"] == "請求の件で折り返し待ち"
    assert card["warnings"] == [{"kind": "caution", "label": "要注意", "reason": "要確認"}]
    entry = AuditEntry.objects.filter(detail__change="caller_lookup").get()
    assert entry.detail["via"] == "api" and entry.object_id == str(yamada.pk)
    # another team's member gets the number but no customer and no call
    other = api_for("outsider").get("/customers/lookup", {"number": "0312345678"}).json()
    assert other["customer"] is None and other["last_call"] is None and other["warnings"] == []
    withheld = api_for("member").get("/customers/lookup", {"number": "anonymous"}).json()
    assert (withheld["kind"], withheld["number_display"]) == ("withheld", "非通知")
    assert api_for("member").get("/customers/lookup").status_code == 400


def test_crud_by_a_supervisor(cast: Cast, api_for: Any) -> None:
    CustomField.objects.create(key="seats", label="席数", field_type="number")
    sup = api_for("supervisor")
    body = {
        "name": "株式会社ミナト",
        "kind": "company",
        "kana": "ミナト",
        "phones": [
            {"number": "045-123-4567", "label": "work"},
            {"number": "+1 650 253 0000", "label": "other"},
        ],
        "tags": ["VIP"],
        "custom": {"seats": "12"},
        "team": cast.team_a.pk,
    }
    r = sup.post("/customers", body)
    assert r.status_code == 201, r.content
    created = r.json()
    assert created["phones"] == [
        {"number": "+81451234567", "display": "045-123-4567", "label": "work"},
        {"number": "+16502530000", "display": "+1 650-253-0000", "label": "other"},
    ]
    assert created["custom"] == {"seats": 12} and created["team"] == {"id": cast.team_a.pk, "name": "営業部"}
    cid = created["id"]
    assert sup.get(f"/customers/{cid}").json()["name"] == "株式会社ミナト"
    listed = sup.get("/customers", {"q": "みなと"}).json()
    assert [c["id"] for c in listed["items"]] == [cid] and listed["next"] is None

    patch = sup.client.patch(
        f"/api/v1/customers/{cid}",
        '{"company": "港湾事業部", "phones": [{"number": "045-999-0000", "label": "mobile"}]}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {sup.token}"},
    )
    assert patch.status_code == 200, patch.content
    assert patch.json()["company"] == "港湾事業部"
    assert [p["number"] for p in patch.json()["phones"]] == ["+81459990000"]
    assert patch.json()["tags"] == ["VIP"]  # not given: unchanged

    assert sup.post(f"/customers/{cid}/notes", {"text": "API からのメモ"}).status_code == 201
    assert [n["text"] for n in sup.get(f"/customers/{cid}/notes").json()] == ["API からのメモ"]
    assert sup.delete(f"/customers/{cid}").status_code == 204
    assert not Customer.objects.exists()
    changes = set(AuditEntry.objects.filter(detail__via="api").values_list("detail__change", flat=True))
    assert {"customer_created", "customer_updated", "customer_note_added", "customer_deleted"} <= changes


def test_access_rules(cast: Cast, yamada: Any, api_for: Any) -> None:
    member, outsider, auditor = api_for("member"), api_for("outsider"), api_for("auditor")
    assert member.get(f"/customers/{yamada.pk}").status_code == 200
    assert outsider.get(f"/customers/{yamada.pk}").status_code == 404
    assert auditor.get(f"/customers/{yamada.pk}").status_code == 404
    assert outsider.get("/customers").json()["items"] == []
    # members see but do not change; others do not even see
    assert member.delete(f"/customers/{yamada.pk}").status_code == 403
    assert outsider.delete(f"/customers/{yamada.pk}").status_code == 404
    assert member.post(f"/customers/{yamada.pk}/notes", {"text": "担当者のメモ"}).status_code == 201
    # creating for a team one is not in: that team is out of reach
    body = {"name": "誰か", "team": cast.team_b.pk}
    assert member.post("/customers", body).status_code == 404
    assert member.post("/customers", {"name": "誰か"}).status_code == 400
    assert auditor.post("/customers", {"name": "誰か", "team": cast.team_a.pk}).status_code == 403


def test_bad_input_answers_400_naming_the_parameter(cast: Cast, api_for: Any) -> None:
    sup = api_for("supervisor")
    base = {"name": "鈴木", "team": cast.team_a.pk}
    cases = [
        ({**base, "phones": [{"number": "12-34"}]}, "phones"),
        ({**base, "phones": [{"number": "03-1111-2222"}, {"number": "0311112222"}]}, "phones"),
        ({**base, "email": "not-an-email"}, "email"),
        ({**base, "custom": {"nope": "x"}}, "custom"),
        ({**base, "name": ""}, "name"),
        ({**base, "kind": "robot"}, "kind"),
    ]
    for body, param in cases:
        r = sup.post("/customers", body)
        assert r.status_code == 400, body
        assert r.json()["param"] == param, (body, r.json())
    assert Customer.objects.count() == 0
    existing = new_customer("既存", ["03-2222-3333"], cast.team_a)
    r = sup.post(f"/customers/{existing.pk}/notes", {"text": "   "})
    assert r.status_code == 400
