"""The access matrix: every URL pattern and API route, for every role, including anonymous.

The routes are read from the live URL resolver (``get_resolver()``, through every include; the
django-ninja API's routes are patterns there too) and each must have an entry in ``ROUTES`` saying,
per HTTP method, what each role gets. A pattern without an entry fails
``test_every_url_pattern_has_an_access_rule``: nobody can add a view without deciding its rule.

Each (route, role) pair is one test. It fills the route's parameters with objects of the cast
(``call_a`` of team A with a ready recording, a comment and a tag on it, the member's API token,
membership and line, a webhook and a delivery of ``call_a``), sends every method of the entry and
compares the class of outcome: ``OK`` (2xx/3xx), ``LOGIN`` (302 to ``/login/?next=`` on the web,
401 with a ``Bearer`` challenge on the API), ``404`` (out of reach: never 403, so ids cannot be
probed), ``403``, ``405``. A 5xx fails for anybody. Unsafe web requests go with the CSRF check on,
once without the token (always 403) and once with it; API routes go with a bearer token issued by
``ApiToken.issue`` and with the browser session (unsafe ones also without ``X-CSRFToken``: 403);
anonymous API requests go without credentials and with an unknown token (401). Requests come from
a non-loopback address, as a browser's would. Each request runs in a savepoint that is rolled back,
so no request sees another's changes; the cast is built once per module (see ``world_once``).

No leaks: no body or header answered to the outsider (team B) or the auditor may contain
``call_a``'s UUID, caller number (E.164, national, displayed), caller name, SIP Call-ID or comment;
the auditor not ``call_b``'s either; team A's roles not ``call_b``'s; anonymous no numbers or names.
The audit log pages, seeded with what everyday work on ``call_a`` records, may show the auditor
call ids (that is what the log is about) but never numbers or names.

Adding a view:
1. Add its route name (``namespace:name``) to ``ROUTES`` with a ``rule(...)`` per method it takes:
   ``rule(WHO)`` gives the roles in ``WHO`` OK, other logged-in roles 404 and anonymous LOGIN;
   ``ok=METHOD`` for the GET probe of a POST-only view; ``anon=``, ``others=`` or a role name
   (``member=FORBIDDEN``) for exceptions; ``everyone(...)`` for routes that ignore the user.
   Say why in a comment when it is not obvious. Routes of the API use ``api(...)``.
2. A new URL parameter: say in ``param_value`` which cast object fills it.
3. A POST/DELETE: give a body the view accepts in ``web_bodies`` or ``API_BODIES`` (an allowed
   role must get 2xx/3xx, not a form error).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import numpy as np
import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction
from django.http import HttpResponseBase
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from callvault.apps.accounts.models import ApiToken, Line, Membership, Team
from callvault.apps.calls.models import Call, CallTag, Comment, Tag
from callvault.apps.customers.models import CustomerImport, CustomField
from callvault.apps.customers.services import (
    CustomerInput,
    PhoneInput,
    add_list_entry,
    add_note,
    create_customer,
)
from callvault.apps.recordings.models import Recording
from callvault.apps.uploads.models import Device, Upload
from callvault.apps.web import format as fmt
from callvault.apps.webhooks.models import Delivery, Webhook
from callvault.apps.webhooks.services import create_call_deliveries
from callvault.media.encode import encode_recording

# _fast_password_hashing: the autouse MD5 hasher of tests/apps, imported so that it applies here
# (pytest collects that conftest only for tests under tests/apps). The world uses it too.
from tests.apps.conftest import (
    PASSWORD,
    Cast,
    _fast_password_hashing,  # noqa: F401
    make_call,
    make_user,
)

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- outcomes and roles --------------------------------------------------------------------------

OK = "ok"  # 2xx or 3xx (a redirect that is not to the login page)
LOGIN = "login"  # web: 302 to /login/?next=...; API: 401 with WWW-Authenticate
NOT_FOUND = "404"
FORBIDDEN = "403"
METHOD = "405"

ROLES = ("anonymous", "admin", "supervisor", "member", "outsider", "auditor")
LOGGED_IN = frozenset(ROLES) - {"anonymous"}
CALL_A_VIEWERS = frozenset({"admin", "supervisor", "member"})  # access.visible_calls
CALL_A_MANAGERS = frozenset({"admin", "supervisor"})  # access.can_manage_call / can_export(call_a)
EXPORTERS = frozenset({"admin", "supervisor"})  # access.can_export(user)
ADMINS = frozenset({"admin"})  # access.is_admin
AUDIT_READERS = frozenset({"admin", "auditor"})  # access.can_view_audit
COMMENT_DELETERS = frozenset({"admin", "member"})  # the comment's author (member) and admins
TOKEN_OWNER = frozenset({"member"})  # the token in the URL is the member's
UPLOADERS = frozenset({"admin", "supervisor"})  # uploads.api._origin
UPLOAD_OWNERS = frozenset({"admin", "supervisor"})  # the world's upload is the supervisor's
CUSTOMER_A_VIEWERS = frozenset({"admin", "supervisor", "member"})  # access.visible_customers
CUSTOMER_A_EDITORS = frozenset({"admin", "supervisor"})  # access.can_edit_customer

REMOTE_ADDR = "203.0.113.10"  # a browser on the office network: not loopback
CSRF_SECRET = "matrixCsrfSecret0123456789abcdef"  # 32 characters: a valid unmasked CSRF secret
assert len(CSRF_SECRET) == 32


def rule(
    allowed: frozenset[str] | set[str],
    *,
    ok: str = OK,
    anon: str = LOGIN,
    others: str = NOT_FOUND,
    **exceptions: str,
) -> dict[str, str]:
    """Expected outcome per role: ``allowed`` roles get ``ok``, other logged-in roles ``others``."""
    expected = {role: anon if role == "anonymous" else (ok if role in allowed else others) for role in ROLES}
    unknown = set(exceptions) - set(ROLES)
    assert not unknown, f"unknown roles {unknown}"
    expected.update(exceptions)
    return expected


def everyone(outcome: str) -> dict[str, str]:
    return dict.fromkeys(ROLES, outcome)


PUBLIC = everyone(OK)


@dataclass(frozen=True)
class Route:
    methods: dict[str, dict[str, str]]  # method -> role -> expected outcome
    api: bool = False  # a django-ninja route: bearer and session, JSON bodies, 401 for LOGIN
    exempt_uuid: bool = False  # the audit log shows object ids to auditors by design (never numbers)
    own_auth: bool = False  # authenticated by credentials of its own (PBX events), never by a user's


def web(**methods: dict[str, str]) -> Route:
    return Route(methods)


def api(**methods: dict[str, str]) -> Route:
    return Route(methods, api=True)


# --- the table ------------------------------------------------------------------------------------
# Key: the route name as reverse() takes it. Methods: GET always; the unsafe method a view takes.

ROUTES: dict[str, Route] = {
    # -- the shell: urls_calls.py, views.py
    "web:healthz": web(GET=PUBLIC),
    "web:login": web(GET=PUBLIC, POST=PUBLIC),  # a logged-in GET is redirected to the list: OK
    "web:logout": web(GET=everyone(METHOD), POST=PUBLIC),  # require_POST comes first: 405 for all
    "web:set_language": web(GET=PUBLIC, POST=PUBLIC),
    "web:calls": web(GET=rule(LOGGED_IN)),  # the auditor gets the page with no calls
    "web:calls_export": web(GET=rule(EXPORTERS)),
    "web:call_row": web(GET=rule(CALL_A_VIEWERS)),
    # -- the call page: urls_call.py, views_call.py
    "web:call": web(GET=rule(CALL_A_VIEWERS)),
    "web:call_audio": web(GET=rule(CALL_A_VIEWERS)),
    "web:call_peaks": web(GET=rule(CALL_A_VIEWERS)),
    "web:call_download": web(GET=rule(CALL_A_MANAGERS)),
    # POST-only views: login_required, then require_POST (405 for any id), then the call's access.
    "web:call_retry": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(CALL_A_MANAGERS)),
    "web:call_comment_add": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(CALL_A_VIEWERS)),
    "web:call_comment_delete": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(COMMENT_DELETERS)),
    # The web UI lets everyone who sees a call tag it (calls/annotations.py, and so asserted in
    # tests/web/test_call_page.py), while the API lets only its managers (services.check_can_tag:
    # access.can_manage_call, 403 for the member). The two disagree; this table follows each.
    "web:call_tag_add": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(CALL_A_VIEWERS)),
    "web:call_tag_remove": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(CALL_A_VIEWERS)),
    # -- administration: urls_admin.py, views_admin.py (_gate: anonymous LOGIN, non-admins 404)
    "web:admin": web(GET=rule(ADMINS)),
    "web:admin_users": web(GET=rule(ADMINS)),
    "web:admin_user_create": web(GET=rule(ADMINS), POST=rule(ADMINS)),
    "web:admin_user": web(GET=rule(ADMINS), POST=rule(ADMINS)),
    "web:admin_user_password": web(GET=rule(ADMINS, ok=METHOD), POST=rule(ADMINS)),
    "web:admin_user_token_revoke": web(GET=rule(ADMINS, ok=METHOD), POST=rule(ADMINS)),
    "web:admin_teams": web(GET=rule(ADMINS)),
    "web:admin_team_create": web(GET=rule(ADMINS), POST=rule(ADMINS)),
    "web:admin_team": web(GET=rule(ADMINS), POST=rule(ADMINS)),
    "web:admin_team_delete": web(GET=rule(ADMINS, ok=METHOD), POST=rule(ADMINS)),
    "web:admin_member_add": web(GET=rule(ADMINS, ok=METHOD), POST=rule(ADMINS)),
    "web:admin_member_role": web(GET=rule(ADMINS, ok=METHOD), POST=rule(ADMINS)),
    "web:admin_member_remove": web(GET=rule(ADMINS, ok=METHOD), POST=rule(ADMINS)),
    "web:admin_lines": web(GET=rule(ADMINS)),
    "web:admin_line_create": web(GET=rule(ADMINS), POST=rule(ADMINS)),
    "web:admin_line": web(GET=rule(ADMINS), POST=rule(ADMINS)),
    "web:admin_line_delete": web(GET=rule(ADMINS, ok=METHOD), POST=rule(ADMINS)),
    "web:admin_line_assign": web(GET=rule(ADMINS), POST=rule(ADMINS)),
    # -- the audit log: audit/views.py (admins and auditors; others 404)
    "web:audit": Route({"GET": rule(AUDIT_READERS)}, exempt_uuid=True),
    "web:audit_verify": Route(
        {"GET": rule(AUDIT_READERS, ok=METHOD), "POST": rule(AUDIT_READERS)}, exempt_uuid=True
    ),
    "web:audit_export": Route(
        {"GET": rule(AUDIT_READERS, ok=METHOD), "POST": rule(AUDIT_READERS)}, exempt_uuid=True
    ),
    # -- my account: every logged-in user; a token of someone else is 404
    "web:account": web(GET=rule(LOGGED_IN)),
    "web:account_password": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(LOGGED_IN)),
    "web:account_token_create": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(LOGGED_IN)),
    "web:account_token_revoke": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(TOKEN_OWNER)),
    # -- webhook settings: webhooks/views.py (admin_only: login_required, then 404 for non-admins)
    "webhooks:list": web(GET=rule(ADMINS)),
    "webhooks:create": web(GET=rule(ADMINS), POST=rule(ADMINS)),
    "webhooks:detail": web(GET=rule(ADMINS)),
    "webhooks:edit": web(GET=rule(ADMINS), POST=rule(ADMINS)),
    "webhooks:delete": web(GET=rule(ADMINS, ok=METHOD), POST=rule(ADMINS)),
    "webhooks:rotate_secret": web(GET=rule(ADMINS, ok=METHOD), POST=rule(ADMINS)),
    "webhooks:ping": web(GET=rule(ADMINS, ok=METHOD), POST=rule(ADMINS)),
    "webhooks:delivery": web(GET=rule(ADMINS)),
    "webhooks:resend": web(GET=rule(ADMINS, ok=METHOD), POST=rule(ADMINS)),
    # -- operations: not by role but by address or metrics token; a remote browser's session
    #    opens nothing (404: no metrics token configured). /readyz hides details, answers all.
    "ops:metrics": web(GET=everyone(NOT_FOUND)),
    "ops:readyz": web(GET=PUBLIC),
    # -- REST API v1 (django-ninja): 401 without credentials, 404 for calls out of reach
    "api:docs_asset": api(GET=PUBLIC),
    "api:openapi-json": api(GET=PUBLIC),  # the schema only: no data
    "api:openapi-view": api(GET=PUBLIC),
    "api:api-root": api(GET=everyone(NOT_FOUND)),  # django-ninja's placeholder: always 404
    "api:me": api(GET=rule(LOGGED_IN)),
    "api:call_list": api(GET=rule(LOGGED_IN)),  # filtered by visible_calls (checked for leaks)
    "api:call_detail": api(GET=rule(CALL_A_VIEWERS)),
    "api:call_recording": api(GET=rule(CALL_A_VIEWERS)),
    "api:call_comments": api(GET=rule(CALL_A_VIEWERS)),
    "api:call_comments_add": api(POST=rule(CALL_A_VIEWERS)),  # GET on this path: call_comments
    # Wrong methods are answered by django-ninja before authentication: 405 for everybody.
    # Someone who sees the call but may not change it gets 403 from the API (its documented answer).
    "api:call_comment_delete": api(GET=everyone(METHOD), DELETE=rule(COMMENT_DELETERS, supervisor=FORBIDDEN)),
    "api:tags": api(GET=rule(LOGGED_IN)),  # the shared tag list
    "api:call_tags": api(GET=everyone(METHOD), POST=rule(CALL_A_MANAGERS, member=FORBIDDEN)),
    "api:call_tags_remove": api(GET=everyone(METHOD), DELETE=rule(CALL_A_MANAGERS, member=FORBIDDEN)),
    # -- PBX call events: pbx/api.py. Only a PBX integration's signature or token opens them; a user's
    #    session or API token is no PBX credential (401 for everybody, tested with real ones in tests/pbx).
    "api:pbx_events": Route({"GET": everyone(LOGIN), "POST": everyone(LOGIN)}, api=True, own_auth=True),
    "api:pbx_events_get": Route({"GET": everyone(LOGIN)}, api=True, own_auth=True),
    # -- PBX integration settings: pbx/views.py (admin_only, as webhooks)
    "pbx:list": web(GET=rule(ADMINS)),
    "pbx:create": web(GET=rule(ADMINS), POST=rule(ADMINS)),
    "pbx:detail": web(GET=rule(ADMINS)),
    "pbx:edit": web(GET=rule(ADMINS), POST=rule(ADMINS)),
    "pbx:delete": web(GET=rule(ADMINS, ok=METHOD), POST=rule(ADMINS)),
    "pbx:rotate_secret": web(GET=rule(ADMINS, ok=METHOD), POST=rule(ADMINS)),
    # -- 録音の欠落チェック: completeness/views.py (supervisors see their teams' calls, admins all)
    "completeness:list": web(GET=rule(EXPORTERS)),
    "completeness:run": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(ADMINS)),
    "completeness:recheck": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(CALL_A_MANAGERS)),
    # -- uploads: callvault/apps/uploads (device tokens are tested in tests/uploads). With a user's
    # token or session: admins and supervisors may upload (tus creation here); agents and auditors
    # get 403, the API's documented answer. An upload is seen and continued only by its owner (the
    # supervisor here) and admins; everyone else 404.
    "api:upload_create": api(POST=rule(UPLOADERS, others=FORBIDDEN)),
    "api:upload_options": api(GET=everyone(METHOD)),  # OPTIONS (tus discovery) needs no credentials
    "api:upload_detail": api(GET=rule(UPLOAD_OWNERS)),
    "api:upload_head": api(GET=rule(UPLOAD_OWNERS)),  # the same path: HEAD is tested in tests/uploads
    "api:upload_patch": api(PATCH=rule(UPLOAD_OWNERS)),
    "api:upload_delete": api(DELETE=rule(UPLOAD_OWNERS)),
    "web:admin_devices": web(GET=rule(ADMINS)),
    "web:admin_device_create": web(GET=rule(ADMINS), POST=rule(ADMINS)),
    "web:admin_device_revoke": web(GET=rule(ADMINS, ok=METHOD), POST=rule(ADMINS)),
    # -- customers (顧客): customers/urls.py, customers/views.py; customer_a belongs to team A
    "customers:list": web(GET=rule(LOGGED_IN)),  # the auditor gets the page with no customers
    # Anyone with a team may open the form; a posted team outside one's teams is out of reach (404).
    "customers:create": web(GET=rule(LOGGED_IN - {"auditor"}), POST=rule(CUSTOMER_A_VIEWERS)),
    "customers:detail": web(GET=rule(CUSTOMER_A_VIEWERS)),
    "customers:edit": web(GET=rule(CUSTOMER_A_EDITORS), POST=rule(CUSTOMER_A_EDITORS)),
    "customers:delete": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(CUSTOMER_A_EDITORS)),
    "customers:merge": web(GET=rule(CUSTOMER_A_EDITORS), POST=rule(CUSTOMER_A_EDITORS)),
    "customers:note_add": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(CUSTOMER_A_VIEWERS)),
    # the note's author (member) and the customer's editors
    "customers:note_edit": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(CUSTOMER_A_VIEWERS)),
    "customers:import": web(GET=rule(EXPORTERS), POST=rule(EXPORTERS)),
    "customers:import_preview": web(GET=rule({"supervisor"}), POST=rule({"supervisor"})),  # hers alone
    "customers:export": web(GET=rule(EXPORTERS)),
    "customers:numbers": web(GET=rule(EXPORTERS), POST=rule(EXPORTERS)),
    "customers:number_delete": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(EXPORTERS)),
    "customers:fields": web(GET=rule(ADMINS), POST=rule(ADMINS)),
    "customers:field_delete": web(GET=rule(LOGGED_IN, ok=METHOD), POST=rule(ADMINS)),
    # -- customers in the API (api/customers.py): seen by team A, changed by its supervisors (403 for
    #    the member who sees it), out of reach 404; the auditor has no team to create customers in.
    "api:customer_list": api(GET=rule(LOGGED_IN)),  # filtered by visible_customers
    "api:customer_create": api(POST=rule(CUSTOMER_A_VIEWERS, auditor=FORBIDDEN)),  # team A in the body
    "api:customer_lookup": api(GET=rule(LOGGED_IN)),  # ?number=: see ROUTE_QUERIES
    "api:customer_detail": api(GET=rule(CUSTOMER_A_VIEWERS)),
    "api:customer_update": api(PATCH=rule(CUSTOMER_A_EDITORS, member=FORBIDDEN)),
    "api:customer_delete": api(DELETE=rule(CUSTOMER_A_EDITORS, member=FORBIDDEN)),
    "api:customer_notes": api(GET=rule(CUSTOMER_A_VIEWERS)),
    "api:customer_notes_add": api(POST=rule(CUSTOMER_A_VIEWERS)),
}
# Query strings some routes need to do their work (appended to the reversed URL).
ROUTE_QUERIES = {"api:customer_lookup": "?number=03-6789-0000"}  # customer_dup's number

# --- the world: the cast and the objects the routes' parameters point at -------------------------

# Numbers and names of no example or placeholder anywhere in the code (the cast's +81312345678
# is also the search field's placeholder "例: 03-1234-5678").
CALL_A_CALLER = ("+81367891234", "高橋 美咲")
CALL_B_CALLER = ("+819087654321", "井上 直樹")
CALL_A_COMMENT = "折り返し希望 (通話Aのメモ)"
TAG_NAME = "要折り返し"
CUSTOMER_A_COMPANY = "高橋工務店 (顧客Aの会社)"
CUSTOMER_A_NOTE = "見積もりの件で折り返し (顧客Aのメモ)"


@dataclass
class World:
    cast: Cast
    comment: Comment
    tag: Tag
    member_token: ApiToken
    membership: Membership
    line: Line
    webhook: Webhook
    delivery: Delivery
    recording: Recording
    upload: Upload
    device: Device
    recordings_dir: Path
    sessions: dict[str, str]  # role -> session key of a logged-in browser
    tokens: dict[str, str]  # role -> API token (ApiToken.issue)
    customer: Any = None  # customer_a: a customer of team A who called (call_a's caller)
    customer_dup: Any = None  # a duplicate of customer_a (merge)
    customer_note: Any = None  # the member's note on customer_a
    customer_import: Any = None  # the supervisor's CSV upload waiting for confirmation
    number_entry: Any = None  # a caution entry of team A
    custom_field: Any = None


def build_cast() -> Cast:
    """The cast of ``tests/apps/conftest.py::cast``, built with its helpers, once per module.

    The fixture itself is function-scoped; at ~50 ms a world, 400 cells would take half a minute
    to set up. Keep this in step with the fixture (same users, teams, memberships, lines, calls).
    """
    team_a = Team.objects.create(name="営業部")
    team_b = Team.objects.create(name="サポート部")
    admin = make_user("admin", role="admin", superuser=True)
    supervisor = make_user("supervisor")
    member = make_user("member")
    outsider = make_user("outsider")
    auditor = make_user("auditor", role="auditor")
    Membership.objects.create(user=supervisor, team=team_a, role="supervisor")
    Membership.objects.create(user=member, team=team_a, role="agent")
    Membership.objects.create(user=outsider, team=team_b, role="agent")
    Line.objects.create(number="201", team=team_a, user=member, label="営業 山本")
    Line.objects.create(number="301", team=team_b, user=outsider, label="サポート 鈴木")
    call_a = make_call(team_a, member, callee="201", caller=CALL_A_CALLER[0], caller_name=CALL_A_CALLER[1])
    call_b = make_call(team_b, outsider, callee="301", caller=CALL_B_CALLER[0], caller_name=CALL_B_CALLER[1])
    return Cast(admin, supervisor, member, outsider, auditor, team_a, team_b, call_a, call_b)


def build_world(folder: Path) -> World:
    cast = build_cast()
    call_a = cast.call_a
    rate = 8000
    t = np.arange(rate) / rate
    pcm = np.stack([np.sin(2 * np.pi * f * t) * 8000 for f in (440, 880)], axis=1).astype(np.int16)
    key = f"2026/11/27/{call_a.pk}.opus"
    (folder / key).parent.mkdir(parents=True)
    info = encode_recording(pcm, rate, "opus", folder / key, metadata={})
    recording = Recording.objects.create(
        call=call_a,
        storage_key=key,
        format="opus",
        codec=info.codec,
        channels=info.channels,
        sample_rate=info.sample_rate,
        bytes=info.bytes,
        sha256=info.sha256,
        duration=info.duration,
        channel_map={"left": "caller", "right": "callee"},
    )
    comment = Comment.objects.create(call=call_a, author=cast.member, text=CALL_A_COMMENT)
    tag = Tag.objects.create(name=TAG_NAME, color="#dc2626")
    CallTag.objects.create(call=call_a, tag=tag, added_by=cast.supervisor)
    member_token, _secret = ApiToken.issue(cast.member, "member's token")
    # A link-local receiver: refused by transport.check_url before any connection (no network).
    webhook = Webhook.objects.create(
        name="CRM", url="http://169.254.10.10/hooks/callvault", events=["call.completed"]
    )
    (delivery,) = create_call_deliveries(call_a)  # its payload holds call_a's numbers and names
    sessions, tokens = {}, {}
    for role, user in cast.users().items():
        client = Client()
        client.force_login(user)
        sessions[role] = client.cookies[settings.SESSION_COOKIE_NAME].value
        tokens[role] = ApiToken.issue(user, "matrix")[1]
    customer = create_customer(
        CustomerInput(
            data={"name": CALL_A_CALLER[1], "company": CUSTOMER_A_COMPANY},
            phones=[PhoneInput(CALL_A_CALLER[0])],
            owner_team_id=cast.team_a.pk,
        ),
        user=cast.supervisor,
    )
    customer_dup = create_customer(
        CustomerInput(
            data={"name": "高橋 (重複)"}, phones=[PhoneInput("03-6789-0000")], owner_team_id=cast.team_a.pk
        ),
        user=cast.supervisor,
    )
    customer_import = CustomerImport.objects.create(
        user=cast.supervisor, team=cast.team_a, filename="import.csv", data=matrix_csv()
    )
    return World(
        customer=customer,
        customer_dup=customer_dup,
        customer_note=add_note(customer, CUSTOMER_A_NOTE, user=cast.member),
        customer_import=customer_import,
        number_entry=add_list_entry(
            "03-6789-1111", "caution", "行列", team_id=cast.team_a.pk, user=cast.admin
        ),
        custom_field=CustomField.objects.create(key="contract", label="契約番号"),
        cast=cast,
        comment=comment,
        tag=tag,
        member_token=member_token,
        membership=Membership.objects.get(user=cast.member, team=cast.team_a),
        line=Line.objects.get(number="201"),
        webhook=webhook,
        delivery=delivery,
        recording=recording,
        recordings_dir=folder,
        upload=Upload.objects.create(
            user=cast.supervisor, length=1000, expires_at=timezone.now() + timedelta(hours=1)
        ),
        device=Device.create_with_token(name="行列テストの端末", team=cast.team_a)[0],
        sessions=sessions,
        tokens=tokens,
    )


@pytest.fixture(scope="module")
def world_once(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The world, built once in a transaction that spans the module and is rolled back at its end.

    Every test runs in a savepoint inside it (pytest-django's ``django_db``), and every request of
    a test in a savepoint of its own, so no test or request sees what another one changed.
    """
    folder = tmp_path_factory.mktemp("matrix-recordings")
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            with override_settings(PASSWORD_HASHERS=FAST_HASHERS):
                world = build_world(folder)
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    try:
        yield world
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def world(world_once: World, settings: Any, tmp_path: Path) -> World:
    settings.RECORDINGS_DIR = world_once.recordings_dir
    settings.SPOOL_DIR = tmp_path / "spool"  # for /readyz
    settings.SPOOL_DIR.mkdir()
    settings.MIN_FREE_DISK_BYTES = 1
    settings.METRICS_TOKEN = ""
    settings.UPLOADS_DIR = tmp_path / "uploads"  # staging of the uploads created by the matrix
    return world_once


