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

from django.urls import NoReverseMatch, reverse

from callvault import phone
from callvault.apps.accounts import access
from callvault.apps.accounts.models import UserRole
from callvault.apps.customers.models import Customer, ListKind

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
    from django.db import connection

    caller = phone.classify(number)
    if caller.kind == phone.KIND_UNKNOWN:
        return []
    key = caller.number
    patterns = candidate_patterns(key) if caller.kind == phone.NORMAL else [key]
    with connection.cursor() as cur:
        rows = _flag_rows(cur, key, patterns, team_ids)
    return [
        {
            "id": e_id,
            "kind": kind,
            "label": LIST_LABELS.get(kind, kind),
            "reason": reason,
            "pattern": pattern,
            "prefix": bool(prefix),
            "team_id": team,
        }
        for e_id, kind, reason, pattern, prefix, team in _by_priority(rows)
    ]


def _flag_rows(cur: Any, key: str, patterns: list[str], teams: list[int] | None) -> list[Any]:
    """(id, kind, reason, pattern, is_prefix, team id) of the list entries matching ``key``."""
    prefixes, prefix_params = _in("pattern", patterns)
    # Only placeholders and fixed column names are put into the SQL text (here and below).
    sql = (
        "SELECT id, kind, reason, pattern, is_prefix, team_id FROM customers_numberlistentry "  # noqa: S608
        f"WHERE ((pattern = %s AND NOT is_prefix) OR ({prefixes} AND is_prefix))"
    )
    params: list[Any] = [key, *prefix_params]
    if teams is not None:
        team_in, team_params = _in("team_id", teams)
        sql += f" AND (team_id IS NULL OR {team_in})"
        params += team_params
    cur.execute(sql, params)
    return list(cur.fetchall())


def _by_priority(rows: list[Any]) -> list[Any]:
    """Nuisance before caution, longer (more specific) patterns first, then oldest entry."""
    return sorted(rows or [], key=lambda e: (e[1] != ListKind.NUISANCE, -len(e[3]), e[0]))


def _in(column: str, values: list[Any] | tuple[Any, ...]) -> tuple[str, list[Any]]:
    """``column IN (%s, ...)`` and its parameters; never true for no values (``IN ()`` is not SQL)."""
    if not values:
        return "1 = 0", []
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def is_blocked(number: str, *, team_ids: list[int] | None = None) -> bool:
    """True when the number is on a nuisance (迷惑電話) list: the gateway refuses such calls."""
    return any(f["kind"] == ListKind.NUISANCE for f in number_flags(number, team_ids=team_ids))


def find_customer(number: str, user: Any = None, *, team: Any = None) -> Customer | None:
    """The customer with this phone number that ``user`` (or ``team``) may see; newest update wins."""
    caller = phone.classify(number)
    if caller.kind != phone.NORMAL:
        return None
    from django.db import connection

    teams = access.customer_team_ids(user) if user is not None else None
    with connection.cursor() as cur:
        row = _match(cur, caller.number, teams, _team_id(team))
    return Customer.objects.filter(pk=row[0]).first() if row is not None else None


def _match(cur: Any, number: str, teams: list[int] | None, team_id: int | None) -> Any:
    """(id, name, company) of the customer with this number within the teams; newest update wins."""
    sql = (
        "SELECT c.id, c.name, c.company FROM customers_customerphone p "
        "JOIN customers_customer c ON c.id = p.customer_id WHERE p.number = %s"
    )
    params: list[Any] = [number]
    if teams is not None:
        team_in, team_params = _in("c.owner_team_id", teams)
        sql += f" AND {team_in}"
        params += team_params
    if team_id is not None:
        sql += " AND c.owner_team_id = %s"
        params.append(team_id)
    cur.execute(sql + " ORDER BY c.updated_at DESC, c.id DESC LIMIT 1", params)
    return cur.fetchone()


