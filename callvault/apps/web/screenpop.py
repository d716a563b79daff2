"""Screen-pop: who is calling, shown to everyone who may see the call, the moment it rings.

The WebSocket consumer (``consumers.EventsConsumer``) adds a caller card
(:func:`callvault.apps.customers.lookup.caller_card`) to ``call.ringing`` and ``call.answered``
events. A card depends on what its reader may see (customers, their last call, notes), so it is
computed per *access group*, not per socket: every connection of one web process whose user has
the same role and teams (and no calls of their own outside them) shares one computation per event.
With 50 people of one team connected, a ringing call costs one lookup, not 50.

The same cache decides, once per event and group, whether the call is visible
(:func:`callvault.apps.accounts.access.visible_calls`), the check each socket used to make itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from django.urls import reverse

from callvault.live import CALL_ANSWERED, CALL_RINGING

log = logging.getLogger("callvault.live")

CARD_KINDS = frozenset({CALL_RINGING, CALL_ANSWERED})
CACHE_SIZE = 4096


def group_of(user: Any, team_ids: frozenset[int], everything: bool) -> Hashable:
    """The access group of a user: users of one group see exactly the same calls and customers.

    Admins are one group; members are grouped by the teams whose calls they see. A member who
    may also have calls of their own outside those teams (an agent of a team that does not share
    its calls, or a line of theirs in another team) is a group alone.
    """
    from callvault.apps.accounts import access
    from callvault.apps.accounts.models import Line, UserRole

    if everything:
        return ("admin",)
    if user is None or access.role_of(user) != UserRole.MEMBER:
        return ("nobody",)
    alone = (
        user.memberships.exclude(team_id__in=team_ids).exists()
        or Line.objects.filter(user=user).exclude(team_id__in=team_ids).exists()
    )
    return ("member", tuple(sorted(team_ids)), user.pk if alone else None)


def unknown_card(number: str, display: str) -> dict[str, Any]:
    """The card of a number nobody knows (also when the customer lookup is not available)."""
    return {
        "number": number,
        "number_display": display,
        "kind": "normal" if number else "unknown",
        "customer": None,
        "last_call": None,
        "last_note": None,
        "warnings": [],
        "tags": [],
    }


def card_for(call: dict[str, Any], user: Any) -> dict[str, Any]:
    """The caller card of an event's call as ``user`` may see it, with a link to create a customer."""
    number = str(call.get("caller_e164") or "")
    try:
        from callvault.apps.customers.lookup import caller_card
    except ImportError:
        card = unknown_card(number, str(call.get("caller_number") or ""))
    else:
        card = dict(caller_card(number, user))  # a copy: links and dates are added below
    last = card.get("last_call")
    if isinstance(last, dict) and str(last.get("id") or "") == str(call.get("id") or ""):
        # the ringing call itself reached the database before its card was made: the one before
        card["last_call"] = previous_call(card, str(call["id"]), user)
    if card.get("customer") is None:
        card["create_url"] = create_customer_url(number, str(call.get("id") or ""))
    for part, field in (("last_call", "started_at"), ("last_note", "created_at")):
        item = card.get(part)
        if isinstance(item, dict) and item.get(field):
            card[part] = {**item, f"{field}_display": _when(item[field])}
    return card


def _when(value: Any) -> str:
    """``2026/11/27 14:05`` in the display time zone, from a datetime or an ISO 8601 string."""
    from datetime import datetime

    from callvault.apps.web import format as fmt

    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return fmt.local_datetime(value) if isinstance(value, datetime) else str(value)


def previous_call(card: dict[str, Any], call_id: str, user: Any) -> dict[str, Any] | None:
    """The newest call with the caller's numbers that ``user`` may see, other than ``call_id``."""
    from callvault.apps.accounts.access import visible_calls
    from callvault.apps.web import format as fmt

    numbers = {str(card.get("number") or "")} - {""}
    customer = card.get("customer")
    if isinstance(customer, dict) and customer.get("id") is not None:
        from callvault.apps.customers.models import CustomerPhone

        numbers |= set(
            CustomerPhone.objects.filter(customer_id=customer["id"]).values_list("number", flat=True)
        )
    if not numbers:
        return None
    calls = visible_calls(user).exclude(pk=call_id).select_related("agent__profile")
    best = None
    for field in ("caller_number", "callee_number"):
        hit = calls.filter(**{f"{field}__in": sorted(numbers)}).order_by("-started_at", "-id").first()
        if hit is not None and (best is None or hit.started_at > best.started_at):
            best = hit
    if best is None:
        return None
    return {
        "id": str(best.pk),
        "started_at": best.started_at.isoformat(),
        "agent": fmt.user_label(best.agent),
        "url": reverse("web:call", args=[best.pk]),
    }


