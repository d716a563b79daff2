"""Assigning calls to teams and agents from the phone lines they involve; managing accounts.

Every change to users, teams, memberships, lines and API tokens goes through a function here,
which applies the rules (the last active administrator stays), makes the change and appends
the audit entry in one transaction. Audit details never contain a password or a token.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from callvault.apps.accounts.models import ApiToken, Line, Membership, Profile, Team, UserRole
from callvault.apps.audit.models import record
from callvault.apps.calls.models import Call
from callvault.phone import display, normalize


def assign_call(call: Call, *, participants: dict[str, set[str]] | None = None) -> bool:
    """Give a call its team and agent from the configured lines; True if something changed.

    The company's own side decides: the callee's line for inbound calls, the caller's for
    outbound ones, either for internal or unknown direction. A line with a user wins over a
    team-only line (the extension of the agent who took the call). ``participants`` (numbers by
    ``caller``/``callee``) spares the query when the caller has the participants at hand.
    """
    if participants is None:
        participants = {
            "caller": set(call.participants.filter(role="caller").values_list("number", flat=True)),
            "callee": set(call.participants.exclude(role="caller").values_list("number", flat=True)),
        }
    caller = {call.caller_number, *participants.get("caller", ())}
    callee = {call.callee_number, *participants.get("callee", ())}
    line = line_for(call.direction, caller, callee)
    if line is None:
        return False
    changed = call.team_id != line.team_id or (line.user_id is not None and call.agent_id != line.user_id)
    call.team_id = line.team_id
    if line.user_id is not None:
        call.agent_id = line.user_id
    return changed


def line_for(direction: str, caller: set[str], callee: set[str]) -> Line | None:
    """The line that decides a call's team and agent (see :func:`assign_call`), or None.

    Also used before the call is in the database (the screen-pop of a ringing call).
    """
    if direction == "in":
        candidates = [callee]
    elif direction == "out":
        candidates = [caller]
    else:
        candidates = [callee, caller]
    candidates = [numbers - {""} for numbers in candidates]
    wanted = set().union(*candidates)
    if not wanted:
        return None
    found = list(Line.objects.filter(number__in=wanted).select_related("team", "user"))  # one query
    for numbers in candidates:
        lines = [ln for ln in found if ln.number in numbers]
        if lines:
            return next((ln for ln in lines if ln.user_id), lines[0])
    return None


# --- Account management ---------------------------------------------------------------------


class RuleError(Exception):
    """A change the rules refuse; the message is shown to the user as it is (translated)."""


@dataclass(frozen=True)
class Actor:
    """Who makes a change, and from where (for the audit log)."""

    user: Any
    ip: str | None = None


# No 0/O, 1/l/I: one-time passwords are read aloud and typed from a screen.
_OTP_CHARS = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
MAX_ACTIVE_TOKENS = 20
ASSIGN_LIMIT = 20000


def _from_to(old: Any, new: Any) -> dict[str, Any]:
    """The ``from``/``to`` of a change for an audit detail (``from`` is a keyword in Python)."""
    return {"from": old, "to": new}


def generate_password() -> str:
    """A one-time password like ``k7Pq-x9Rm-3vTz-Hn4a`` (16 characters, about 93 bits)."""
    groups = ["".join(secrets.choice(_OTP_CHARS) for _ in range(4)) for _ in range(4)]
    return "-".join(groups)


def role_value(user: Any) -> str:
    """The role a user effectively has (superusers are admins), as stored in ``Profile.role``."""
    if user.is_superuser:
        return str(UserRole.ADMIN)
    profile = Profile.objects.filter(user=user).only("role").first()
    return profile.role if profile else str(UserRole.MEMBER)


def active_admins() -> QuerySet[Any]:
    User = get_user_model()
    return User.objects.filter(is_active=True).filter(Q(is_superuser=True) | Q(profile__role=UserRole.ADMIN))


def _profile(user: Any) -> Profile:
    profile, _created = Profile.objects.get_or_create(user=user)
    return profile


def create_user(
    actor: Actor,
    *,
    username: str,
    display_name: str = "",
    extension: str = "",
    role: str = "member",
    is_active: bool = True,
    team: Team | None = None,
    team_role: str = "agent",
) -> tuple[Any, str]:
    """Create a user with a generated one-time password; returns (user, password)."""
    User = get_user_model()
    password = generate_password()
    with transaction.atomic():
        user = User.objects.create_user(username=username, password=password)
        user.is_active = is_active
        user.is_superuser = role == UserRole.ADMIN
        user.save(update_fields=["is_active", "is_superuser"])
        Profile.objects.update_or_create(
            user=user, defaults={"role": role, "display_name": display_name, "extension": extension}
        )
        record(
            "role_change",
            user=actor.user,
            obj=user,
            ip=actor.ip,
            change="user_created",
            target=username,
            to=role,
            active=is_active,
        )
        if team is not None:
            _add_member(actor, team, user, team_role)
    return user, password


def update_user(
    actor: Actor,
    user: Any,
    *,
    display_name: str,
    extension: str,
    role: str,
    is_active: bool,
) -> list[str]:
    """Apply an edit made by an admin; returns what changed (for the message). Audited."""
    User = get_user_model()
    changed: list[str] = []
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        profile = _profile(user)
        old_role = role_value(user)
        was_admin = old_role == UserRole.ADMIN and user.is_active
        stays_admin = role == UserRole.ADMIN and is_active
        if was_admin and not stays_admin:
            # Lock the admins so that two admins demoting each other cannot both succeed.
            others = list(
                active_admins()
                .exclude(pk=user.pk)
                .select_for_update(of=("self",))
                .values_list("pk", flat=True)
            )
            if not others:
                if user.pk == getattr(actor.user, "pk", None):
                    raise RuleError(
                        _(
                            "あなたは最後の有効な管理者のため、自分の管理者権限を外したり、"
                            "自分を無効にしたりすることはできません。先に別のユーザーを管理者にしてください。"
                        )
                    )
                raise RuleError(
                    _(
                        "%(user)s は最後の有効な管理者のため、管理者権限を外したり"
                        "無効にしたりすることはできません。先に別のユーザーを管理者にしてください。"
                    )
                    % {"user": user.get_username()}
                )
        fields: dict[str, list[str]] = {}
        if profile.display_name != display_name:
            fields["display_name"] = [profile.display_name, display_name]
        if profile.extension != extension:
            fields["extension"] = [profile.extension, extension]
        profile.display_name = display_name
        profile.extension = extension
        profile.role = role
        profile.save()
        user.is_superuser = role == UserRole.ADMIN
        was_active = user.is_active
        user.is_active = is_active
        user.save(update_fields=["is_superuser", "is_active"])
        username = user.get_username()
        if old_role != role:
            changed.append("role")
            record(
                "role_change",
                user=actor.user,
                obj=user,
                ip=actor.ip,
                change="user_role",
                target=username,
                **_from_to(old_role, role),
            )
        if was_active and not is_active:
            changed.append("deactivated")
            revoked = ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(
                revoked_at=timezone.now()
            )
            record(
                "delete",
                user=actor.user,
                obj=user,
                ip=actor.ip,
                change="user_deactivated",
                target=username,
                tokens_revoked=revoked,
            )
        elif is_active and not was_active:
            changed.append("reactivated")
            record(
                "settings",
                user=actor.user,
                obj=user,
                ip=actor.ip,
                change="user_reactivated",
                target=username,
            )
        if fields:
            changed.extend(fields)
            record(
                "settings",
                user=actor.user,
                obj=user,
                ip=actor.ip,
                change="user_updated",
                target=username,
                fields=fields,
            )
    return changed


def reset_password(actor: Actor, user: Any) -> str:
    """Give a user a new one-time password (their sessions end); returns it to show once."""
    password = generate_password()
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        record(
            "settings",
            user=actor.user,
            obj=user,
            ip=actor.ip,
            change="password_reset",
            target=user.get_username(),
        )
    return password


def record_password_change(actor: Actor) -> None:
    """A user changed their own password (the password itself is never recorded)."""
    record(
        "settings",
        user=actor.user,
        obj=actor.user,
        ip=actor.ip,
        change="password_changed",
        target=actor.user.get_username(),
    )


# --- API tokens -----------------------------------------------------------------------------


def issue_token(
    owner: Any, name: str, actor: Actor | None = None, *, via: str = "web"
) -> tuple[ApiToken, str]:
    """Issue a token for ``owner``; the clear text is returned once. Audited without the token."""
    name = name.strip()[:100] or "token"
    with transaction.atomic():
        active = ApiToken.objects.filter(user=owner, revoked_at__isnull=True).count()
        if active >= MAX_ACTIVE_TOKENS:
            raise RuleError(
                _("有効なAPIトークンは1人%(n)s個までです。使っていないトークンを無効にしてください。")
                % {"n": MAX_ACTIVE_TOKENS}
            )
        token, cleartext = ApiToken.issue(owner, name)
        record(
            "token",
            user=actor.user if actor else None,
            obj=token,
            ip=actor.ip if actor else None,
            change="token_created",
            name=token.name,
            owner=owner.get_username(),
            via=via,
        )
    return token, cleartext


def revoke_token(actor: Actor, token: ApiToken) -> bool:
    """Revoke a token (idempotent); True if it was active. Audited."""
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if not updated:
            return False
        token.refresh_from_db(fields=["revoked_at"])
        record(
            "token",
            user=actor.user,
            obj=token,
            ip=actor.ip,
            change="token_revoked",
            name=token.name,
            owner=token.user.get_username(),
        )
    return True


# --- Teams and memberships ------------------------------------------------------------------


def save_team(actor: Actor, team: Team | None, *, name: str, share_calls: bool) -> Team:
    with transaction.atomic():
        if team is None:
            team = Team.objects.create(name=name, share_calls=share_calls)
            record(
                "settings",
                user=actor.user,
                obj=team,
                ip=actor.ip,
                change="team_created",
                name=name,
                share_calls=share_calls,
            )
            return team
        fields: dict[str, list[Any]] = {}
        if team.name != name:
            fields["name"] = [team.name, name]
        if team.share_calls != share_calls:
            fields["share_calls"] = [team.share_calls, share_calls]
        if fields:
            team.name = name
            team.share_calls = share_calls
            team.save(update_fields=["name", "share_calls"])
            record(
                "settings",
                user=actor.user,
                obj=team,
                ip=actor.ip,
                change="team_updated",
                name=name,
                fields=fields,
            )
    return team


def delete_team(actor: Actor, team: Team) -> None:
    """Delete an empty team (no members, no lines); its calls stay, visible to admins only."""
    members = team.memberships.count()
    lines = team.lines.count()
    if members or lines:
        raise RuleError(
            _(
                "チーム「%(team)s」にはメンバー %(members)s 人と回線 %(lines)s 件があります。"
                "先にメンバーと回線を外してから削除してください。"
            )
            % {"team": team.name, "members": members, "lines": lines}
        )
    with transaction.atomic():
        calls = Call.objects.filter(team=team).count()
        record(
            "delete",
            user=actor.user,
            obj=team,
            ip=actor.ip,
            change="team_deleted",
            name=team.name,
            calls=calls,
        )
        Team.objects.filter(pk=team.pk).delete()


def _add_member(actor: Actor, team: Team, user: Any, role: str) -> Membership:
    membership = Membership.objects.create(team=team, user=user, role=role)
    record(
        "role_change",
        user=actor.user,
        obj=user,
        ip=actor.ip,
        change="membership_added",
        target=user.get_username(),
        team=team.name,
        team_id=team.pk,
        **_from_to(None, role),
    )
    return membership


def add_member(actor: Actor, team: Team, user: Any, role: str) -> Membership:
    with transaction.atomic():
        if Membership.objects.filter(team=team, user=user).exists():
            raise RuleError(
                _("%(user)s はすでにチーム「%(team)s」のメンバーです。")
                % {"user": user.get_username(), "team": team.name}
            )
        return _add_member(actor, team, user, role)


def change_member_role(actor: Actor, membership: Membership, role: str) -> bool:
    with transaction.atomic():
        old = membership.role
        if old == role:
            return False
        membership.role = role
        membership.save(update_fields=["role"])
        record(
            "role_change",
            user=actor.user,
            obj=membership.user,
            ip=actor.ip,
            change="membership_role",
            target=membership.user.get_username(),
            team=membership.team.name,
            team_id=membership.team_id,
            **_from_to(old, role),
        )
    return True


def remove_member(actor: Actor, membership: Membership) -> None:
    with transaction.atomic():
        record(
            "role_change",
            user=actor.user,
            obj=membership.user,
            ip=actor.ip,
            change="membership_removed",
            target=membership.user.get_username(),
            team=membership.team.name,
            team_id=membership.team_id,
            **_from_to(membership.role, None),
        )
        Membership.objects.filter(pk=membership.pk).delete()


# --- Lines ----------------------------------------------------------------------------------


def _line_fields(line: Line) -> dict[str, Any]:
    return {
        "number": line.number,
        "label": line.label,
        "team": line.team.name,
        "agent": line.user.get_username() if line.user else None,
    }


def save_line(
    actor: Actor, line: Line | None, *, number: str, label: str, team: Team, user: Any = None
) -> Line:
    """Create or change a line (``number`` already normalised by the form). Audited."""
    with transaction.atomic():
        if line is None:
            line = Line.objects.create(number=number, label=label, team=team, user=user)
            record(
                "settings",
                user=actor.user,
                obj=line,
                ip=actor.ip,
                change="line_created",
                **_line_fields(line),
            )
            return line
        before = _line_fields(line)
        line.number, line.label, line.team, line.user = number, label, team, user
        line.save()
        after = _line_fields(line)
        fields = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        if fields:
            record(
                "settings",
                user=actor.user,
                obj=line,
                ip=actor.ip,
                change="line_updated",
                number=line.number,
                fields=fields,
            )
    return line


def delete_line(actor: Actor, line: Line) -> None:
    with transaction.atomic():
        record("delete", user=actor.user, obj=line, ip=actor.ip, change="line_deleted", **_line_fields(line))
        Line.objects.filter(pk=line.pk).delete()


def unassigned_calls_for_line(line: Line) -> QuerySet[Call]:
    """Calls without a team in which the line's number takes part (newest first)."""
    n = line.number
    involved = Call.objects.filter(
        Q(caller_number=n) | Q(callee_number=n) | Q(participants__number=n)
    ).values("pk")
    return Call.objects.filter(team__isnull=True, pk__in=involved).order_by("-started_at", "-id")


