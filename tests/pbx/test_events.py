"""POST/GET /api/v1/events: authentication, every event sequence, duplicates, bad input."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from callvault.apps.calls.models import Call
from callvault.apps.pbx.models import Integration, PbxCall, PbxEvent
from tests.pbx.conftest import EVENTS, Cast, Pbx

pytestmark = pytest.mark.django_db


def ago(seconds: float) -> str:
    return (timezone.now() - timedelta(seconds=seconds)).isoformat()


def ev(kind: str, call_id: str = "1732712345.42", t: float = 0, **fields: Any) -> dict[str, Any]:
    return {"event": kind, "call_id": call_id, "time": ago(t), **fields}


@pytest.fixture
def published() -> Callable[[], list[tuple[str, str]]]:
    """The live events (screen-pop) the PBX events published, as (kind, call id), read from the
    embedded default's event table that the web processes tail."""
    from callvault.apps.live.models import LiveEvent

    LiveEvent.objects.all().delete()  # the access changes of setting up the cast

    def read() -> list[tuple[str, str]]:
        rows = LiveEvent.objects.filter(kind__startswith="call.").order_by("pk")
        return [(kind, str(call_id)) for kind, call_id in rows.values_list("kind", "call_id")]

    return read


def the_call(integration: Integration, call_id: str = "1732712345.42") -> Call:
    return PbxCall.objects.get(integration=integration, pbx_call_id=call_id).call


# --- signatures and tokens ------------------------------------------------------------------


