"""Who is calling: the caller card shown on screen-pop, the call page and the API.

The interface other parts build on (screen-pop, gateway)::

    caller_card(number, user=None, *, team=None) -> dict   # JSON-serialisable
    number_flags(number, *, team_ids=None) -> list[dict]   # nuisance/caution entries that match

Both take a raw caller-id (``03-1234-5678``, ``+81312345678``, ``sip:anonymous@anonymous.invalid``,
``公衆電話`` ...). Every lookup is a handful of indexed queries (``benchmarks/customer_lookup.py``).

Access: with a ``user``, only customers and calls that user may see are used
(:mod:`callvault.apps.accounts.access`). Without one (system use: screen-pop fan-out, gateway),
no call details are given; pass ``team`` (the line's team) to use only that team's customers and
lists, as the people the card goes to are that team's members.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.urls import NoReverseMatch, reverse

from callvault import phone
from callvault.apps.accounts import access
from callvault.apps.customers.models import Customer, CustomerNote, CustomerPhone, ListKind, NumberListEntry

NOTE_PREVIEW = 200
MAX_CARD_NUMBERS = 5  # numbers of one customer searched for the last call
LIST_LABELS = {ListKind.NUISANCE: "迷惑電話", ListKind.CAUTION: "要注意"}


def karte_url(customer_id: int) -> str:
    """The カルテ page of a customer (a fixed path when the web UI is not mounted, e.g. API-only)."""
    try:
        return reverse("customers:detail", args=[customer_id])
    except NoReverseMatch:
        return f"/customers/{customer_id}/"


def call_url(call_id: Any) -> str:
    try:
        return reverse("web:call", args=[call_id])
    except NoReverseMatch:
        return f"/calls/{call_id}/"


def _team_id(team: Any) -> int | None:
    if team is None:
        return None
    return int(getattr(team, "pk", team))


def candidate_patterns(number: str) -> list[str]:
    """Every pattern that may match ``number``: itself and all its prefixes (longest first)."""
    return [number[:i] for i in range(len(number), 0, -1)]


def number_flags(number: str, *, team_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Nuisance/caution entries matching the number exactly or by prefix, nuisance first.

    ``team_ids=None``: entries of every team and organisation-wide ones; otherwise organisation-wide
    entries and those of the given teams. Each item: ``{"id", "kind", "label", "reason", "pattern",
    "prefix", "team_id"}``.
    """
    caller = phone.classify(number)
    if caller.kind == phone.KIND_UNKNOWN:
        return []
    key = caller.number
    patterns = candidate_patterns(key) if caller.kind == phone.NORMAL else [key]
    qs = NumberListEntry.objects.filter(
        Q(pattern=key, is_prefix=False) | Q(pattern__in=patterns, is_prefix=True)
    )
    if team_ids is not None:
        qs = qs.filter(Q(team__isnull=True) | Q(team_id__in=team_ids))
    entries = sorted(
        qs.values("id", "kind", "reason", "pattern", "is_prefix", "team_id"),
        key=lambda e: (e["kind"] != ListKind.NUISANCE, -len(e["pattern"]), e["id"]),
    )
    return [
        {
            "id": e["id"],
            "kind": e["kind"],
            "label": LIST_LABELS.get(e["kind"], e["kind"]),
            "reason": e["reason"],
            "pattern": e["pattern"],
            "prefix": e["is_prefix"],
            "team_id": e["team_id"],
        }
        for e in entries
    ]


def is_blocked(number: str, *, team_ids: list[int] | None = None) -> bool:
    """True when the number is on a nuisance (迷惑電話) list: the gateway refuses such calls."""
    return any(f["kind"] == ListKind.NUISANCE for f in number_flags(number, team_ids=team_ids))


def find_customer(number: str, user: Any = None, *, team: Any = None) -> Customer | None:
    """The customer with this phone number that ``user`` (or ``team``) may see; newest update wins."""
    caller = phone.classify(number)
    if caller.kind != phone.NORMAL:
        return None
    teams = access.customer_team_ids(user) if user is not None else None
    row = _match(caller.number, teams, _team_id(team))
    return Customer.objects.filter(pk=row[0]).first() if row is not None else None