def _name(username: str | None, display_name: str | None) -> str:
    return display_name or username or ""


def caller_card(number: str, user: Any = None, *, team: Any = None) -> dict[str, Any]:
    """Everything to show about a caller in one JSON-serialisable dict (see the module docstring).

    For a team member: 1 query to read what the user reaches, then on PostgreSQL one prepared
    statement for all the rest (:func:`_card_in_one_statement`); elsewhere (SQLite, in-process)
    plain SQL per part (:func:`_card_by_parts`): list entries, customer, tags, last note, numbers,
    and 2 per number of the customer for the last call. Without a user no call details are given.
    The ORM would cost more than the queries here: ~1 ms of compilation each, where the query
    itself takes 0.05 ms.
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
        "warnings": [],
        "tags": [],
    }
    if caller.kind != phone.NORMAL:
        card["warnings"] = [
            {"kind": f["kind"], "label": f["label"], "reason": f["reason"]}
            for f in number_flags(number, team_ids=teams)
        ]
        return card
    match_team = team_id if reach is not None else None
    if _one_statement(reach):
        return _card_in_one_statement(card, caller.number, teams, match_team, reach)
    return _card_by_parts(card, caller.number, teams, match_team, reach)


def _calls_scope(reach: Any) -> tuple[str, list[Any]] | None:
    """:meth:`access.Reach.calls` as SQL over ``calls_call``; None when the user sees no calls."""
    if reach is None or reach.role not in (UserRole.ADMIN, UserRole.MEMBER):
        return None
    if reach.role == UserRole.ADMIN:
        return "", []
    teams, params = _in("team_id", reach.call_team_ids)
    return f" AND ({teams} OR agent_id = %s)", [*params, reach.user_id]


def _card_by_parts(
    card: dict[str, Any], number: str, teams: list[int] | None, match_team: int | None, reach: Any
) -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cur:
        flags = _flag_rows(cur, number, candidate_patterns(number), teams)
        match = _match(cur, number, teams, match_team)
        tags: list[Any] = []
        note = None
        numbers = [number]
        if match is not None:
            cur.execute(
                "SELECT t.name, t.warning FROM customers_customer_tags ct "
                "JOIN customers_customertag t ON t.id = ct.customertag_id WHERE ct.customer_id = %s "
                "ORDER BY t.name",
                [match[0]],
            )
            tags = cur.fetchall()
            cur.execute(
                "SELECT n.text, u.username, pr.display_name, n.created_at FROM customers_customernote n "
                "LEFT JOIN auth_user u ON u.id = n.author_id "
                "LEFT JOIN accounts_profile pr ON pr.user_id = u.id "
                "WHERE n.customer_id = %s ORDER BY n.created_at DESC, n.id DESC LIMIT 1",
                [match[0]],
            )
            note = cur.fetchone()
            cur.execute(
                'SELECT number FROM customers_customerphone WHERE customer_id = %s ORDER BY "order", id',
                [match[0]],
            )
            numbers = [row[0] for row in cur.fetchall()]
        last = None
        scope = _calls_scope(reach)
        if scope is not None:
            # one query per number and side, each walking that (number, started_at) index from the
            # newest call to the first visible one: the cost does not grow with the calls table
            # (an OR over both sides makes planners scan by started_at, SQLite in particular)
            rows = []
            for num in numbers[:MAX_CARD_NUMBERS]:
                for side in ("caller_number", "callee_number"):
                    cur.execute(
                        "SELECT c.started_at, c.id, u.username, pr.display_name FROM calls_call c "  # noqa: S608
                        "LEFT JOIN auth_user u ON u.id = c.agent_id "
                        "LEFT JOIN accounts_profile pr ON pr.user_id = u.id "
                        f"WHERE c.{side} = %s{scope[0]} ORDER BY c.started_at DESC LIMIT 1",
                        [num, *scope[1]],
                    )
                    row = cur.fetchone()
                    if row is not None:
                        rows.append((_aware(row[0]), *row[1:]))
            last = max(rows, key=lambda r: r[0], default=None)
    return _fill(card, flags, match, tags, note, last)


def _aware(value: Any) -> Any:
    """A timestamp as the database gave it (datetime, naive UTC on SQLite, or text) made aware."""
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _fill(
    card: dict[str, Any],
    flags: list[Any],
    match: Any,
    tags: list[Any],
    note: Any,
    last: Any,
) -> dict[str, Any]:
    """The card from the rows of either implementation: list entries (id, kind, reason, pattern,
    prefix, team), the customer (id, name, company), tags (name, warning), the last note (text,
    username, display name, time) and the last call (time, id, username, display name)."""
    import uuid

    card["warnings"] = [
        {"kind": kind, "label": LIST_LABELS.get(kind, kind), "reason": reason}
        for _id, kind, reason, _pattern, _prefix, _team in _by_priority(flags)
    ]
    if match is not None and match[0] is not None:
        customer_id, name, company = match
        card["customer"] = {
            "id": customer_id,
            "name": name,
            "company": company,
            "url": karte_url(customer_id),
        }
        card["tags"] = [tag for tag, _warning in tags or []]
        card["warnings"].extend(
            {"kind": "caution", "label": tag, "reason": ""} for tag, warning in tags or [] if warning
        )
        if note is not None:
            card["last_note"] = {
                "text": str(note[0])[:NOTE_PREVIEW],
                "author": _name(note[1], note[2]),
                "created_at": _aware(note[3]).isoformat(),
            }
    if last is not None:
        call_id = str(uuid.UUID(str(last[1])))
        card["last_call"] = {
            "id": call_id,
            "started_at": _aware(last[0]).isoformat(),
            "agent": _name(last[2], last[3]),
            "url": call_url(call_id),
        }
    return card


# --- PostgreSQL: the whole card in one statement ---------------------------------------------------
#
# The same answers as the queries above (tests/customers compare the two on PostgreSQL), in one
# round trip: on PostgreSQL each of those seven queries costs a round trip and its ORM compilation,
# 8 ms in all at p95 against 1,000,000 customers, where this statement takes 1-2 ms. The last call
# walks the (number, started_at) indexes per number and side, as ``_card_by_parts`` does, with LATERAL.

_CARD_SQL = """
WITH m AS (
    SELECT c.id, c.name, c.company
    FROM customers_customerphone p JOIN customers_customer c ON c.id = p.customer_id
    WHERE p.number = $1 {customer_scope}
    ORDER BY c.updated_at DESC, c.id DESC
    LIMIT 1
), nums AS (
    SELECT COALESCE(
        (SELECT array_agg(q.number ORDER BY q."order", q.id) FROM customers_customerphone q
         WHERE q.customer_id = (SELECT id FROM m)),
        ARRAY[$1]::varchar[]
    ) AS numbers
)
SELECT
    (SELECT json_agg(json_build_array(e.id, e.kind, e.reason, e.pattern, e.is_prefix, e.team_id))
     FROM customers_numberlistentry e
     WHERE ((e.pattern = $1 AND NOT e.is_prefix) OR (e.pattern = ANY($2) AND e.is_prefix))
     {list_scope}),
    m.id, m.name, m.company,
    (SELECT json_agg(json_build_array(t.name, t.warning) ORDER BY t.name)
     FROM customers_customer_tags ct JOIN customers_customertag t ON t.id = ct.customertag_id
     WHERE ct.customer_id = m.id),
    (SELECT json_build_array(n.text, u.username, pr.display_name, n.created_at)
     FROM customers_customernote n
     LEFT JOIN auth_user u ON u.id = n.author_id LEFT JOIN accounts_profile pr ON pr.user_id = u.id
     WHERE n.customer_id = m.id
     ORDER BY n.created_at DESC, n.id DESC
     LIMIT 1),
    {last_call}