def test_a_signed_ringing_event_creates_a_ringing_pbx_call(
    pbx: Pbx, django_capture_on_commit_callbacks: Any, published: Callable[[], list[tuple[str, str]]]
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        r = pbx.signed(
            ev("ringing", caller="03-1234-5678", callee="0501234567", extension="201", direction="in")
        )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["status"] == "applied" and body["state"] == "ringing" and body["linked"] is False
    call = Call.objects.get(pk=body["call_id"])
    assert (call.source, call.state, call.recording_state) == ("pbx", "ringing", "none")
    assert call.caller_number == "+81312345678" and call.direction == "in"
    assert published() == [("call.ringing", str(call.pk))]
    logged = PbxEvent.objects.get()
    assert logged.auth == "signature" and logged.call_id == call.pk


def test_it_rejects_a_wrong_signature(pbx: Pbx, integration: Integration) -> None:
    r = pbx.signed(ev("ringing"), secret="pbxsec_not-the-secret")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_signature"
    assert not Call.objects.exists()
    integration.refresh_from_db()
    assert integration.rejected_count == 1 and integration.last_rejected_reason == "invalid_signature"


def test_it_rejects_a_body_changed_after_signing(pbx: Pbx) -> None:
    body = pbx.body(ev("ringing", caller="0312345678"))
    header_t = int(time.time())
    from callvault.apps.webhooks.signing import sign_header

    header = sign_header(pbx.integration.secret, body, header_t)
    tampered = body.replace(b"0312345678", b"0398765432")
    r = pbx.client.post(
        EVENTS,
        tampered,
        content_type="application/json",
        headers={"X-Callvault-Key": pbx.integration.key, "X-Callvault-Signature": header},
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_signature"


def test_it_rejects_a_signature_older_than_five_minutes(pbx: Pbx) -> None:
    r = pbx.signed(ev("ringing"), t=int(time.time()) - 301)
    assert r.status_code == 401
    assert r.json()["error"] == "signature_expired"
    assert "5 分" in r.json()["message"]
    assert pbx.signed(ev("ringing"), t=int(time.time()) + 400).status_code == 401  # from the future
    assert pbx.signed(ev("ringing"), t=int(time.time()) - 200).status_code == 200  # within the window


def test_a_replayed_signed_request_is_applied_once(pbx: Pbx, integration: Integration) -> None:
    body = pbx.body(ev("answered", t=5, extension="201"))
    t = int(time.time())
    first = pbx.send_signed(body, t=t)
    assert first.status_code == 200 and first.json()["status"] == "applied"
    call = the_call(integration)
    before = (call.state, call.answered_at, call.updated_at)
    again = pbx.send_signed(body, t=t)  # captured and sent again, byte for byte
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    call.refresh_from_db()
    assert (call.state, call.answered_at, call.updated_at) == before
    assert PbxEvent.objects.count() == 1


def test_it_refuses_unknown_keys_missing_credentials_and_disabled_integrations(
    pbx: Pbx, integration: Integration
) -> None:
    client = Client()
    r = client.post(
        EVENTS,
        json.dumps(ev("ringing")),
        content_type="application/json",
        headers={"X-Callvault-Key": "pbx_000000000000", "X-Callvault-Signature": "t=1,v1=00"},
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_signature"
    r = client.post(EVENTS, json.dumps(ev("ringing")), content_type="application/json")
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
    integration.enabled = False
    integration.save()
    r = pbx.signed(ev("ringing"))
    assert r.status_code == 401 and r.json()["error"] == "integration_disabled"


def test_a_signature_integration_does_not_accept_its_secret_as_a_token(pbx: Pbx) -> None:
    r = pbx.token(ev("ringing"))
    assert r.status_code == 401 and r.json()["error"] == "signature_required"
    assert not Call.objects.exists()


@pytest.mark.parametrize("how", ["bearer", "header", "form", "get"])
def test_a_token_integration_accepts_its_token_in_each_documented_place(token_pbx: Pbx, how: str) -> None:
    r = token_pbx.token(ev("ringing", caller="0312345678", callee="201"), how=how)
    assert r.status_code == 200, r.content
    assert PbxEvent.objects.get().auth == ("url_token" if how in ("form", "get") else "header_token")


def test_it_rejects_a_wrong_token(token_pbx: Pbx) -> None:
    r = Client().get(EVENTS, {**ev("ringing"), "token": "pbxsec_wrong"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    r = Client().post(EVENTS, "{}", content_type="application/json", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401


def test_secrets_are_not_logged_or_stored_in_the_event_log(
    token_pbx: Pbx, caplog: pytest.LogCaptureFixture
) -> None:
    token_pbx.token(ev("ringing"), how="get")
    Client().get(EVENTS, {**ev("ringing"), "token": "pbxsec_guess-1234"})
    logged = PbxEvent.objects.get()
    assert "token" not in logged.payload
    assert token_pbx.integration.secret not in caplog.text and "pbxsec_guess-1234" not in caplog.text


# --- event sequences ----------------------------------------------------------------------------


def test_ringing_answered_ended_makes_a_completed_call_with_the_agent_of_the_extension(
    cast: Cast,
    pbx: Pbx,
    integration: Integration,
    django_capture_on_commit_callbacks: Any,
    published: Callable[[], list[tuple[str, str]]],
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        pbx.signed(ev("ringing", t=70, caller="0312345678", callee="0501234567", direction="in"))
        pbx.signed(ev("answered", t=65, extension="201"))
        r = pbx.signed(ev("ended", t=5, reason="ANSWER"))
    assert r.json()["state"] == "completed"
    call = the_call(integration)
    assert call.state == "completed" and call.recording_state == "none"
    assert call.agent == cast.member and call.team == cast.team_a  # Line 201 → 営業部 / member
    assert call.duration == pytest.approx(60, abs=0.5)
    assert call.metadata["pbx"]["extension"] == "201" and call.metadata["pbx"]["duration"] == pytest.approx(
        60, abs=0.5
    )
    assert [k for k, _ in published()] == ["call.ringing", "call.answered", "call.ended"]


def test_a_call_never_answered_is_a_missed_call_and_appears_in_the_list(
    cast: Cast, pbx: Pbx, integration: Integration, client: Client
) -> None:
    pbx.signed(ev("ringing", t=30, caller="09012345678", callee="201", direction="in"))
    pbx.signed(ev("ended", t=10, reason="NOANSWER"))
    call = the_call(integration)
    assert (call.state, call.recording_state, call.answered_at) == ("cancelled", "none", None)
    assert call.team == cast.team_a
    client.force_login(cast.supervisor)
    page = client.get("/").content.decode()
    assert str(call.pk) in page and "090-1234-5678" in page and "不在着信" in page
    client.force_login(cast.outsider)
    assert str(call.pk) not in client.get("/").content.decode()


def test_ended_before_answered_still_ends_as_an_answered_call(pbx: Pbx, integration: Integration) -> None:
    pbx.signed(ev("ringing", t=50, caller="0312345678", extension="201"))
    r = pbx.signed(ev("ended", t=10))
    assert r.json()["state"] == "cancelled"  # for now nobody has answered
    r = pbx.signed(ev("answered", t=40))  # arrives late
    assert r.json()["state"] == "completed"
    call = the_call(integration)
    assert call.duration == pytest.approx(30, abs=0.5)


def test_ended_first_then_ringing_keeps_the_earliest_start(pbx: Pbx, integration: Integration) -> None:
    pbx.signed(ev("ended", t=5, answered=True, talk_seconds=20))
    pbx.signed(ev("ringing", t=40, caller="0312345678"))
    call = the_call(integration)
    assert call.state == "completed"
    assert (timezone.now() - call.started_at).total_seconds() == pytest.approx(40, abs=2)
    assert call.duration == pytest.approx(20, abs=0.5)


def test_answered_twice_keeps_the_first_answer_and_announces_it_once(
    pbx: Pbx,
    integration: Integration,
    django_capture_on_commit_callbacks: Any,
    published: Callable[[], list[tuple[str, str]]],
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        pbx.signed(ev("ringing", t=30))
        pbx.signed(ev("answered", t=20, extension="201"))
        pbx.signed(ev("answered", t=10, extension="201"))  # a second leg or a resend with a new time
    call = the_call(integration)
    assert (timezone.now() - call.answered_at).total_seconds() == pytest.approx(20, abs=2)
    assert [k for k, _ in published()].count("call.answered") == 1


def test_an_event_sent_twice_with_its_event_id_is_a_no_op(
    token_pbx: Pbx, token_integration: Integration
) -> None:
    first = token_pbx.token(ev("ringing", event_id="evt-1"))
    second = token_pbx.token(ev("ringing", event_id="evt-1"))
    assert (first.json()["status"], second.json()["status"]) == ("applied", "duplicate")
    assert PbxEvent.objects.count() == 1


def test_a_transfer_moves_the_call_to_the_new_extensions_agent(
    cast: Cast, pbx: Pbx, integration: Integration
) -> None:
    pbx.signed(ev("answered", t=60, caller="0312345678", extension="301"))
    assert the_call(integration).agent == cast.outsider
    pbx.signed(ev("transfer", t=30, transfer_to="201"))
    call = the_call(integration)
    assert call.agent == cast.member and call.team == cast.team_a
    assert call.metadata["pbx"]["transfers"][0]["to"] == "201"


def test_an_agent_named_in_the_event_wins_over_lines(cast: Cast, pbx: Pbx, integration: Integration) -> None:
    pbx.signed(ev("answered", caller="0312345678", agent="supervisor"))
    assert the_call(integration).agent == cast.supervisor


def test_a_call_without_any_line_goes_to_the_integrations_team(
    cast: Cast, pbx: Pbx, integration: Integration
) -> None:
    integration.team = cast.team_b
    integration.save()
    pbx.signed(ev("ringing", caller="0312345678", callee="0300000000", extension="999"))
    assert the_call(integration).team == cast.team_b


def test_the_same_pbx_call_id_of_two_integrations_is_two_calls(pbx: Pbx, token_pbx: Pbx) -> None:
    pbx.signed(ev("ringing"))
    token_pbx.token(ev("ringing"))
    assert Call.objects.count() == 2


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "param"),
    [
        ({"call_id": "x"}, "event"),
        ({"event": "exploded", "call_id": "x"}, "event"),
        ({"event": "ringing"}, "call_id"),
        ({"event": "ringing", "call_id": "x" * 300}, "call_id"),
        ({"event": "ringing", "call_id": "x", "time": "yesterday-ish"}, "time"),
        ({"event": "ringing", "call_id": "x", "time": "2001-01-01T00:00:00Z"}, "time"),
        ({"event": "ringing", "call_id": "x", "caller": "<script>"}, "caller"),
        ({"event": "ringing", "call_id": "x", "direction": "sideways"}, "direction"),
        ({"event": "ended", "call_id": "x", "talk_seconds": "forever"}, "talk_seconds"),
        ({"event": "ringing", "call_id": ["x"]}, "call_id"),
    ],
)
def test_it_answers_400_naming_the_bad_field(pbx: Pbx, event: dict[str, Any], param: str) -> None:
    r = pbx.signed(event)
    assert r.status_code == 400, r.content
    assert r.json()["param"] == param
    assert not Call.objects.exists()


def test_it_answers_400_for_a_body_that_is_not_a_json_object(pbx: Pbx) -> None:
    assert pbx.send_signed(b"{not json").json()["error"] == "invalid_body"
    assert pbx.send_signed(b"[1, 2]").json()["error"] == "invalid_body"
    assert pbx.send_signed("\udcff".encode("utf-8", "surrogatepass")).status_code == 400


def test_it_answers_413_for_a_huge_body(pbx: Pbx) -> None:
    r = pbx.send_signed(json.dumps({**ev("ringing"), "x": "a" * 70000}).encode())
    assert r.status_code == 413


def test_a_signed_event_cannot_be_sent_with_get(pbx: Pbx) -> None:
    r = Client().get(
        EVENTS,
        ev("ringing"),
        headers={
            "X-Callvault-Key": pbx.integration.key,
            "X-Callvault-Signature": f"t={int(time.time())},v1=00",
        },
    )
    assert r.status_code == 401  # no body to sign: the signature cannot match


def test_a_key_without_its_signature_is_refused_even_next_to_a_valid_token(token_pbx: Pbx) -> None:
    r = token_pbx.client.post(
        EVENTS,
        json.dumps(ev("ringing")),
        content_type="application/json",
        headers={"X-Callvault-Token": token_pbx.integration.secret, "X-Callvault-Key": "pbx_000000000000"},
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_signature"
    assert r["WWW-Authenticate"].startswith("Bearer")


def test_an_empty_authorization_header_is_refused_even_next_to_a_valid_token(token_pbx: Pbx) -> None:
    r = token_pbx.client.post(
        EVENTS,
        json.dumps(ev("ringing")),
        content_type="application/json",
        headers={"X-Callvault-Token": token_pbx.integration.secret, "Authorization": ""},
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event", "RINGING"),
        ("call_id", 12345),
        ("caller", 312345678),
        ("answered", "maybe"),
        ("talk_seconds", " 5"),
    ],
)
def test_it_takes_values_only_in_their_documented_form(pbx: Pbx, field: str, value: Any) -> None:
    r = pbx.signed({**ev("ended"), field: value})
    assert r.status_code == 400 and r.json()["param"] == field


def test_deleting_a_call_deletes_the_events_that_named_its_numbers(
    pbx: Pbx, integration: Integration
) -> None:
    pbx.signed(ev("ringing", caller="0312345678"))
    pbx.signed(ev("ended", reason="NOANSWER"))
    the_call(integration).delete()
    assert not PbxEvent.objects.exists() and not PbxCall.objects.exists()


def test_editing_an_integration_is_audited_with_what_changed(cast: Cast, integration: Integration) -> None:
    from callvault.apps.audit.models import AuditEntry

    client = Client()
    client.force_login(cast.admin)
    r = client.post(
        f"/settings/pbx/{integration.pk}/edit",
        {"name": "本社 FreePBX (新)", "auth_mode": integration.auth_mode, "team": "", "enabled": "on"},
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    entry = AuditEntry.objects.filter(detail__op="pbx_integration_update").get()
    assert entry.detail["changes"] == {"name": {"from": "本社 FreePBX", "to": "本社 FreePBX (新)"}}
    client.post(
        f"/settings/pbx/{integration.pk}/edit",
        {"name": "本社 FreePBX (新)", "auth_mode": integration.auth_mode, "team": "", "enabled": "on"},
    )
    again = AuditEntry.objects.filter(detail__op="pbx_integration_update").order_by("-id").first()
    assert again is not None and again.detail["changes"] == {}  # nothing changed, nothing claimed
