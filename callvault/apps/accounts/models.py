"""Who may see which calls: teams, memberships, roles, phone lines, API tokens.

Roles (one per user, ``Profile.role``):
- ``admin``: organisation administrator; sees and manages everything.
- ``auditor``: reads the audit log; sees no calls.
- ``member``: sees calls through team memberships:
  ``Membership.role == "supervisor"``: every call of that team, may export;
  ``Membership.role == "agent"``: calls assigned to them, and the team's calls
  when the team shares calls with its members (the default).
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Team(models.Model):
    name = models.CharField(_("チーム名"), max_length=100, unique=True)
    share_calls = models.BooleanField(
        _("チーム内で通話を共有"),
        default=True,
        help_text=_("オフにすると、担当者は自分が担当した通話だけを閲覧できます。"),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("チーム")
        verbose_name_plural = _("チーム")

    def __str__(self) -> str:
        return self.name


class UserRole(models.TextChoices):
    ADMIN = "admin", _("管理者")
    MEMBER = "member", _("メンバー")
    AUDITOR = "auditor", _("監査担当")


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    role = models.CharField(_("権限"), max_length=16, choices=UserRole.choices, default=UserRole.MEMBER)
    display_name = models.CharField(_("表示名"), max_length=100, blank=True, default="")
    extension = models.CharField(_("内線番号"), max_length=32, blank=True, default="")

    def __str__(self) -> str:
        return self.display_name or self.user.get_username()


class TeamRole(models.TextChoices):
    SUPERVISOR = "supervisor", _("スーパーバイザー")
    AGENT = "agent", _("担当者")


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("役割"), max_length=16, choices=TeamRole.choices, default=TeamRole.AGENT)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="membership_user_team_uniq")]
        verbose_name = _("所属")
        verbose_name_plural = _("所属")


class Line(models.Model):
    """A phone number or extension; calls involving it are assigned to its team (and user)."""

    number = models.CharField(
        _("電話番号・内線"),
        max_length=32,
        unique=True,
        help_text=_("E.164 (+81312345678) または内線番号 (201)"),
    )
    label = models.CharField(_("名前"), max_length=100, blank=True, default="")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="lines")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="lines"
    )

    class Meta:
        ordering = ["number"]
        verbose_name = _("回線")
        verbose_name_plural = _("回線")

    def __str__(self) -> str:
        return f"{self.number} {self.label}".strip()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token for the REST API; only its SHA-256 is stored."""

    PREFIX = "cv_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("名前"), max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12, help_text="the first characters, to recognise a token")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    @classmethod
    def issue(cls, user: object, name: str) -> tuple[ApiToken, str]:
        """Create a token; the clear text is returned once and never stored."""
        token = cls.PREFIX + secrets.token_urlsafe(32)
        obj = cls.objects.create(user=user, name=name, token_hash=hash_token(token), prefix=token[:10])
        return obj, token
