"""Routes of the administration area, the audit log browser and "my account"."""

from __future__ import annotations

from django.urls import path, register_converter

from callvault.apps.audit import views as audit_views
from callvault.apps.web import views_admin as v


class IdConverter:
    """A database id: 1 to 18 digits, so that huge numbers are a plain 404, never an overflow."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(int(value))


register_converter(IdConverter, "cvid")

urlpatterns = [
    # Administration: organisation admins only (everyone else 404)
    path("admin/", v.users, name="admin"),
    path("admin/users/", v.users, name="admin_users"),
    path("admin/users/new/", v.user_create, name="admin_user_create"),
    path("admin/users/<cvid:pk>/", v.user_edit, name="admin_user"),
    path("admin/users/<cvid:pk>/password/", v.user_password, name="admin_user_password"),
    path(
        "admin/users/<cvid:pk>/tokens/<cvid:token_id>/revoke/",
        v.user_token_revoke,
        name="admin_user_token_revoke",
    ),
    path("admin/teams/", v.teams, name="admin_teams"),
    path("admin/teams/new/", v.team_create, name="admin_team_create"),
    path("admin/teams/<cvid:pk>/", v.team_detail, name="admin_team"),
    path("admin/teams/<cvid:pk>/delete/", v.team_delete, name="admin_team_delete"),
    path("admin/teams/<cvid:pk>/members/", v.member_add, name="admin_member_add"),
    path("admin/teams/<cvid:pk>/members/<cvid:membership_id>/role/", v.member_role, name="admin_member_role"),
    path(
        "admin/teams/<cvid:pk>/members/<cvid:membership_id>/remove/",
        v.member_remove,
        name="admin_member_remove",
    ),
    path("admin/lines/", v.lines, name="admin_lines"),
    path("admin/lines/new/", v.line_create, name="admin_line_create"),
    path("admin/lines/<cvid:pk>/", v.line_edit, name="admin_line"),
    path("admin/lines/<cvid:pk>/delete/", v.line_delete, name="admin_line_delete"),
    path("admin/lines/<cvid:pk>/assign/", v.line_assign, name="admin_line_assign"),
    # Audit log: admins and auditors
    path("audit/", audit_views.audit_log, name="audit"),
    path("audit/verify/", audit_views.audit_verify, name="audit_verify"),
    path("audit/export/", audit_views.audit_export, name="audit_export"),
    # My account: every logged-in user
    path("account/", v.account, name="account"),
    path("account/password/", v.account_password, name="account_password"),
    path("account/tokens/", v.account_token_create, name="account_token_create"),
    path("account/tokens/<cvid:pk>/revoke/", v.account_token_revoke, name="account_token_revoke"),
]
