"""How the UI writes times, durations and phone numbers (also as template filters: ``callvault_ui``)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from callvault import phone


def duration(seconds: float | None, language: str | None = "") -> str:
    """``3分05秒``, ``45秒``, ``1時間02分03秒`` (English: ``3m 05s``); empty for no duration.

    ``language``: the active one unless given (callers formatting many values look it up once).
    """
    if seconds is None:
        return ""
    total = max(0, round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    hours, minutes, secs = _duration_formats(translation.get_language() if language == "" else language)
    if h:
        return hours % {"h": h, "m": m, "s": s}
    if m:
        return minutes % {"m": m, "s": s}
    return secs % {"s": s}


@functools.lru_cache(maxsize=16)
def _duration_formats(language: str | None) -> tuple[str, str, str]:
    with translation.override(language):
        return (_("%(h)d時間%(m)02d分%(s)02d秒"), _("%(m)d分%(s)02d秒"), _("%(s)d秒"))


def local_datetime(value: datetime | None, seconds: bool = False) -> str:
    """``2026/11/27 14:05`` in the display time zone."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    return local.strftime("%Y/%m/%d %H:%M:%S" if seconds else "%Y/%m/%d %H:%M")


def number(value: str | None, language: str | None = "") -> str:
    """A stored number for people (``03-1234-5678``, ``非通知``); empty stays empty.

    ``language``: the active one unless given (callers formatting many values look it up once).
    """
    if not value:
        return ""
    return _number(value, translation.get_language() if language == "" else language)


@functools.lru_cache(maxsize=8192)
def _number(value: str, language: str | None) -> str:
    shown = phone.display(value)
    if shown in ("非通知", "公衆電話"):
        with translation.override(language):
            return _("非通知") if shown == "非通知" else _("公衆電話")
    return shown


def user_label(user: Any) -> str:
    """A user's display name (profile) or user name."""
    if user is None:
        return ""
    try:
        name = user.profile.display_name
    except ObjectDoesNotExist:
        name = ""
    return str(name or user.get_username())