def _match(number: str, teams: list[int] | None, team_id: int | None) -> tuple[int, str, str] | None:
    """(id, name, company) of the customer with this number within the teams; newest update wins."""
    qs = CustomerPhone.objects.filter(number=number)
    if teams is not None:
        qs = qs.filter(customer__owner_team_id__in=teams)
    if team_id is not None:
        qs = qs.filter(customer__owner_team_id=team_id)
    row = (
        qs.order_by("-customer__updated_at", "-customer_id")
        .values_list("customer_id", "customer__name", "customer__company")
        .first()
    )
    return (int(row[0]), str(row[1]), str(row[2])) if row is not None else None


def _name(username: str | None, display_name: str | None) -> str:
    return display_name or username or ""


def caller_card(number: str, user: Any = None, *, team: Any = None) -> dict[str, Any]:
    """Everything to show about a caller in one JSON-serialisable dict (see the module docstring).

    For a team member: 1 query to read what the user reaches, 5 for the customer, list entries,
    tags, last note and numbers, and 2 per number of the customer for the last call; without a
    user, 4 and no call details.
    """
    caller = phone.classify(number)
    reach = access.reach_of(user) if user is not None else None
    team_id = _team_id(team)
    if reach is not None:
        teams = reach.customer_team_ids()
    else:
        teams = [team_id] if team_id is not None else None
    card: dict[str, Any] = {
        "number": caller.number if caller.kind == phone.NORMAL else (number or ""),
        "number_display": caller.display,
        "kind": caller.kind,
        "customer": None,
        "last_call": None,
        "last_note": None,
        "warnings": [
            {"kind": f["kind"], "label": f["label"], "reason": f["reason"]}
            for f in number_flags(number, team_ids=teams)
        ],
        "tags": [],
    }
    if caller.kind != phone.NORMAL:
        return card
    match = _match(caller.number, teams, team_id if reach is not None else None)
    numbers = [caller.number]
    if match is not None:
        customer_id, name, company = match
        card["customer"] = {
            "id": customer_id,
            "name": name,
            "company": company,
            "url": karte_url(customer_id),
        }
        tags = list(
            Customer.tags.through.objects.filter(customer_id=customer_id)
            .order_by("customertag__name")
            .values_list("customertag__name", "customertag__warning")
        )
        card["tags"] = [name for name, _warning in tags]
        card["warnings"].extend(
            {"kind": "caution", "label": name, "reason": ""} for name, warning in tags if warning
        )
        note = (
            CustomerNote.objects.filter(customer_id=customer_id)
            .order_by("-created_at", "-id")
            .values_list("text", "author__username", "author__profile__display_name", "created_at")
            .first()
        )
        if note is not None:
            card["last_note"] = {
                "text": note[0][:NOTE_PREVIEW],
                "author": _name(note[1], note[2]),
                "created_at": note[3].isoformat(),
            }
        numbers = list(CustomerPhone.objects.filter(customer_id=customer_id).values_list("number", flat=True))
    if reach is not None:
        card["last_call"] = _last_call(numbers, reach)
    return card


def _last_call(numbers: list[str], reach: access.Reach) -> dict[str, Any] | None:
    """The newest call with one of the numbers (either side) that the user may see.

    One query per number and side, each walking the (number, -started_at) index from the newest
    call and stopping at the first visible one, so the cost does not grow with the calls table
    (an OR over both sides makes planners pick the started_at index and scan, on SQLite without
    statistics in particular).
    """
    from django.db import connection

    parts = [
        reach.calls()
        .filter(**{field: number})
        .order_by("-started_at")
        .values_list("started_at", "id", "agent__username", "agent__profile__display_name")[:1]
        for number in numbers[:MAX_CARD_NUMBERS]
        for field in ("caller_number", "callee_number")
    ]
    if connection.features.supports_slicing_ordering_in_compound:
        # PostgreSQL: all of them in one round trip (UNION ALL of the per-index queries)
        rows = list(parts[0].union(*parts[1:], all=True)) if len(parts) > 1 else list(parts[0])
    else:  # SQLite runs in-process: separate queries cost no round trips
        rows = [row for part in parts for row in part]
    best = max(rows, key=lambda r: r[0], default=None)
    if best is None:
        return None
    return {
        "id": str(best[1]),
        "started_at": best[0].isoformat(),
        "agent": _name(best[2], best[3]),
        "url": call_url(best[1]),
    }