def param_value(route: str, param: str, w: World) -> Any:
    """The cast object a URL parameter points at (``pk`` depends on the area of the route)."""
    c = w.cast
    values: dict[str, Callable[[], Any]] = {
        "call_id": lambda: c.call_a.pk,
        "comment_id": lambda: w.comment.pk,
        "tag_id": lambda: w.tag.pk,
        "token_id": lambda: w.member_token.pk,
        "membership_id": lambda: w.membership.pk,
        "delivery_id": lambda: w.delivery.pk,
        "name": lambda: "swagger-ui.css",  # api:docs_asset
        "upload_id": lambda: w.upload.pk,
        "customer_id": lambda: w.customer.pk,
        "note_id": lambda: w.customer_note.pk,
        "import_id": lambda: w.customer_import.pk,
        "entry_id": lambda: w.number_entry.pk,
        "field_id": lambda: w.custom_field.pk,
    }
    if param in values:
        return values[param]()
    if param == "pk":
        by_prefix = {
            "web:admin_user": c.member.pk,
            "web:admin_team": c.team_a.pk,
            "web:admin_member": c.team_a.pk,
            "web:admin_line": w.line.pk,
            "web:account_token": w.member_token.pk,
            "webhooks:": w.webhook.pk,
            "pbx:": _integration().pk,
            "web:admin_device": w.device.pk,
        }
        for prefix, value in by_prefix.items():
            if route.startswith(prefix):
                return value
    pytest.fail(f"{route}: no cast object for URL parameter {param!r}; add one to param_value()")


