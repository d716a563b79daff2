"""Administration (users, teams, memberships, lines) and "my account" (password, API tokens).

Thin views: access through :mod:`callvault.apps.accounts.access` (anything out of reach is
404), behaviour and audit entries in :mod:`callvault.apps.accounts.services`. Pages that show a
secret once (a one-time password, a new API token) are answered directly to the POST and never
cached; the secret is neither stored nor logged.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from callvault.apps.accounts import services
from callvault.apps.accounts.access import can_view_audit, is_admin, role_of
from callvault.apps.accounts.forms import (
    LineForm,
    MembershipAddForm,
    MembershipRoleForm,
    TeamForm,
    TokenCreateForm,
    UserCreateForm,
    UserEditForm,
)
from callvault.apps.accounts.models import ApiToken, Line, Membership, Profile, Team, TeamRole, UserRole
from callvault.apps.audit.request import client_ip
from callvault.apps.calls.models import Call
from callvault.phone import display

View = Callable[..., HttpResponseBase]
PAGE_SIZE = 100
MAX_QUERY = 100


def actor(request: HttpRequest) -> services.Actor:
    return services.Actor(user=request.user, ip=client_ip(request))


def _gate(allowed: Callable[[Any], bool]) -> Callable[[View], View]:
    """Anonymous users go to the login page; logged-in users without the right get 404."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not allowed(request.user):
                raise Http404("not found")
            response = view(request, *args, **kwargs)
            add_never_cache_headers(response)
            return response

        return wrapped

    return decorator


admin_required = _gate(is_admin)
audit_viewer_required = _gate(can_view_audit)
login_required = _gate(lambda user: user.is_active)


def _get(queryset: Any, pk: int) -> Any:
    try:
        return queryset.get(pk=pk)
    except queryset.model.DoesNotExist:
        raise Http404("not found") from None


def _loaded_profile(user: Any) -> Profile | None:
    try:
        return user.profile
    except Profile.DoesNotExist:
        return None


def _user_label(user: Any) -> str:
    profile = _loaded_profile(user)
    name = profile.display_name if profile is not None else ""
    return f"{name} ({user.get_username()})" if name else user.get_username()


# --- Users ----------------------------------------------------------------------------------


@admin_required
@require_http_methods(["GET"])
def users(request: HttpRequest) -> HttpResponse:
    User = get_user_model()
    q = request.GET.get("q", "").strip()[:MAX_QUERY]
    qs = User.objects.select_related("profile").prefetch_related("memberships__team").order_by("username")
    if q:
        qs = qs.filter(
            Q(username__icontains=q) | Q(profile__display_name__icontains=q) | Q(profile__extension=q)
        )
    status = request.GET.get("status", "")
    if status == "active":
        qs = qs.filter(is_active=True)
    elif status == "inactive":
        qs = qs.filter(is_active=False)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = []
    for user in page.object_list:
        profile = _loaded_profile(user)
        role = UserRole.ADMIN if user.is_superuser else (profile.role if profile else UserRole.MEMBER)
        rows.append(
            {
                "user": user,
                "display_name": profile.display_name if profile else "",
                "extension": profile.extension if profile else "",
                "role": UserRole(role).label,
                "role_value": str(role),
                "memberships": list(user.memberships.all()),
            }
        )
    return render(
        request,
        "web/admin/users.html",
        {"section": "users", "rows": rows, "page": page, "q": q, "status": status},
    )


@admin_required
@require_http_methods(["GET", "POST"])
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        user, password = services.create_user(
            actor(request),
            username=data["username"],
            display_name=data["display_name"],
            extension=data["extension"],
            role=data["role"],
            is_active=data["is_active"],
            team=data["team"],
            team_role=data["team_role"] or "agent",
        )
        return _password_shown(request, user, password, created=True)
    return render(request, "web/admin/user_form.html", {"section": "users", "form": form, "creating": True})


def _password_shown(request: HttpRequest, user: Any, password: str, *, created: bool) -> HttpResponse:
    """The one-time password, shown once in the answer to the POST (never stored)."""
    return render(
        request,
        "web/admin/password_shown.html",
        {"section": "users", "target": user, "password": password, "created": created},
    )


