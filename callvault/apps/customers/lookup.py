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
from django.urls import reverse

from callvault import phone
from callvault.apps.customers.models import Customer, CustomerNote, CustomerPhone, ListKind, NumberListEntry

NOTE_PREVIEW = 200
LIST_LABELS = {ListKind.NUISANCE: "迷惑電話", ListKind.CAUTION: "要注意"}


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


def _visible_team_ids(user: Any) -> list[int] | None:
    """None = every team (admins); else the user's teams."""
    from callvault.apps.accounts.access import customer_team_ids

    return customer_team_ids(user)


def find_customer(number: str, user: Any = None, *, team: Any = None) -> Customer | None:
    """The customer with this phone number that ``user`` (or ``team``) may see; newest update wins."""
    caller = phone.classify(number)
    if caller.kind != phone.NORMAL:
        return None
    qs = CustomerPhone.objects.filter(number=caller.number).select_related("customer")
    if user is not None:
        teams = _visible_team_ids(user)
        if teams is not None:
            qs = qs.filter(customer__owner_team_id__in=teams)
    team_id = _team_id(team)
    if team_id is not None:
        qs = qs.filter(customer__owner_team_id=team_id)
    hit = qs.order_by("-customer__updated_at", "-customer_id").first()
    return hit.customer if hit is not None else None


def _last_call(numbers: list[str], user: Any) -> dict[str, Any] | None:
    from callvault.apps.accounts.access import visible_calls
    from callvault.apps.web.format import user_label

    if user is None or not numbers:
        return None
    calls = visible_calls(user)
    best = None
    for field in ("caller_number", "callee_number"):
        hit = (
            calls.filter(**{f"{field}__in": numbers})
            .select_related("agent__profile")
            .order_by("-started_at", "-id")
            .first()
        )
        if hit is not None and (best is None or hit.started_at > best.started_at):
            best = hit
    if best is None:
        return None
    return {
        "id": str(best.id),
        "started_at": best.started_at.isoformat(),
        "agent": user_label(best.agent),
        "url": reverse("web:call", args=[best.id]),
    }


def caller_card(number: str, user: Any = None, *, team: Any = None) -> dict[str, Any]:
    """Everything to show about a caller in one JSON-serialisable dict (see the module docstring)."""
    from callvault.apps.web.format import user_label

    caller = phone.classify(number)
    customer = find_customer(number, user, team=team) if caller.kind == phone.NORMAL else None
    if user is not None:
        flag_teams = _visible_team_ids(user)
    else:
        team_id = _team_id(team)
        flag_teams = [team_id] if team_id is not None else None
    warnings = [
        {"kind": f["kind"], "label": f["label"], "reason": f["reason"]}
        for f in number_flags(number, team_ids=flag_teams)
    ]
    card: dict[str, Any] = {
        "number": caller.number if caller.kind == phone.NORMAL else (number or ""),
        "number_display": caller.display,
        "kind": caller.kind,
        "customer": None,
        "last_call": None,
        "last_note": None,
        "warnings": warnings,
        "tags": [],
    }
    numbers = [caller.number] if caller.kind == phone.NORMAL else []
    if customer is not None:
        card["customer"] = {
            "id": customer.pk,
            "name": customer.name,
            "company": customer.company,
            "url": reverse("customers:detail", args=[customer.pk]),
        }
        tags = list(customer.tags.order_by("name").values_list("name", "warning"))
        card["tags"] = [name for name, _warning in tags]
        card["warnings"].extend(
            {"kind": "caution", "label": name, "reason": ""} for name, warning in tags if warning
        )
        note = (
            CustomerNote.objects.filter(customer=customer)
            .select_related("author__profile")
            .order_by("-created_at", "-id")
            .first()
        )
        if note is not None:
            card["last_note"] = {
                "text": note.text[:NOTE_PREVIEW],
                "author": user_label(note.author),
                "created_at": note.created_at.isoformat(),
            }
        numbers = sorted(set(numbers) | set(customer.phones.values_list("number", flat=True)))
    card["last_call"] = _last_call(numbers, user)
    return card