FROM (SELECT 1) AS one LEFT JOIN m ON true
"""

_LAST_CALL_SQL = """
    (SELECT json_build_array(x.started_at, x.id, u.username, pr.display_name)
     FROM (
        SELECT l.started_at, l.id, l.agent_id
        FROM unnest((SELECT numbers[1:$5] FROM nums)) AS n(number)
        CROSS JOIN LATERAL (
            (SELECT started_at, id, agent_id FROM calls_call
             WHERE caller_number = n.number {call_scope} ORDER BY started_at DESC LIMIT 1)
            UNION ALL
            (SELECT started_at, id, agent_id FROM calls_call
             WHERE callee_number = n.number {call_scope} ORDER BY started_at DESC LIMIT 1)
        ) AS l
        ORDER BY l.started_at DESC
        LIMIT 1
     ) AS x
     LEFT JOIN auth_user u ON u.id = x.agent_id LEFT JOIN accounts_profile pr ON pr.user_id = u.id)
"""


_CARD_PARAM_TYPES = "text, text[], bigint[], bigint, integer, bigint, bigint[]"


def _one_statement(reach: Any) -> bool:
    from django.db import connection

    return connection.vendor == "postgresql" and (
        reach is None or reach.role in (UserRole.ADMIN, UserRole.MEMBER)
    )


def _execute_prepared(sql: str, params: list[Any]) -> tuple[Any, ...]:
    """Run ``sql`` as a statement prepared once per database session (``PREPARE``/``EXECUTE``).

    Planning this statement costs PostgreSQL 3-4 ms, four times what running it costs; prepared,
    it is planned once per connection. Django's client-side parameter binding cannot prepare,
    hence the explicit ``PREPARE`` (with the parameter types of :data:`_CARD_PARAM_TYPES`).
    """
    import hashlib

    from django.db import connection

    name = "callvault_card_" + hashlib.sha256(sql.encode()).hexdigest()[:16]
    connection.ensure_connection()
    raw = connection.connection
    prepared: set[str] | None = getattr(raw, "_callvault_prepared", None)
    if prepared is None:
        prepared = set()
        raw._callvault_prepared = prepared  # lives and dies with this database session
    with connection.cursor() as cursor:
        if name not in prepared:
            cursor.execute(f"PREPARE {name} ({_CARD_PARAM_TYPES}) AS {sql}")
            prepared.add(name)
        cursor.execute(f"EXECUTE {name} (%s, %s, %s, %s, %s, %s, %s)", params)
        return tuple(cursor.fetchone())


def _card_in_one_statement(
    card: dict[str, Any], number: str, teams: list[int] | None, match_team: int | None, reach: Any
) -> dict[str, Any]:
    customer_scope = ""
    if teams is not None:
        customer_scope += " AND c.owner_team_id = ANY($3)"
    if match_team is not None:
        customer_scope += " AND c.owner_team_id = $4"
    list_scope = " AND (e.team_id IS NULL OR e.team_id = ANY($3))" if teams is not None else ""
    if reach is None:
        last_call = "NULL"
    else:  # Reach.calls(): admins every call, members their teams' shared calls and their own
        call_scope = "" if reach.role == UserRole.ADMIN else "AND (team_id = ANY($7) OR agent_id = $6)"
        last_call = _LAST_CALL_SQL.format(call_scope=call_scope)
    sql = _CARD_SQL.format(customer_scope=customer_scope, list_scope=list_scope, last_call=last_call)
    params = [
        number,
        candidate_patterns(number),
        list(teams or []),
        match_team,
        MAX_CARD_NUMBERS,
        getattr(reach, "user_id", None),
        list(getattr(reach, "call_team_ids", ()) or ()),
    ]
    flags, customer_id, name, company, tags, note, last = _execute_prepared(sql, params)
    return _fill(card, flags, (customer_id, name, company), tags, note, last)
