"""Every user has a Profile: created with the user, role ``admin`` for superusers.

``createsuperuser`` and ``ensure_admin`` create superusers; their profile gets the admin role
so that the role shown in the UI and the role :func:`access.role_of` decides agree.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import post_save

from callvault.apps.accounts.models import Profile, UserRole

DISPATCH_UID = "callvault.accounts.ensure_profile"


def ensure_profile(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if raw:  # loaddata: fixtures bring their own profiles
        return
    if created:
        role = UserRole.ADMIN if instance.is_superuser else UserRole.MEMBER
        Profile.objects.get_or_create(user=instance, defaults={"role": role})
    elif instance.is_superuser:
        # A user made superuser later (shell, older installations without a profile): keep the
        # role in step, creating the profile if it is missing.
        profile, made = Profile.objects.get_or_create(user=instance, defaults={"role": UserRole.ADMIN})
        if not made and profile.role != UserRole.ADMIN:
            Profile.objects.filter(pk=profile.pk).update(role=UserRole.ADMIN)


def connect() -> None:
    post_save.connect(ensure_profile, sender=settings.AUTH_USER_MODEL, dispatch_uid=DISPATCH_UID)