def create_customer_url(number: str, call_id: str) -> str:
    """Where "顧客として登録" leads: the customers app's form with the number, else the call page."""
    from urllib.parse import urlencode

    from django.urls import NoReverseMatch

    for name in ("customers:create", "web:customer_create"):
        try:
            return f"{reverse(name)}?{urlencode({'number': number, 'call': call_id})}"
        except NoReverseMatch:
            continue
    return reverse("web:call", args=[call_id]) if call_id else ""


class GroupCache:
    """Results per (event, access group), computed once and awaited by every socket of the group."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self.results: OrderedDict[Hashable, asyncio.Future[Any]] = OrderedDict()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.computed = 0  # how many times a result was computed (for tests and the benchmark)

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # futures belong to one loop (tests start several)
            self.results.clear()
            self.loop = loop
        fut = self.results.get(key)
        if fut is None:
            fut = loop.create_future()
            self.results[key] = fut
            if len(self.results) > self.size:
                self.results.popitem(last=False)
            self.computed += 1
            try:
                fut.set_result(await compute())
            except Exception as exc:
                fut.set_exception(exc)
                self.results.pop(key, None)
                raise
        return await asyncio.shield(fut)

    def clear(self) -> None:
        self.results.clear()


cache = GroupCache()

# Cards and visibility are worked out on threads of their own: the thread Django runs sync views
# on (and every other ``database_sync_to_async``) may be busy with a page when a call rings.
THREADS = 2
_executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="callvault-screenpop")


def _off_thread(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    return database_sync_to_async(fn, thread_sensitive=False, executor=_executor)


def close_connections() -> None:
    """Close the database connections of the screen-pop threads (tests, shutdown)."""
    import threading

    from django.db import connections

    workers = THREADS
    barrier = threading.Barrier(workers)

    def close() -> None:
        barrier.wait(timeout=10)  # one call per thread
        connections.close_all()

    for future in [_executor.submit(close) for _ in range(workers)]:
        future.result(timeout=20)


async def visible(event: str, group: Hashable, user: Any, call_id: str, early: bool) -> bool:
    """May this group see the call? A ringing call not yet in the database was already checked
    against the access rules by team and agent (``Audience.may_hear``); the rest ask the database."""
    if early:
        return True
    from callvault.apps.web import live

    async def check() -> bool:
        return bool(await _off_thread(live.may_see)(user, call_id))

    if not event:
        return await check()
    return bool(await cache.get(("visible", event, group), check))


async def card(event: str, group: Hashable, user: Any, kind: str, call: dict[str, Any]) -> Any:
    """The caller card for this event and group (None for events that carry none)."""
    if kind not in CARD_KINDS or call.get("direction") in ("out", "internal"):
        return None
    call_id = str(call.get("id") or "")

    async def compute() -> dict[str, Any]:
        return dict(await _off_thread(card_for)(call, user))

    try:
        return await cache.get(("card", call_id, group), compute)
    except Exception:
        log.exception("x caller card for call %s failed; sent without one", call_id)
        return unknown_card(str(call.get("caller_e164") or ""), str(call.get("caller_number") or ""))


# --- access changes reach open connections at once ------------------------------------------------

ACCESS_CHANGED = "access.changed"
ACCESS_MODELS = ("accounts.Team", "accounts.Membership", "accounts.Line", "accounts.Profile")


def _access_changed(sender: Any, instance: Any = None, raw: bool = False, **kwargs: Any) -> None:
    """A team, membership, line, role or user changed: every open connection re-checks its access.

    Without this an access group (and the cards cached for it) would stay as it was until the
    connection's next periodic check (``LIVE_REVALIDATE_SECONDS``).
    """
    if raw:
        return
    fields = kwargs.get("update_fields")
    if fields is not None and set(fields) <= {"last_login"}:
        return  # a login, not a change of access
    from django.db import transaction

    from callvault.apps.web import live

    transaction.on_commit(live.deliver_access_changed)


def warm_up() -> None:
    """Import the customer lookup now, not while the first ringing call waits for its card."""
    import contextlib

    with contextlib.suppress(ImportError):
        import callvault.apps.customers.lookup  # noqa: F401


def connect_signals() -> None:
    from django.apps import apps
    from django.conf import settings
    from django.db.models.signals import post_delete, post_save

    for label in (*ACCESS_MODELS, settings.AUTH_USER_MODEL):
        model = apps.get_model(label)
        uid = f"callvault.screenpop.access.{label}"
        post_save.connect(_access_changed, sender=model, dispatch_uid=uid + ".save")
        post_delete.connect(_access_changed, sender=model, dispatch_uid=uid + ".delete")