def _integration() -> Any:
    """A PBX integration for the ``pbx:`` routes (made in the test's own savepoint)."""
    from callvault.apps.pbx.models import Integration

    return Integration.objects.get_or_create(name="本社 PBX")[0]


def web_bodies(w: World) -> dict[str, dict[str, Any]]:
    """Form data each unsafe web view accepts (so that an allowed role really gets 2xx/3xx)."""
    c = w.cast
    new_password = "a different horse battery staple 42"
    hook = {
        "name": "別の受信先",
        "url": "http://127.0.0.1:9/hook",
        "events": "call.completed",
        "active": "on",
    }
    return {
        "web:login": {"username": "member", "password": PASSWORD},
        "web:set_language": {"language": "ja", "next": "/"},
        "web:call_comment_add": {"text": "行列テストのコメント"},
        "web:call_tag_add": {"name": "行列テスト"},
        "web:admin_user_create": {"username": "newcomer", "display_name": "新人", "role": "member"},
        "web:admin_user": {"display_name": "member", "role": "member", "is_active": "on"},
        "web:admin_team_create": {"name": "新しいチーム"},
        "web:admin_team": {"name": c.team_a.name, "share_calls": "on"},
        "web:admin_member_add": {"user": c.outsider.pk, "role": "agent"},
        "web:admin_member_role": {"role": "supervisor"},
        "web:admin_line_create": {"number": "202", "label": "営業 2", "team": c.team_a.pk},
        "pbx:create": {"name": "支店 PBX", "auth_mode": "token", "enabled": "on"},
        "pbx:edit": {"name": "本社 PBX", "auth_mode": "signature", "team": c.team_a.pk, "enabled": "on"},
        "web:admin_line": {"number": "201", "label": "営業 山本", "team": c.team_a.pk, "user": c.member.pk},
        "web:account_password": {
            "old_password": PASSWORD,
            "new_password1": new_password,
            "new_password2": new_password,
        },
        "web:account_token_create": {"name": "行列テスト"},
        "webhooks:create": hook,
        "webhooks:edit": hook,
        "customers:create": {
            "kind": "person",
            "name": "行列テストの顧客",
            "owner_team": c.team_a.pk,
            "phone_number": "03-6789-2222",
            "phone_label": "work",
        },
        "customers:edit": {
            "kind": "person",
            "name": CALL_A_CALLER[1],
            "company": CUSTOMER_A_COMPANY,
            "owner_team": c.team_a.pk,
            "phone_number": CALL_A_CALLER[0],
            "phone_label": "work",
        },
        "customers:merge": {"merge": w.customer_dup.pk, "survivor": w.customer.pk},
        "customers:note_add": {"text": "行列テストのメモ"},
        "customers:note_edit": {"text": "行列テストのメモ (編集)"},
        "customers:import": {"team": c.team_a.pk, "file": _named_file(matrix_csv(), "matrix.csv")},
        "customers:numbers": {"pattern": "0120*", "kind": "nuisance", "reason": "行列", "team": c.team_a.pk},
        "customers:fields": {"form": "field", "label": "行列の項目", "key": "matrix", "field_type": "text"},
        "web:admin_device_create": {"name": "行列テストの新しい端末", "team": c.team_a.pk},
    }


