"""Administration pages: users, teams, memberships, lines. Admins only; everyone else 404."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.test import Client
from django.urls import reverse

from callvault.apps.accounts import access
from callvault.apps.accounts.models import ApiToken, Line, Membership, Profile, Team
from callvault.apps.audit.models import AuditEntry
from tests.apps.conftest import PASSWORD, Cast, make_call, make_user

EXPECTED_STATUS = {"admin": 200, "supervisor": 404, "member": 404, "outsider": 404, "auditor": 404}


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def entries(action: str | None = None) -> list[AuditEntry]:
    qs = AuditEntry.objects.order_by("id")
    return list(qs.filter(action=action) if action else qs)


def admin_pages(cast: Cast) -> list[str]:
    line = Line.objects.get(number="201")
    return [
        reverse("web:admin"),
        reverse("web:admin_users"),
        reverse("web:admin_user_create"),
        reverse("web:admin_user", args=[cast.member.pk]),
        reverse("web:admin_teams"),
        reverse("web:admin_team_create"),
        reverse("web:admin_team", args=[cast.team_a.pk]),
        reverse("web:admin_lines"),
        reverse("web:admin_line_create"),
        reverse("web:admin_line", args=[line.pk]),
        reverse("web:admin_line_assign", args=[line.pk]),
    ]


def test_it_shows_every_admin_page_to_admins_and_404_to_everyone_else(cast: Cast) -> None:
    for role, user in cast.users().items():
        client = client_for(user)
        for url in admin_pages(cast):
            response = client.get(url)
            assert response.status_code == EXPECTED_STATUS[role], (role, url)


def test_it_refuses_every_admin_change_to_non_admins_with_404_and_changes_nothing(cast: Cast) -> None:
    line = Line.objects.get(number="201")
    membership = Membership.objects.get(user=cast.member)
    token, _ = ApiToken.issue(cast.member, "crm")
    posts = [
        (reverse("web:admin_user_create"), {"username": "mallory", "role": "admin", "is_active": "on"}),
        (reverse("web:admin_user", args=[cast.member.pk]), {"role": "admin", "is_active": "on"}),
        (reverse("web:admin_user_password", args=[cast.member.pk]), {}),
        (reverse("web:admin_user_token_revoke", args=[cast.member.pk, token.pk]), {}),
        (reverse("web:admin_team_create"), {"name": "乗っ取り"}),
        (reverse("web:admin_team", args=[cast.team_a.pk]), {"name": "x"}),
        (reverse("web:admin_team_delete", args=[cast.team_b.pk]), {}),
        (
            reverse("web:admin_member_add", args=[cast.team_a.pk]),
            {"user": cast.outsider.pk, "role": "supervisor"},
        ),
        (reverse("web:admin_member_role", args=[cast.team_a.pk, membership.pk]), {"role": "supervisor"}),
        (reverse("web:admin_member_remove", args=[cast.team_a.pk, membership.pk]), {}),
        (reverse("web:admin_line_create"), {"number": "0399998888", "team": cast.team_a.pk}),
        (reverse("web:admin_line", args=[line.pk]), {"number": "999", "team": cast.team_a.pk}),
        (reverse("web:admin_line_delete", args=[line.pk]), {}),
        (reverse("web:admin_line_assign", args=[line.pk]), {}),
    ]
    for role, user in cast.users().items():
        if role == "admin":
            continue
        client = client_for(user)
        for url, data in posts:
            assert client.post(url, data).status_code == 404, (role, url)
    assert not get_user_model().objects.filter(username="mallory").exists()
    assert access.role_of(cast.member) == "member"
    assert authenticate(username="member", password=PASSWORD) is not None
    token.refresh_from_db()
    assert token.revoked_at is None
    assert set(Team.objects.values_list("name", flat=True)) == {"営業部", "サポート部"}
    assert Membership.objects.get(pk=membership.pk).role == "agent"
    assert Line.objects.filter(number="201").exists() and not Line.objects.filter(number="999").exists()
    assert entries() == []


def test_it_sends_anonymous_visitors_to_the_login_page(cast: Cast, settings: Any) -> None:
    settings.LOGIN_URL = "/login/"
    client = Client()
    for url in [*admin_pages(cast), reverse("web:audit"), reverse("web:account")]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url
    response = client.post(reverse("web:admin_user_create"), {"username": "x"})
    assert response.status_code == 302 and not get_user_model().objects.filter(username="x").exists()


def test_it_answers_bad_ids_and_odd_parameters_with_404_or_a_page_never_a_500(cast: Cast) -> None:
    client = client_for(cast.admin)
    for url in [
        "/admin/users/999999/",
        "/admin/users/99999999999999999999999999/",
        "/admin/users/abc/",
        "/admin/teams/0/",
        "/admin/lines/999999999999999999/",
        f"/admin/users/{cast.member.pk}/tokens/999/revoke/",
    ]:
        method = client.post if url.endswith("revoke/") else client.get
        assert method(url).status_code == 404, url
    assert client.get(reverse("web:admin_users"), {"q": "x" * 10000, "page": "abc"}).status_code == 200
    assert client.get(reverse("web:admin_lines"), {"q": "03-1234", "page": "-1"}).status_code == 200
    assert client.post(reverse("web:admin_users")).status_code == 405


def test_it_requires_a_csrf_token_for_changes(cast: Cast) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.admin)
    response = client.post(reverse("web:admin_team_create"), {"name": "経理部", "share_calls": "on"})
    assert response.status_code == 403
    assert not Team.objects.filter(name="経理部").exists()


# --- users ----------------------------------------------------------------------------------


def test_it_creates_a_user_and_shows_the_one_time_password_once(cast: Cast) -> None:
    client = client_for(cast.admin)
    response = client.post(
        reverse("web:admin_user_create"),
        {
            "username": "yamada",
            "display_name": "山田 花子",
            "extension": "205",
            "role": "member",
            "is_active": "on",
            "team": cast.team_a.pk,
            "team_role": "supervisor",
        },
        REMOTE_ADDR="192.0.2.10",
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    password = response.context["password"]
    assert len(password) == 19 and password in response.content.decode()
    user = get_user_model().objects.get(username="yamada")
    assert authenticate(username="yamada", password=password) == user
    profile = Profile.objects.get(user=user)
    assert (profile.display_name, profile.extension, profile.role) == ("山田 花子", "205", "member")
    assert Membership.objects.get(user=user).role == "supervisor"
    assert access.can_export(user, cast.call_a)

    created, joined = entries("role_change")
    assert (created.username, created.ip, created.object_type, created.object_id) == (
        "admin",
        "192.0.2.10",
        "user",
        str(user.pk),
    )
    assert created.detail == {"change": "user_created", "target": "yamada", "to": "member", "active": True}
    assert joined.detail["change"] == "membership_added"
    assert (joined.detail["team"], joined.detail["from"], joined.detail["to"]) == (
        "営業部",
        None,
        "supervisor",
    )
    assert all(password not in json.dumps(e.detail) for e in entries())

    # The page that showed it is gone: the user's page never shows a password.
    page = client.get(reverse("web:admin_user", args=[user.pk]))
    assert password not in page.content.decode()


def test_it_explains_what_is_wrong_with_a_new_user_in_japanese(cast: Cast) -> None:
    client = client_for(cast.admin)
    response = client.post(reverse("web:admin_user_create"), {"username": "MEMBER", "role": "member"})
    assert response.status_code == 200
    assert "このユーザー名はすでに使われています。" in response.content.decode()
    response = client.post(
        reverse("web:admin_user_create"), {"username": "a b", "role": "root", "extension": "12-34"}
    )
    errors = response.context["form"].errors
    assert set(errors) == {"username", "role", "extension"}
    assert "内線番号は半角数字" in errors["extension"][0]
    assert entries() == []


def test_it_changes_a_role_and_audits_who_changed_whom_from_what_to_what(cast: Cast) -> None:
    client = client_for(cast.admin)
    response = client.post(
        reverse("web:admin_user", args=[cast.member.pk]),
        {"display_name": "山本 一郎", "extension": "201", "role": "auditor", "is_active": "on"},
        REMOTE_ADDR="198.51.100.4",
    )
    assert response.status_code == 302
    assert access.role_of(cast.member) == "auditor"
    assert list(access.visible_calls(cast.member)) == []
    (change,) = entries("role_change")
    assert (change.username, change.ip, change.object_id) == ("admin", "198.51.100.4", str(cast.member.pk))
    assert change.detail == {"change": "user_role", "target": "member", "from": "member", "to": "auditor"}
    (edit,) = entries("settings")
    assert edit.detail["fields"] == {"display_name": ["member", "山本 一郎"], "extension": ["", "201"]}


def test_it_makes_a_demoted_superuser_an_ordinary_member(cast: Cast) -> None:
    other_admin = make_user("admin2", role="admin", superuser=True)
    client = client_for(cast.admin)
    client.post(
        reverse("web:admin_user", args=[other_admin.pk]),
        {"display_name": "", "extension": "", "role": "member", "is_active": "on"},
    )
    other_admin.refresh_from_db()
    assert not other_admin.is_superuser
    assert access.role_of(other_admin) == "member"
    assert client_for(other_admin).get(reverse("web:admin_users")).status_code == 404


def test_it_deactivates_a_user_revokes_their_tokens_and_audits_it_as_a_deletion(cast: Cast) -> None:
    token, _ = ApiToken.issue(cast.member, "crm")
    client = client_for(cast.admin)
    client.post(
        reverse("web:admin_user", args=[cast.member.pk]),
        {"display_name": "member", "extension": "", "role": "member"},
    )
    cast.member.refresh_from_db()
    token.refresh_from_db()
    assert not cast.member.is_active and token.revoked_at is not None
    assert authenticate(username="member", password=PASSWORD) is None
    (deleted,) = entries("delete")
    assert deleted.detail == {"change": "user_deactivated", "target": "member", "tokens_revoked": 1}

    client.post(
        reverse("web:admin_user", args=[cast.member.pk]),
        {"display_name": "member", "extension": "", "role": "member", "is_active": "on"},
    )
    cast.member.refresh_from_db()
    assert cast.member.is_active
    assert entries("settings")[-1].detail == {"change": "user_reactivated", "target": "member"}


def test_the_last_active_admin_cannot_remove_their_own_admin_role_or_deactivate_themselves(
    cast: Cast,
) -> None:
    client = client_for(cast.admin)
    url = reverse("web:admin_user", args=[cast.admin.pk])
    for data in (
        {"role": "member", "is_active": "on"},
        {"role": "admin"},
        {"role": "auditor"},
    ):
        response = client.post(url, data)
        assert response.status_code == 200
        assert "あなたは最後の有効な管理者のため" in response.content.decode()
    cast.admin.refresh_from_db()
    assert cast.admin.is_active and access.role_of(cast.admin) == "admin"
    assert entries() == []

    # With a second active admin, the first may step down (and lands on their account page).
    make_user("admin2", role="admin")
    response = client.post(url, {"role": "member", "is_active": "on"})
    assert response.status_code == 302 and response["Location"] == reverse("web:account")
    cast.admin.refresh_from_db()
    assert access.role_of(cast.admin) == "member"


def test_an_inactive_second_admin_does_not_count_as_the_remaining_admin(cast: Cast) -> None:
    dormant = make_user("admin2", role="admin")
    dormant.is_active = False
    dormant.save()
    response = client_for(cast.admin).post(
        reverse("web:admin_user", args=[cast.admin.pk]), {"role": "member", "is_active": "on"}
    )
    assert "最後の有効な管理者" in response.content.decode()
    assert access.role_of(cast.admin) == "admin"


def test_it_resets_a_password_shows_it_once_and_audits_it_without_the_password(cast: Cast) -> None:
    client = client_for(cast.admin)
    member_session = client_for(cast.member)
    response = client.post(reverse("web:admin_user_password", args=[cast.member.pk]), REMOTE_ADDR="192.0.2.1")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    password = response.context["password"]
    assert authenticate(username="member", password=password) is not None
    assert authenticate(username="member", password=PASSWORD) is None
    (entry,) = entries("settings")
    assert entry.detail == {"change": "password_reset", "target": "member"}
    assert (entry.username, entry.ip) == ("admin", "192.0.2.1")
    assert password not in json.dumps(entry.detail)
    # The member's open session ends with the old password.
    assert member_session.get(reverse("web:account")).status_code == 302


def test_an_admin_revokes_a_users_token_but_not_through_another_users_url(cast: Cast) -> None:
    token, _ = ApiToken.issue(cast.member, "crm")
    client = client_for(cast.admin)
    wrong = client.post(reverse("web:admin_user_token_revoke", args=[cast.outsider.pk, token.pk]))
    assert wrong.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    client.post(reverse("web:admin_user_token_revoke", args=[cast.member.pk, token.pk]))
    token.refresh_from_db()
    assert token.revoked_at is not None
    (entry,) = entries("token")
    assert entry.detail == {"change": "token_revoked", "name": "crm", "owner": "member"}


def test_the_users_list_finds_people_by_name_extension_and_status(cast: Cast) -> None:
    Profile.objects.filter(user=cast.member).update(display_name="山本 一郎", extension="201")
    client = client_for(cast.admin)
    names = lambda r: [row["user"].username for row in r.context["rows"]]  # noqa: E731
    assert names(client.get(reverse("web:admin_users"), {"q": "山本"})) == ["member"]
    assert names(client.get(reverse("web:admin_users"), {"q": "201"})) == ["member"]
    cast.outsider.is_active = False
    cast.outsider.save()
    assert names(client.get(reverse("web:admin_users"), {"status": "inactive"})) == ["outsider"]
    page = client.get(reverse("web:admin_users")).content.decode()
    assert "監査担当" in page and "スーパーバイザー" in page and "管理者" in page


# --- teams and memberships -------------------------------------------------------------------


def test_it_creates_and_edits_a_team_and_audits_the_settings(cast: Cast) -> None:
    client = client_for(cast.admin)
    response = client.post(reverse("web:admin_team_create"), {"name": " 経理部 ", "share_calls": "on"})
    team = Team.objects.get(name="経理部")
    assert response["Location"] == reverse("web:admin_team", args=[team.pk]) and team.share_calls
    page = client.get(reverse("web:admin_team", args=[team.pk])).content.decode()
    assert "担当者は自分が担当した通話" in page  # the explanation of share_calls

    client.post(reverse("web:admin_team", args=[team.pk]), {"name": "経理部"})
    team.refresh_from_db()
    assert not team.share_calls
    created, changed = entries("settings")
    assert created.detail == {"change": "team_created", "name": "経理部", "share_calls": True}
    assert changed.detail == {
        "change": "team_updated",
        "name": "経理部",
        "fields": {"share_calls": [True, False]},
    }

    duplicate = client.post(reverse("web:admin_team_create"), {"name": "営業部"})
    assert "同じ名前のチームがすでにあります。" in duplicate.content.decode()


def test_memberships_are_added_changed_and_removed_with_role_change_entries(cast: Cast) -> None:
    client = client_for(cast.admin)
    team_url = reverse("web:admin_team", args=[cast.team_a.pk])
    response = client.post(
        reverse("web:admin_member_add", args=[cast.team_a.pk]), {"user": cast.outsider.pk, "role": "agent"}
    )
    assert response["Location"] == team_url
    assert cast.call_a in access.visible_calls(cast.outsider)
    membership = Membership.objects.get(user=cast.outsider, team=cast.team_a)

    client.post(
        reverse("web:admin_member_role", args=[cast.team_a.pk, membership.pk]), {"role": "supervisor"}
    )
    assert access.can_export(cast.outsider, cast.call_a)
    client.post(reverse("web:admin_member_remove", args=[cast.team_a.pk, membership.pk]))
    assert cast.call_a not in access.visible_calls(cast.outsider)

    added, changed, removed = entries("role_change")
    common = {"target": "outsider", "team": "営業部", "team_id": cast.team_a.pk}
    assert added.detail == {**common, "change": "membership_added", "from": None, "to": "agent"}
    assert changed.detail == {**common, "change": "membership_role", "from": "agent", "to": "supervisor"}
    assert removed.detail == {**common, "change": "membership_removed", "from": "supervisor", "to": None}
    assert {e.object_id for e in (added, changed, removed)} == {str(cast.outsider.pk)}


def test_a_membership_of_another_team_is_not_found_through_this_team(cast: Cast) -> None:
    membership_b = Membership.objects.get(user=cast.outsider, team=cast.team_b)
    client = client_for(cast.admin)
    url = reverse("web:admin_member_remove", args=[cast.team_a.pk, membership_b.pk])
    assert client.post(url).status_code == 404
    assert Membership.objects.filter(pk=membership_b.pk).exists()


def test_adding_someone_twice_or_nobody_is_refused_clearly(cast: Cast) -> None:
    client = client_for(cast.admin)
    response = client.post(
        reverse("web:admin_member_add", args=[cast.team_a.pk]), {"user": cast.member.pk, "role": "agent"}
    )
    assert response.status_code == 400  # the member is not offered: not a valid choice
    assert "正しく選択してください" in response.content.decode()
    response = client.post(reverse("web:admin_member_add", args=[cast.team_a.pk]), {"user": "abc"})
    assert response.status_code == 400
    assert entries() == []


def test_a_team_is_deleted_only_once_it_has_no_members_and_no_lines(cast: Cast) -> None:
    client = client_for(cast.admin)
    response = client.post(reverse("web:admin_team_delete", args=[cast.team_b.pk]), follow=True)
    assert "先にメンバーと回線を外してから削除してください" in response.content.decode()
    assert Team.objects.filter(pk=cast.team_b.pk).exists()

    Membership.objects.filter(team=cast.team_b).delete()
    Line.objects.filter(team=cast.team_b).delete()
    client.post(reverse("web:admin_team_delete", args=[cast.team_b.pk]))
    assert not Team.objects.filter(pk=cast.team_b.pk).exists()
    cast.call_b.refresh_from_db()
    assert cast.call_b.team_id is None
    (entry,) = entries("delete")
    assert entry.detail == {"change": "team_deleted", "name": "サポート部", "calls": 1}


# --- lines -----------------------------------------------------------------------------------


def test_it_stores_line_numbers_in_e164_and_keeps_extensions(cast: Cast) -> None:
    client = client_for(cast.admin)
    client.post(
        reverse("web:admin_line_create"), {"number": "03-1234-5678", "label": "代表", "team": cast.team_a.pk}
    )
    client.post(
        reverse("web:admin_line_create"),
        {"number": "202", "label": "営業 山本", "team": cast.team_a.pk, "user": cast.member.pk},
    )
    assert Line.objects.get(label="代表").number == "+81312345678"
    assert Line.objects.get(number="202").user == cast.member
    created = entries("settings")
    assert created[0].detail == {
        "change": "line_created",
        "number": "+81312345678",
        "label": "代表",
        "team": "営業部",
        "agent": None,
    }
    listing = client.get(reverse("web:admin_lines")).content.decode()
    assert "03-1234-5678" in listing
    found = client.get(reverse("web:admin_lines"), {"q": "03-1234"})
    assert [line.label for line in found.context["page"].object_list] == ["代表"]


def test_it_refuses_lines_it_cannot_use_with_a_clear_message(cast: Cast) -> None:
    Line.objects.create(number="+81312345678", label="代表", team=cast.team_a)
    client = client_for(cast.admin)

    def errors(data: dict[str, Any]) -> dict[str, Any]:
        response = client.post(reverse("web:admin_line_create"), {"team": cast.team_a.pk, **data})
        assert response.status_code == 200
        return dict(response.context["form"].errors)

    assert "すでに回線「代表」" in errors({"number": "03 1234 5678"})["number"][0]
    assert "非通知" in errors({"number": "非通知"})["number"][0]
    assert "数字で入力" in errors({"number": "abc"})["number"][0]
    assert "メンバーではありません" in errors({"number": "209", "user": cast.outsider.pk})["user"][0]
    assert "number" in errors({"number": "1" * 41})
    assert Line.objects.count() == 3
    assert entries() == []


def test_after_creating_a_line_it_offers_to_assign_the_calls_that_involve_it(cast: Cast) -> None:
    inbound = make_call(None, None, caller="+819011112222", callee="+81355556666", direction="in")
    outbound = make_call(None, None, caller="+81355556666", callee="+819033334444", direction="out")
    customer_side = make_call(None, None, caller="+81355556666", callee="+819011112222", direction="in")
    unrelated = make_call(None, None, caller="+819011112222", callee="+81399990000", direction="in")
    client = client_for(cast.admin)
    response = client.post(
        reverse("web:admin_line_create"),
        {"number": "03-5555-6666", "label": "代表", "team": cast.team_b.pk},
    )
    line = Line.objects.get(number="+81355556666")
    assert response["Location"] == reverse("web:admin_line_assign", args=[line.pk])

    preview = client.get(response["Location"])
    assert preview.context["preview"].total == 3
    page = preview.content.decode()
    assert "03-5555-6666" in page and "サポート部" in page and "割り当てなし" in page
    for call in (inbound, outbound, customer_side):
        call.refresh_from_db()
        assert call.team_id is None  # the preview changes nothing

    response = client.post(reverse("web:admin_line_assign", args=[line.pk]), REMOTE_ADDR="192.0.2.8")
    assert response["Location"] == reverse("web:admin_lines")
    for call, team in (
        (inbound, cast.team_b.pk),
        (outbound, cast.team_b.pk),
        (customer_side, None),
        (unrelated, None),
    ):
        call.refresh_from_db()
        assert call.team_id == team, call
    assert inbound in access.visible_calls(cast.outsider)
    assert entries("settings")[-1].detail == {
        "change": "calls_assigned",
        "number": "+81355556666",
        "team": "サポート部",
        "count": 2,
    }


def test_a_line_without_unassigned_calls_goes_straight_back_to_the_list(cast: Cast) -> None:
    response = client_for(cast.admin).post(
        reverse("web:admin_line_create"), {"number": "0399990000", "team": cast.team_a.pk}
    )
    assert response["Location"] == reverse("web:admin_lines")


def test_it_edits_and_deletes_a_line_with_audit_entries(cast: Cast) -> None:
    line = Line.objects.get(number="201")
    client = client_for(cast.admin)
    page = client.get(reverse("web:admin_line", args=[line.pk]))
    assert page.context["form"].initial["number"] == "201"
    client.post(
        reverse("web:admin_line", args=[line.pk]),
        {"number": "201", "label": "営業 山本 (直通)", "team": cast.team_a.pk, "user": ""},
    )
    line.refresh_from_db()
    assert (line.label, line.user) == ("営業 山本 (直通)", None)
    (changed,) = entries("settings")
    assert changed.detail["fields"] == {"label": ["営業 山本", "営業 山本 (直通)"], "agent": ["member", None]}

    client.post(reverse("web:admin_line_delete", args=[line.pk]))
    assert not Line.objects.filter(pk=line.pk).exists()
    (deleted,) = entries("delete")
    assert deleted.detail["change"] == "line_deleted" and deleted.detail["number"] == "201"
    cast.call_a.refresh_from_db()
    assert cast.call_a.team_id == cast.team_a.pk  # assigned calls stay


def test_new_users_get_a_profile_and_superusers_the_admin_role(db: None) -> None:
    User = get_user_model()
    plain = User.objects.create_user(username="plain", password=PASSWORD)
    boss = User.objects.create_superuser(username="boss", password=PASSWORD, email="")
    assert Profile.objects.get(user=plain).role == "member"
    assert Profile.objects.get(user=boss).role == "admin"


def test_the_admin_pages_switch_to_english(cast: Cast) -> None:
    client = client_for(cast.admin)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"  # the switch in the user menu sets this
    users = client.get(reverse("web:admin_users")).content.decode()
    assert "Add a user" in users and "ユーザーを追加" not in users
    team = client.get(reverse("web:admin_team", args=[cast.team_a.pk]))
    assert "Share calls within the team" in team.content.decode()
    refused = client.post(reverse("web:admin_user", args=[cast.admin.pk]), {"role": "member"})
    assert "You are the last active administrator" in refused.content.decode()


def test_the_users_list_costs_the_same_few_queries_however_many_users(
    cast: Cast, django_assert_max_num_queries: Any
) -> None:
    for i in range(30):
        user = make_user(f"agent{i:02d}")
        Membership.objects.create(user=user, team=cast.team_a, role="agent")
    client = client_for(cast.admin)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("web:admin_users"))
    assert len(response.context["rows"]) == 35
