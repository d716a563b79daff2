"""caller_card / number_flags: the interface the screen-pop and the gateway build on."""

from __future__ import annotations

import json
from typing import Any

from callvault.apps.customers import lookup
from callvault.apps.customers.models import CustomerTag
from callvault.apps.customers.services import add_list_entry, add_note
from tests.customers.conftest import Cast, make_call, new_customer


def test_it_finds_the_customer_by_any_written_form_of_the_number(cast: Cast, yamada: Any) -> None:
    for raw in ("03-1234-5678", "0312345678", "+81312345678", "+81 3-1234-5678", "０３－１２３４－５６７８"):
        card = lookup.caller_card(raw, cast.member)
        assert card["customer"] is not None, raw
        assert card["customer"]["name"] == "山田 太郎"
        assert card["customer"]["company"] == "山田商事"
        assert card["customer"]["url"] == f"/customers/{yamada.pk}/"
        assert card["number"] == "+81312345678"
        assert card["number_display"] == "03-1234-5678"
        assert card["kind"] == "normal"


def test_it_is_json_serialisable_with_last_call_and_note(cast: Cast, yamada: Any) -> None:
    add_note(yamada, "請求書の再発行を希望。" * 30, user=cast.member)
    card = lookup.caller_card("090-1111-2222", cast.member)
    json.dumps(card)
    assert card["last_note"]["text"] == ("請求書の再発行を希望。" * 30)[:200]
    assert card["last_note"]["author"] == "member"
    # call_a came from 03-1234-5678: the customer's other number still finds it
    assert card["last_call"]["url"] == f"/calls/{cast.call_a.pk}/"
    assert card["last_call"]["agent"] == "member"
    assert card["last_call"]["started_at"] == cast.call_a.started_at.isoformat()


def test_it_gives_the_newest_call_the_user_may_see(cast: Cast, yamada: Any) -> None:
    newer_b = make_call(cast.team_b, cast.outsider, caller="+81312345678", callee="301", minutes_ago=1)
    card = lookup.caller_card("0312345678", cast.member)
    assert card["last_call"]["url"] == f"/calls/{cast.call_a.pk}/"  # not team B's newer call
    admin_card = lookup.caller_card("0312345678", cast.admin)
    assert admin_card["last_call"]["url"] == f"/calls/{newer_b.pk}/"


def test_it_gives_no_call_details_without_a_user(cast: Cast, yamada: Any) -> None:
    card = lookup.caller_card("0312345678")
    assert card["customer"]["name"] == "山田 太郎"
    assert card["last_call"] is None


def test_it_hides_customers_of_other_teams(cast: Cast, yamada: Any) -> None:
    assert lookup.caller_card("0312345678", cast.outsider)["customer"] is None
    assert lookup.caller_card("0312345678", cast.auditor)["customer"] is None
    assert lookup.caller_card("0312345678", None, team=cast.team_b)["customer"] is None
    assert lookup.caller_card("0312345678", None, team=cast.team_a)["customer"]["id"] == yamada.pk


def test_it_prefers_the_visible_customer_when_two_teams_know_the_number(cast: Cast, yamada: Any) -> None:
    other = new_customer("ヤマダ様 (サポート)", ["03-1234-5678"], cast.team_b)
    assert lookup.caller_card("0312345678", cast.outsider)["customer"]["id"] == other.pk
    assert lookup.caller_card("0312345678", cast.member)["customer"]["id"] == yamada.pk


def test_it_shows_withheld_payphone_and_unknown_callers_as_such(cast: Cast) -> None:
    cases = {
        "sip:anonymous@anonymous.invalid": ("withheld", "非通知"),
        "Anonymous": ("withheld", "非通知"),
        "": ("withheld", "非通知"),
        "anonymous": ("withheld", "非通知"),
        "Coin line/payphone": ("payphone", "公衆電話"),
        "sip:Coin%20line%2Fpayphone@ntt-east.ne.jp": ("payphone", "公衆電話"),
        "公衆電話": ("payphone", "公衆電話"),
        "payphone": ("payphone", "公衆電話"),
        "Unavailable": ("unknown", "不明"),
        "Interaction with other service": ("unknown", "不明"),
        "表示圏外": ("unknown", "不明"),
    }
    for raw, (kind, shown) in cases.items():
        card = lookup.caller_card(raw, cast.member)
        assert (card["kind"], card["number_display"]) == (kind, shown), raw
        assert card["customer"] is None
        assert card["last_call"] is None


def test_it_warns_about_listed_numbers_and_prefixes(cast: Cast, yamada: Any) -> None:
    add_list_entry("0120-*", "nuisance", "営業電話", team_id=None, user=cast.admin)
    add_list_entry("03-1234-5678", "caution", "料金の件で要確認", team_id=cast.team_a.pk, user=cast.admin)
    add_list_entry("非通知", "caution", "非通知は要注意", team_id=cast.team_b.pk, user=cast.admin)

    flags = lookup.number_flags("0120-444-444")
    assert [(f["kind"], f["label"], f["reason"], f["prefix"]) for f in flags] == [
        ("nuisance", "迷惑電話", "営業電話", True)
    ]
    assert lookup.is_blocked("0120444444")
    assert not lookup.is_blocked("0312345678")
    card = lookup.caller_card("03-1234-5678", cast.member)
    assert card["warnings"] == [{"kind": "caution", "label": "要注意", "reason": "料金の件で要確認"}]
    # team A's caution entry is not shown to team B
    assert lookup.caller_card("03-1234-5678", cast.outsider)["warnings"] == []
    assert lookup.caller_card("sip:anonymous@anonymous.invalid", cast.outsider)["warnings"][0]["reason"] == (
        "非通知は要注意"
    )
    assert lookup.caller_card("anonymous", cast.member)["warnings"] == []
    assert lookup.number_flags("0312345679") == []