def matrix_csv() -> bytes:
    return "名前,電話番号\r\n行列 取り込み,03-6789-3333\r\n".encode("cp932")


def _named_file(data: bytes, name: str) -> io.BytesIO:
    f = io.BytesIO(data)
    f.name = name
    return f


@dataclass(frozen=True)
class RawBody:
    """A request body that is not JSON (tus: headers and bytes)."""

    content_type: str
    body: bytes
    headers: dict[str, str]


# tus creation (Upload-Metadata: started_at 2026-11-27T14:05:00+09:00) and an empty tus PATCH.
API_RAW: dict[tuple[str, str], RawBody] = {
    ("api:upload_create", "POST"): RawBody(
        "application/json",
        b"",
        {
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "1000",
            "Upload-Metadata": "started_at MjAyNi0xMS0yN1QxNDowNTowMCswOTowMA==",
        },
    ),
    ("api:upload_patch", "PATCH"): RawBody(
        "application/offset+octet-stream", b"", {"Tus-Resumable": "1.0.0", "Upload-Offset": "0"}
    ),
}

API_BODIES: dict[str, Any] = {
    "api:customer_create": lambda w: {"name": "行列テストの顧客", "team": w.cast.team_a.pk},
    "api:customer_update": {"company": "行列テスト株式会社"},
    "api:customer_notes_add": {"text": "行列テストのメモ"},
    "api:call_comments_add": {"text": "行列テストのコメント"},
    "api:call_tags": {"tag": "行列テスト"},
    "api:call_tags_remove": {"tag": TAG_NAME},
}

