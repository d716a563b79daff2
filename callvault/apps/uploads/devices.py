"""Managing recording devices: create (the token is shown once), revoke. Every change is audited."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from callvault.apps.accounts.models import Line, Membership, Team
from callvault.apps.accounts.services import Actor, RuleError
from callvault.apps.audit.models import record
from callvault.apps.uploads.models import Device


def create_device(
    actor: Actor | None,
    *,
    name: str,
    team: Team,
    user: Any = None,
    line: Line | None = None,
    via: str = "web",
) -> tuple[Device, str]:
    """Create a device and its token; returns (device, clear-text token, to show once)."""
    name = name.strip()[:100]
    if not name:
        raise RuleError("端末名を入力してください。")
    if user is not None and not Membership.objects.filter(user=user, team=team).exists():
        raise RuleError(f"{user.get_username()} はチーム「{team.name}」のメンバーではありません。")
    if line is not None and line.team_id != team.pk:
        raise RuleError(f"回線 {line.number} はチーム「{team.name}」の回線ではありません。")
    with transaction.atomic():
        device, token = Device.create_with_token(name=name, team=team, user=user, line=line)
        record(
            "token",
            user=actor.user if actor else None,
            obj=device,
            ip=actor.ip if actor else None,
            change="device_created",
            name=device.name,
            team=team.name,
            agent=user.get_username() if user is not None else None,
            line_id=line.pk if line is not None else None,
            via=via,
        )
    return device, token


def revoke_device(actor: Actor | None, device: Device, *, via: str = "web") -> bool:
    """Revoke a device's token (idempotent); True if it was active."""
    with transaction.atomic():
        updated = Device.objects.filter(pk=device.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if not updated:
            return False
        device.refresh_from_db(fields=["revoked_at"])
        record(
            "token",
            user=actor.user if actor else None,
            obj=device,
            ip=actor.ip if actor else None,
            change="device_revoked",
            name=device.name,
            via=via,
        )
    return True