@admin_required
@require_http_methods(["GET", "POST"])
def user_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = _get(get_user_model().objects.select_related("profile"), pk)
    profile, _created = Profile.objects.get_or_create(user=user)
    initial = {
        "display_name": profile.display_name,
        "extension": profile.extension,
        "role": services.role_value(user),
        "is_active": user.is_active,
    }
    form = UserEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            changed = services.update_user(
                actor(request),
                user,
                display_name=data["display_name"],
                extension=data["extension"],
                role=data["role"],
                is_active=data["is_active"],
            )
        except services.RuleError as exc:
            form.add_error(None, str(exc))
        else:
            if changed:
                messages.success(request, _("%(user)s を更新しました。") % {"user": user.get_username()})
            else:
                messages.info(request, _("変更はありませんでした。"))
            if user.pk == request.user.pk and data["role"] != UserRole.ADMIN:
                return redirect("web:account")  # no longer an admin: the admin pages would be 404
            return redirect("web:admin_user", pk=user.pk)
    tokens = list(ApiToken.objects.filter(user=user).order_by("-created_at")[:50])
    memberships = list(user.memberships.select_related("team").order_by("team__name"))
    lines = list(Line.objects.filter(user=user).select_related("team"))
    for line in lines:
        line.display_number = display(line.number)
    return render(
        request,
        "web/admin/user_form.html",
        {
            "section": "users",
            "form": form,
            "creating": False,
            "target": user,
            "is_self": user.pk == request.user.pk,
            "tokens": tokens,
            "memberships": memberships,
            "lines": lines,
        },
    )


@admin_required
@require_POST
def user_password(request: HttpRequest, pk: int) -> HttpResponse:
    user = _get(get_user_model().objects.all(), pk)
    password = services.reset_password(actor(request), user)
    if user.pk == request.user.pk:
        update_session_auth_hash(request, user)  # an admin resetting their own: stay logged in
    return _password_shown(request, user, password, created=False)


@admin_required
@require_POST
def user_token_revoke(request: HttpRequest, pk: int, token_id: int) -> HttpResponse:
    user = _get(get_user_model().objects.all(), pk)
    token = _get(ApiToken.objects.filter(user=user), token_id)
    if services.revoke_token(actor(request), token):
        messages.success(request, _("APIトークン「%(name)s」を無効にしました。") % {"name": token.name})
    return redirect("web:admin_user", pk=user.pk)


# --- Teams and memberships ------------------------------------------------------------------


@admin_required
@require_http_methods(["GET"])
def teams(request: HttpRequest) -> HttpResponse:
    rows = Team.objects.annotate(
        members=Count("memberships", distinct=True),
        supervisors=Count("memberships", filter=Q(memberships__role=TeamRole.SUPERVISOR), distinct=True),
        line_count=Count("lines", distinct=True),
    ).order_by("name")
    return render(request, "web/admin/teams.html", {"section": "teams", "teams": rows})


@admin_required
@require_http_methods(["GET", "POST"])
def team_create(request: HttpRequest) -> HttpResponse:
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        team = services.save_team(
            actor(request), None, name=form.cleaned_data["name"], share_calls=form.cleaned_data["share_calls"]
        )
        messages.success(
            request, _("チーム「%(team)s」を作成しました。メンバーを追加してください。") % {"team": team.name}
        )
        return redirect("web:admin_team", pk=team.pk)
    return render(request, "web/admin/team_form.html", {"section": "teams", "form": form})


@admin_required
@require_http_methods(["GET", "POST"])
def team_detail(request: HttpRequest, pk: int) -> HttpResponse:
    team = _get(Team.objects.all(), pk)
    form = TeamForm(request.POST or None, instance=Team.objects.get(pk=team.pk))
    if request.method == "POST" and form.is_valid():
        services.save_team(
            actor(request), team, name=form.cleaned_data["name"], share_calls=form.cleaned_data["share_calls"]
        )
        messages.success(request, _("チーム「%(team)s」を保存しました。") % {"team": team.name})
        return redirect("web:admin_team", pk=team.pk)
    return _team_page(request, team, form=form, status=400 if request.method == "POST" else 200)


def _team_page(
    request: HttpRequest,
    team: Team,
    *,
    form: TeamForm | None = None,
    add_form: MembershipAddForm | None = None,
    status: int = 200,
) -> HttpResponse:
    members = list(
        team.memberships.select_related("user", "user__profile").order_by("-role", "user__username")
    )
    for m in members:
        m.label = _user_label(m.user)
    lines = list(team.lines.select_related("user", "user__profile"))
    for line in lines:
        line.display_number = display(line.number)
    return render(
        request,
        "web/admin/team_detail.html",
        {
            "section": "teams",
            "team": team,
            "form": form or TeamForm(instance=team),
            "add_form": add_form or MembershipAddForm(team=team),
            "members": members,
            "lines": lines,
            "role_choices": TeamRole.choices,
            "call_count": Call.objects.filter(team=team).count(),
        },
        status=status,
    )