# --- what must never reach whom ---------------------------------------------------------------


def call_needles(call: Call, *, with_id: bool = True) -> list[str]:
    """Strings that identify a call's data: the number in every notation, names, ids."""
    number = call.caller_number
    needles = [number, fmt.number(number), "0" + number.removeprefix("+81"), call.caller_name]
    needles += [call.sip_call_id] if call.sip_call_id else []
    needles += [str(call.pk), call.pk.hex] if with_id else []
    return needles


def needles_for(role: str, w: World, *, exempt_uuid: bool) -> list[str]:
    a, b = w.cast.call_a, w.cast.call_b
    with_id = not exempt_uuid
    if role == "outsider":
        return [*call_needles(a, with_id=with_id), CALL_A_COMMENT, CUSTOMER_A_COMPANY, CUSTOMER_A_NOTE]
    if role == "auditor":
        return [
            *call_needles(a, with_id=with_id),
            *call_needles(b, with_id=with_id),
            CALL_A_COMMENT,
            CUSTOMER_A_COMPANY,
            CUSTOMER_A_NOTE,
        ]
    if role in ("supervisor", "member"):
        return call_needles(b)
    if role == "anonymous":  # a login redirect repeats the URL asked for (call_a's id): not a leak
        return [*call_needles(a, with_id=False), *call_needles(b, with_id=False), CALL_A_COMMENT]
    return []  # the admin sees everything