def test_it_shows_warning_tags_of_the_customer(cast: Cast, yamada: Any) -> None:
    CustomerTag.objects.create(name="クレーム注意", warning=True)
    yamada.tags.add(CustomerTag.objects.get(name="クレーム注意"), CustomerTag.objects.create(name="VIP"))
    card = lookup.caller_card("0312345678", cast.member)
    assert card["tags"] == ["VIP", "クレーム注意"]
    assert card["warnings"] == [{"kind": "caution", "label": "クレーム注意", "reason": ""}]


def test_an_unknown_number_has_no_customer(cast: Cast) -> None:
    card = lookup.caller_card("06-6123-4567", cast.member)
    assert card["customer"] is None
    assert card["number"] == "+81661234567"
    assert card["number_display"] == "06-6123-4567"
    assert card["tags"] == []


def test_reach_gives_the_same_calls_and_teams_as_the_access_helper(cast: Cast) -> None:
    from callvault.apps.accounts import access

    make_call(cast.team_a, None, caller="+81355550000")
    make_call(cast.team_b, cast.member, caller="+81355550001")  # the member's own call in team B
    from callvault.apps.accounts.models import Membership

    Membership.objects.create(user=cast.auditor, team=cast.team_a, role="supervisor")  # still no calls
    for user in cast.users().values():
        reach = access.reach_of(user)
        assert set(reach.calls()) == set(access.visible_calls(user)), user
        assert reach.customer_team_ids() == access.customer_team_ids(user), user


def test_a_lookup_takes_few_queries(cast: Cast, yamada: Any, django_assert_max_num_queries: Any) -> None:
    add_note(yamada, "メモ", user=cast.member)
    # 1 for the user's reach, 5 for the card, 2 per number of the customer (yamada has 2)
    with django_assert_max_num_queries(10):
        assert lookup.caller_card("03-1234-5678", cast.member)["last_call"] is not None
    with django_assert_max_num_queries(5):
        assert lookup.caller_card("03-1234-5678", None, team=cast.team_a)["customer"] is not None


def test_the_one_statement_card_of_postgresql_says_what_the_queries_say(
    cast: Cast, yamada: Any, monkeypatch: Any, django_assert_max_num_queries: Any
) -> None:
    """On PostgreSQL the card comes from one statement (``_card_in_one_statement``); it must give
    exactly what the per-part queries give, for every role, scope, list entry, tag, note and call.
    (On SQLite both runs take the queries; the PostgreSQL pass of ``make test`` compares the two.)"""
    from django.db import connection

    from callvault.apps.customers.models import Customer

    add_note(yamada, "初回の問い合わせ", user=cast.member)
    add_note(yamada, "折り返し希望 (午後)", user=cast.supervisor)
    yamada.tags.add(
        CustomerTag.objects.create(name="クレーム注意", warning=True), CustomerTag.objects.create(name="VIP")
    )
    new_customer("ヤマダ様 (サポート)", ["03-1234-5678"], cast.team_b)  # the same number in team B
    Customer.objects.filter(phones__number="+81312345678", owner_team=cast.team_b).update(name="サポート窓口")
    add_list_entry("0120-*", "caution", "フリーダイヤル", team_id=None, user=cast.admin)
    add_list_entry("03-1234-5678", "nuisance", "しつこい営業", team_id=cast.team_b.pk, user=cast.admin)
    add_list_entry("03-1234-*", "caution", "要確認", team_id=cast.team_a.pk, user=cast.admin)
    make_call(cast.team_b, cast.outsider, caller="+819011112222", callee="301", minutes_ago=1)
    make_call(cast.team_a, None, caller="201", callee="+81312345678", minutes_ago=3)  # outbound to yamada
    numbers = ["03-1234-5678", "090-1111-2222", "0120-123-456", "06-6123-4567", "03-1234-9999"]
    users: list[tuple[Any, Any]] = [(u, None) for u in cast.users().values()]
    users += [(None, cast.team_a), (None, cast.team_b), (None, None)]

    fast = {(n, str(u), str(t)): lookup.caller_card(n, u, team=t) for n in numbers for u, t in users}
    monkeypatch.setattr(
        connection, "vendor", "sqlite" if connection.vendor == "postgresql" else connection.vendor
    )
    slow = {(n, str(u), str(t)): lookup.caller_card(n, u, team=t) for n in numbers for u, t in users}
    monkeypatch.undo()
    assert fast == slow
    assert any(c["customer"] and c["last_note"] and c["last_call"] and c["warnings"] for c in fast.values())
    if connection.vendor == "postgresql":  # one statement for the card, one for the user's reach
        with django_assert_max_num_queries(2):
            lookup.caller_card("03-1234-5678", cast.member)


def test_the_memberships_query_of_reach_matches_the_orm(cast: Cast) -> None:
    from callvault.apps.accounts import access
    from callvault.apps.accounts.models import Membership

    Membership.objects.create(user=cast.member, team=cast.team_b, role="supervisor")
    for user in cast.users().values():
        orm = user.memberships.values_list("team_id", "role", "team__share_calls", "user__profile__role")
        assert sorted(access._memberships_with_role(user.pk)) == sorted(orm), user
    assert access._memberships_with_role(cast.member.pk)  # not a vacuous comparison