@admin_required
@require_POST
def team_delete(request: HttpRequest, pk: int) -> HttpResponse:
    team = _get(Team.objects.all(), pk)
    try:
        services.delete_team(actor(request), team)
    except services.RuleError as exc:
        messages.error(request, str(exc))
        return redirect("web:admin_team", pk=team.pk)
    messages.success(request, _("チーム「%(team)s」を削除しました。") % {"team": team.name})
    return redirect("web:admin_teams")


@admin_required
@require_POST
def member_add(request: HttpRequest, pk: int) -> HttpResponse:
    team = _get(Team.objects.all(), pk)
    form = MembershipAddForm(request.POST, team=team)
    if form.is_valid():
        try:
            membership = services.add_member(
                actor(request), team, form.cleaned_data["user"], form.cleaned_data["role"]
            )
        except services.RuleError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                _("%(user)s を%(role)sとして追加しました。")
                % {"user": _user_label(membership.user), "role": membership.get_role_display()},
            )
        return redirect("web:admin_team", pk=team.pk)
    return _team_page(request, team, add_form=form, status=400)


@admin_required
@require_POST
def member_role(request: HttpRequest, pk: int, membership_id: int) -> HttpResponse:
    team = _get(Team.objects.all(), pk)
    membership = _get(Membership.objects.filter(team=team).select_related("user", "team"), membership_id)
    form = MembershipRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("役割を選んでください。"))
    elif services.change_member_role(actor(request), membership, form.cleaned_data["role"]):
        messages.success(
            request,
            _("%(user)s の役割を%(role)sに変更しました。")
            % {"user": membership.user.get_username(), "role": membership.get_role_display()},
        )
    return redirect("web:admin_team", pk=team.pk)


@admin_required
@require_POST
def member_remove(request: HttpRequest, pk: int, membership_id: int) -> HttpResponse:
    team = _get(Team.objects.all(), pk)
    membership = _get(Membership.objects.filter(team=team).select_related("user", "team"), membership_id)
    services.remove_member(actor(request), membership)
    messages.success(
        request,
        _("%(user)s をチーム「%(team)s」から外しました。")
        % {"user": membership.user.get_username(), "team": team.name},
    )
    return redirect("web:admin_team", pk=team.pk)


# --- Lines ----------------------------------------------------------------------------------