def text_of(response: HttpResponseBase) -> str:
    """Headers and body as text. Reading a streaming body to its end lets the test client close
    the response itself (calling ``close()`` here would close the database connection)."""
    body = b"".join(response.streaming_content) if response.streaming else response.content
    headers = "\n".join(f"{k}: {v}" for k, v in response.items())
    return headers + "\n\n" + body.decode("utf-8", errors="replace")


def leaks_in(text: str, needles: list[str]) -> list[str]:
    """Each needle found, with some context (also as JsonResponse writes it: non-ASCII escaped)."""
    found = []
    for needle in needles:
        for form in {needle, json.dumps(needle)[1:-1]}:
            at = text.find(form)
            if at >= 0:
                context = " ".join(text[max(0, at - 120) : at + len(form) + 40].split())
                found.append(f"{needle!r} in «…{context}…»")
                break
    return found


# --- requests ----------------------------------------------------------------------------------


def classify(response: HttpResponseBase, *, api: bool) -> str:
    status = response.status_code
    if status >= 500:
        return f"server error {status}"
    if api and status == 401:
        challenge = response.get("WWW-Authenticate", "")
        return LOGIN if challenge.startswith("Bearer") else "401 without a Bearer challenge"
    if not api and status == 302:
        location = urlsplit(response["Location"])
        if location.path == reverse("web:login") and "next=" in location.query:
            return LOGIN
    if 200 <= status < 400:
        return OK
    return str(status)