@dataclass
class AssignResult:
    assigned: int
    skipped: int  # the number is on the customer's side of these calls: no team from this line
    remaining: int  # beyond this request's limit: run again


def assign_calls_for_line(
    actor: Actor, line: Line, *, limit: int = ASSIGN_LIMIT, chunk: int = 500
) -> AssignResult:
    """Assign unassigned calls involving ``line`` with :func:`assign_call`. Audited once.

    Works in short transactions of ``chunk`` calls so that the recorder's writes are never
    held up for long; at most ``limit`` calls per request.
    """
    pks = list(unassigned_calls_for_line(line).values_list("pk", flat=True)[: limit + 1])
    remaining = 0
    if len(pks) > limit:
        remaining = unassigned_calls_for_line(line).count() - limit
        pks = pks[:limit]
    assigned = skipped = 0
    for start in range(0, len(pks), chunk):
        with transaction.atomic():
            for call in Call.objects.filter(pk__in=pks[start : start + chunk], team__isnull=True):
                if assign_call(call) and call.team_id is not None:
                    call.save(update_fields=["team", "agent", "updated_at"])
                    assigned += 1
                else:
                    skipped += 1
    if assigned:
        record(
            "settings",
            user=actor.user,
            obj=line,
            ip=actor.ip,
            change="calls_assigned",
            number=line.number,
            team=line.team.name,
            count=assigned,
        )
    return AssignResult(assigned=assigned, skipped=skipped, remaining=remaining)


@dataclass
class PreviewRow:
    call: Call
    caller: str
    callee: str
    team: str  # the team the call would get, "" when this line does not decide it


@dataclass
class AssignPreview:
    total: int
    rows: list[PreviewRow]


def preview_assignment(line: Line, *, limit: int = 20) -> AssignPreview:
    """The unassigned calls involving ``line`` and the team each would get (nothing is saved)."""
    qs = unassigned_calls_for_line(line)
    teams = dict(Team.objects.values_list("pk", "name"))
    rows: list[PreviewRow] = []
    for call in qs[:limit]:
        assign_call(call)  # changes the instance only
        rows.append(
            PreviewRow(
                call=call,
                caller=display(call.caller_number) or _("不明"),
                callee=display(call.callee_number) or _("不明"),
                team=teams.get(call.team_id, "") if call.team_id else "",
            )
        )
    return AssignPreview(total=qs.count(), rows=rows)


def normalize_query(text: str) -> str:
    """A phone number typed in a search box, as it is stored: ``03-1234`` finds ``+81312345678``."""
    number = normalize(text)
    if number.startswith("+"):
        return number
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        return text
    if digits.startswith("0") and len(digits) > 1 and not digits.startswith("00"):
        return "+81" + digits[1:]
    return digits