@admin_required
@require_http_methods(["GET"])
def lines(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()[:MAX_QUERY]
    qs = Line.objects.select_related("team", "user", "user__profile").order_by("team__name", "number")
    if q:
        number = services.normalize_query(q)
        qs = qs.filter(Q(number__icontains=number) | Q(label__icontains=q) | Q(team__name__icontains=q))
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    for line in page.object_list:
        line.display_number = display(line.number)
        line.user_label = _user_label(line.user) if line.user else ""
    return render(
        request,
        "web/admin/lines.html",
        {"section": "lines", "page": page, "q": q, "has_teams": Team.objects.exists()},
    )


@admin_required
@require_http_methods(["GET", "POST"])
def line_create(request: HttpRequest) -> HttpResponse:
    form = LineForm(request.POST or None, initial={"team": request.GET.get("team", "")[:20]})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        line = services.save_line(
            actor(request),
            None,
            number=data["number"],
            label=data["label"],
            team=data["team"],
            user=data["user"],
        )
        messages.success(request, _("回線 %(number)s を登録しました。") % {"number": display(line.number)})
        if services.unassigned_calls_for_line(line).exists():
            return redirect("web:admin_line_assign", pk=line.pk)
        return redirect("web:admin_lines")
    return render(request, "web/admin/line_form.html", {"section": "lines", "form": form, "line": None})


@admin_required
@require_http_methods(["GET", "POST"])
def line_edit(request: HttpRequest, pk: int) -> HttpResponse:
    line = _get(Line.objects.select_related("team", "user"), pk)
    form = LineForm(request.POST or None, instance=line)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        services.save_line(
            actor(request),
            line,
            number=data["number"],
            label=data["label"],
            team=data["team"],
            user=data["user"],
        )
        messages.success(request, _("回線 %(number)s を保存しました。") % {"number": display(line.number)})
        return redirect("web:admin_lines")
    unassigned = services.unassigned_calls_for_line(line).count()
    return render(
        request,
        "web/admin/line_form.html",
        {"section": "lines", "form": form, "line": line, "unassigned": unassigned},
    )


@admin_required
@require_POST
def line_delete(request: HttpRequest, pk: int) -> HttpResponse:
    line = _get(Line.objects.select_related("team", "user"), pk)
    services.delete_line(actor(request), line)
    messages.success(
        request,
        _("回線 %(number)s を削除しました。割り当て済みの通話はそのまま残ります。")
        % {"number": display(line.number)},
    )
    return redirect("web:admin_lines")


@admin_required
@require_http_methods(["GET", "POST"])
def line_assign(request: HttpRequest, pk: int) -> HttpResponse:
    line = _get(Line.objects.select_related("team", "user"), pk)
    if request.method == "POST":
        result = services.assign_calls_for_line(actor(request), line)
        if result.assigned:
            messages.success(
                request,
                _("%(count)s 件の通話をチーム「%(team)s」に割り当てました。")
                % {"count": result.assigned, "team": line.team.name},
            )
        else:
            messages.info(request, _("割り当てられる通話はありませんでした。"))
        if result.remaining:
            messages.warning(
                request,
                _("まだ %(count)s 件残っています。もう一度「割り当てる」を押してください。")
                % {"count": result.remaining},
            )
            return redirect("web:admin_line_assign", pk=line.pk)
        return redirect("web:admin_lines")
    preview = services.preview_assignment(line)
    return render(
        request,
        "web/admin/line_assign.html",
        {
            "section": "lines",
            "line": line,
            "line_number": display(line.number),
            "preview": preview,
        },
    )


# --- My account -----------------------------------------------------------------------------


def _account_page(
    request: HttpRequest,
    *,
    password_form: PasswordChangeForm | None = None,
    token_form: TokenCreateForm | None = None,
    new_token: str = "",
    new_token_obj: ApiToken | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    profile = Profile.objects.filter(user=user).first()
    return render(
        request,
        "web/account/account.html",
        {
            "section": "account",
            "profile": profile,
            "role_label": UserRole(role_of(user)).label if role_of(user) in UserRole.values else "",
            "memberships": list(user.memberships.select_related("team").order_by("team__name")),
            "password_form": password_form or _password_form(user),
            "token_form": token_form or TokenCreateForm(),
            "tokens": list(ApiToken.objects.filter(user=user).order_by("-created_at")[:100]),
            "new_token": new_token,
            "new_token_obj": new_token_obj,
            "max_tokens": services.MAX_ACTIVE_TOKENS,
        },
        status=status,
    )


def _password_form(user: Any, data: Any = None) -> PasswordChangeForm:
    form = PasswordChangeForm(user, data)
    form.fields["old_password"].widget.attrs.pop("autofocus", None)  # the page is mostly about tokens
    return form


@login_required
@require_http_methods(["GET"])
def account(request: HttpRequest) -> HttpResponse:
    return _account_page(request)


@login_required
@require_POST
def account_password(request: HttpRequest) -> HttpResponse:
    form = _password_form(request.user, request.POST)
    if form.is_valid():
        user = form.save()
        update_session_auth_hash(request, user)
        services.record_password_change(actor(request))
        messages.success(request, _("パスワードを変更しました。"))
        return redirect("web:account")
    return _account_page(request, password_form=form, status=400)


@login_required
@require_POST
def account_token_create(request: HttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST)
    if form.is_valid():
        try:
            token, cleartext = services.issue_token(request.user, form.cleaned_data["name"], actor(request))
        except services.RuleError as exc:
            form.add_error(None, str(exc))
        else:
            return _account_page(request, new_token=cleartext, new_token_obj=token)
    return _account_page(request, token_form=form, status=400)


@login_required
@require_POST
def account_token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = _get(ApiToken.objects.filter(user=request.user), pk)
    if services.revoke_token(actor(request), token):
        messages.success(request, _("APIトークン「%(name)s」を無効にしました。") % {"name": token.name})
    else:
        messages.info(request, _("このトークンはすでに無効です。"))
    return redirect(reverse("web:account") + "#tokens")