def browser(w: World, role: str) -> Client:
    """A browser on the office network: CSRF checks on, logged in as ``role`` (or anonymous)."""
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=REMOTE_ADDR)
    if role != "anonymous":
        client.cookies[settings.SESSION_COOKIE_NAME] = w.sessions[role]
    client.cookies[settings.CSRF_COOKIE_NAME] = CSRF_SECRET
    return client


def program() -> Client:
    """An API client without cookies (a script with a bearer token, or with nothing)."""
    return Client(REMOTE_ADDR=REMOTE_ADDR)


@dataclass
class Attempt:
    """One request of a matrix cell and the outcome it must have."""

    label: str
    expected: str
    client: Client
    method: str
    data: Any = None
    headers: dict[str, str] | None = None
    as_json: bool = False

    def send(self, url: str) -> HttpResponseBase:
        headers = self.headers or {}
        if isinstance(self.data, RawBody):
            return self.client.generic(
                self.method,
                url,
                self.data.body,
                content_type=self.data.content_type,
                headers={**self.data.headers, **headers},
            )
        if self.method == "GET":
            return self.client.get(url, headers=headers)
        if self.as_json:
            body = "" if self.data is None else json.dumps(self.data)
            return self.client.generic(
                self.method, url, body, content_type="application/json", headers=headers
            )
        files = [v for v in (self.data or {}).values() if hasattr(v, "read")]
        if files:  # a file upload: multipart, each attempt from the file's start
            for f in files:
                f.seek(0)
            return self.client.post(url, self.data, headers=headers)
        form = urlencode(self.data or {}, doseq=True)
        return self.client.generic(
            self.method, url, form, content_type="application/x-www-form-urlencoded", headers=headers
        )


def attempts_for(name: str, route: Route, role: str, w: World) -> Iterator[Attempt]:
    session = browser(w, role)
    token = w.tokens.get(role)
    for method, expected_by_role in route.methods.items():
        expected = expected_by_role[role]
        if not route.api:
            if method == "GET":
                yield Attempt("GET", expected, session, "GET")
                continue
            data = web_bodies(w).get(name, {})
            # CsrfViewMiddleware refuses an unsafe request without the token before any view runs.
            yield Attempt(f"{method} without CSRF token", FORBIDDEN, session, method, data)
            yield Attempt(
                f"{method}", expected, session, method, {**data, "csrfmiddlewaretoken": CSRF_SECRET}
            )
            continue
        body = API_RAW.get((name, method)) or API_BODIES.get(name)
        if callable(body):  # a body that needs the world's ids
            body = body(w)
        if token is None:
            yield Attempt(f"{method} (no credentials)", expected, program(), method, body, as_json=True)
            bogus = {"Authorization": "Bearer cv_" + "x" * 43}
            yield Attempt(f"{method} (unknown bearer token)", expected, program(), method, body, bogus, True)
            continue
        bearer = {"Authorization": f"Bearer {token}"}
        yield Attempt(f"{method} (bearer token)", expected, program(), method, body, bearer, True)
        if method != "GET" and expected != METHOD and not route.own_auth:
            # The session without X-CSRFToken: SessionCsrfAuth refuses it before the handler runs.
            yield Attempt(
                f"{method} (session, no CSRF token)", FORBIDDEN, session, method, body, as_json=True
            )
        csrf = {"X-CSRFToken": CSRF_SECRET}
        yield Attempt(f"{method} (session)", expected, session, method, body, csrf, True)


# --- the URL patterns, from the live resolver ---------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    name: str
    path: str
    params: tuple[str, ...]


def _params_of(pattern: Any) -> tuple[str, ...]:
    converters = getattr(pattern, "converters", None)
    if converters is not None:  # path() patterns
        return tuple(converters)
    return tuple(pattern.regex.groupindex)  # re_path() patterns


def url_patterns() -> list[Pattern]:
    """Every URL pattern, walking includes (django-ninja's routes are plain patterns too)."""
    found: list[Pattern] = []

    def walk(resolver: URLResolver, prefix: str, namespace: str, params: tuple[str, ...]) -> None:
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry, prefix + str(entry.pattern), ns, params + _params_of(entry.pattern))
            elif isinstance(entry, URLPattern):
                path = "/" + prefix + str(entry.pattern)
                name = f"{namespace}{entry.name}" if entry.name else f"<unnamed> {path}"
                found.append(Pattern(name, path, params + _params_of(entry.pattern)))

    walk(get_resolver(), "", "", ())
    return found


