"""Login throttling against password guessing, and the client address of a request.

Failures are counted per user name (``user:<name>``) and per client address (``ip:<addr>``)
in the database, so every web process refuses alike. After ``LOGIN_MAX_FAILURES_PER_USER``
failures for one user name, or ``LOGIN_MAX_FAILURES_PER_IP`` from one address, within
``LOGIN_THROTTLE_WINDOW`` seconds, further attempts are refused without checking the
password for ``LOGIN_LOCK_SECONDS``. The same applies to user names that do not exist, so
that the answer never tells which accounts exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from callvault.apps.audit.request import client_ip
from callvault.apps.live.models import LoginThrottle


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def max_failures_per_user() -> int:
    return _setting("LOGIN_MAX_FAILURES_PER_USER", 5)


def max_failures_per_ip() -> int:
    return _setting("LOGIN_MAX_FAILURES_PER_IP", 20)


def window() -> timedelta:
    return timedelta(seconds=_setting("LOGIN_THROTTLE_WINDOW", 15 * 60))


def lock_time() -> timedelta:
    return timedelta(seconds=_setting("LOGIN_LOCK_SECONDS", 15 * 60))


def _keys(username: str, ip: str | None) -> dict[str, int]:
    keys = {f"user:{username.strip().casefold()[:150]}": max_failures_per_user()}
    if ip:
        keys[f"ip:{ip}"] = max_failures_per_ip()
    return keys


@dataclass(frozen=True)
class Lock:
    until: datetime
    scope: str  # "user" or "ip"

    @property
    def minutes_left(self) -> int:
        seconds = (self.until - timezone.now()).total_seconds()
        return max(1, int(seconds // 60) + (1 if seconds % 60 else 0))


def check(username: str, ip: str | None) -> Lock | None:
    """The lock in force for this user name or address, if any."""
    now = timezone.now()
    rows = LoginThrottle.objects.filter(key__in=list(_keys(username, ip)), locked_until__gt=now)
    latest = max(rows, key=lambda r: r.locked_until or now, default=None)
    if latest is None or latest.locked_until is None:
        return None
    return Lock(until=latest.locked_until, scope=latest.key.split(":", 1)[0])


def register_failure(username: str, ip: str | None) -> Lock | None:
    """Count a failed attempt; returns the lock if this failure reached a limit."""
    now = timezone.now()
    start = now - window()
    lock: Lock | None = None
    for key, limit in _keys(username, ip).items():
        with transaction.atomic():
            row = LoginThrottle.objects.select_for_update().filter(key=key).first()
            if row is None:
                try:
                    with transaction.atomic():
                        row = LoginThrottle.objects.create(
                            key=key, failures=0, window_started=now, updated_at=now
                        )
                except IntegrityError:  # another process created it just now
                    row = LoginThrottle.objects.select_for_update().get(key=key)
            if row.window_started < start:
                row.failures = 0
                row.window_started = now
            row.failures += 1
            row.updated_at = now
            if row.failures >= limit:
                row.locked_until = now + lock_time()
                row.failures = 0
                row.window_started = now
                lock = Lock(until=row.locked_until, scope=key.split(":", 1)[0])
            row.save()
    _trim(now)
    return lock


def register_success(username: str) -> None:
    """A correct password clears the user name's counter (never the address's)."""
    key = next(iter(_keys(username, None)))
    now = timezone.now()
    LoginThrottle.objects.filter(key=key).update(failures=0, window_started=now, updated_at=now)


def _trim(now: datetime) -> None:
    """Forget counters nobody touched for a day (keeps the table at the size of current attacks)."""
    horizon = now - max(window(), lock_time()) - timedelta(days=1)
    LoginThrottle.objects.filter(updated_at__lt=horizon).exclude(locked_until__gt=now).delete()


def reset_all() -> int:
    """Lift every lock (for ``callvault manage shell`` after an incident). Returns rows removed."""
    deleted, _ = LoginThrottle.objects.all().delete()
    return deleted


# --- the login itself ------------------------------------------------------------------------


@dataclass
class LoginResult:
    user: Any | None
    lock: Lock | None = None


def attempt_login(request: HttpRequest, username: str, password: str) -> LoginResult:
    """Check the throttle, the password, log in, and audit every outcome (never the password)."""
    from django.contrib.auth import authenticate, get_user_model, login

    from callvault.apps.audit.models import Action, record

    ip = client_ip(request)
    known = get_user_model().objects.filter(username=username).only("pk").first()
    target = {"object_type": "user", "object_id": str(known.pk)} if known else {}
    lock = check(username, ip)
    if lock is not None:
        record(
            str(Action.LOGIN_FAILED), ip=ip, username=username, reason="locked", scope=lock.scope, **target
        )
        return LoginResult(None, lock)
    user = authenticate(request, username=username, password=password)
    if user is None:
        lock = register_failure(username, ip)
        record(str(Action.LOGIN_FAILED), ip=ip, username=username, reason="invalid_credentials", **target)
        return LoginResult(None, lock)
    register_success(username)
    login(request, user)
    record(str(Action.LOGIN), user=user, obj=user, ip=ip)
    return LoginResult(user)


def logout_user(request: HttpRequest) -> None:
    from django.contrib.auth import logout

    from callvault.apps.audit.models import Action, record

    user = request.user
    if user.is_authenticated:
        record(str(Action.LOGOUT), user=user, obj=user, ip=client_ip(request))
    logout(request)