def test_every_url_pattern_has_an_access_rule() -> None:
    patterns = url_patterns()
    names = [p.name for p in patterns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"route names used more than once (the matrix is keyed by name): {duplicates}"
    unknown = [f"{p.name}  ({p.path})" for p in patterns if p.name not in ROUTES]
    assert not unknown, (
        "URL patterns without an access rule: decide who may use them and add them to ROUTES in "
        "tests/test_access_matrix.py (see its docstring):\n  " + "\n  ".join(unknown)
    )
    stale = sorted(set(ROUTES) - set(names))
    assert not stale, f"ROUTES has entries for routes that no longer exist: {stale}"


def test_every_entry_says_what_each_role_gets() -> None:
    for name, route in ROUTES.items():
        assert route.methods, name
        for method, expected in route.methods.items():
            assert method in ("GET", "POST", "PUT", "PATCH", "DELETE"), (name, method)
            assert set(expected) == set(ROLES), (name, method)
            assert set(expected.values()) <= {OK, LOGIN, NOT_FOUND, FORBIDDEN, METHOD}, (name, method)


# --- the matrix -----------------------------------------------------------------------------------

AUDIT_ROUTES = {"web:audit", "web:audit_verify", "web:audit_export"}


def seed_audit_log(w: World) -> None:
    """What everyday work on call_a writes to the audit log, through the real views."""
    call = w.cast.call_a
    comment_form = {"text": "聞きました", "csrfmiddlewaretoken": CSRF_SECRET}
    for response in (
        browser(w, "supervisor").get(reverse("web:call_download", args=[call.pk])),
        browser(w, "member").get(reverse("web:call_audio", args=[call.pk])),
        browser(w, "member").post(reverse("web:call_comment_add", args=[call.pk]), comment_form),
        program().get(
            reverse("api:call_recording", kwargs={"call_id": call.pk}),
            headers={"Authorization": f"Bearer {w.tokens['admin']}"},
        ),
    ):
        assert response.status_code in (200, 302), response.status_code
        text_of(response)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", list(ROUTES))
def test_access(name: str, role: str, world: World) -> None:
    route = ROUTES[name]
    pattern = {p.name: p for p in url_patterns()}.get(name)
    if pattern is None:
        pytest.fail(f"{name} is in ROUTES but not in the URL configuration")
    url = reverse(name, kwargs={p: param_value(name, p, world) for p in pattern.params})
    url += ROUTE_QUERIES.get(name, "")
    if name in AUDIT_ROUTES:
        seed_audit_log(world)
    needles = needles_for(role, world, exempt_uuid=route.exempt_uuid and role == "auditor")

    problems: list[str] = []
    for attempt in attempts_for(name, route, role, world):
        cookies = SimpleCookie(attempt.client.cookies.output(header="", sep=";"))
        # Each request in a savepoint of its own: a change (a deleted comment, a logout) made by
        # one attempt is gone before the next.
        with transaction.atomic():
            response = attempt.send(url)
            text = text_of(response)
            transaction.set_rollback(True)
        attempt.client.cookies = cookies
        got = classify(response, api=route.api)
        if got != attempt.expected:
            where = f" -> {response['Location']}" if response.has_header("Location") else ""
            status = f"HTTP {response.status_code}{where}"
            problems.append(f"{attempt.label}: expected {attempt.expected}, got {got} ({status})")
        for leak in leaks_in(text, needles):
            problems.append(f"{attempt.label}: HTTP {response.status_code} leaks {leak}")
    assert not problems, f"{name} {url} as {role}:\n  " + "\n  ".join(problems)


@pytest.mark.django_db
def test_the_leak_check_finds_call_a_where_it_is_shown(world: World) -> None:
    """The needles are what the pages really show: the admin's view of call_a holds every one."""
    call = world.cast.call_a
    texts = [
        text_of(browser(world, "admin").get(reverse("web:call", args=[call.pk]))),
        text_of(browser(world, "admin").get(reverse("web:call_download", args=[call.pk]))),
        text_of(
            program().get(
                reverse("api:call_detail", kwargs={"call_id": call.pk}),
                headers={"Authorization": f"Bearer {world.tokens['admin']}"},
            )
        ),
    ]
    needles = [n for n in [*call_needles(call), CALL_A_COMMENT] if n != call.pk.hex]
    missing = [n for n in needles if not any(leaks_in(text, [n]) for text in texts)]
    assert not missing, f"the leak check looks for strings that call_a's pages never show: {missing}"


# --- the WebSocket ------------------------------------------------------------------------------


async def _close_code(path: str, headers: list[tuple[bytes, bytes]]) -> Any:
    from callvault.asgi import application

    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, _subprotocol = await comm.connect(timeout=5)
    assert connected  # accepted first, so that the client sees the close code
    out = await comm.receive_output(timeout=5)
    assert out["type"] == "websocket.close", out
    await comm.disconnect()
    return out.get("code")


# channels runs its database calls (session, user) in asgiref's sync thread; closing stale
# connections there needs database access allowed, even though these connections use none.
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "extra"),
    [
        pytest.param("/ws/events/", [], id="no credentials"),
        pytest.param("/ws/events/", [(b"origin", b"http://testserver")], id="same-site browser, no session"),
        pytest.param("/ws/events/?token=cv_" + "x" * 43, [], id="token in the URL"),
        pytest.param("/ws/events/", [(b"authorization", b"Basic YWRtaW46YWRtaW4=")], id="not a bearer token"),
    ],
)
def test_the_event_socket_closes_anonymous_connections_with_4401(
    path: str, extra: list[tuple[bytes, bytes]]
) -> None:
    from asgiref.sync import sync_to_async
    from django.db import connections

    try:
        assert asyncio.run(_close_code(path, [(b"host", b"testserver"), *extra])) == 4401
    finally:
        asyncio.run(sync_to_async(connections.close_all)())
