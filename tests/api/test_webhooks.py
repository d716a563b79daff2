"""Webhooks: signed POSTs to a real receiver on 127.0.0.1, retries with backoff, SSRF refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from callvault.apps.recordings.models import Recording
from callvault.apps.recordings.signals import recording_ready
from callvault.apps.webhooks import services, signing, tasks, transport
from callvault.apps.webhooks.models import Delivery, DeliveryStatus, Webhook
from tests.api.conftest import API, Cast, issue_token
from tests.api.receiver import Receiver, Reply, running_receiver

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]

BASE_URL = "https://callvault.example.co.jp"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()


@pytest.fixture
def base_url(settings: Any) -> str:
    settings.CALLVAULT_BASE_URL = BASE_URL + "/"
    return BASE_URL


@pytest.fixture
def huey_immediate() -> Iterator[None]:
    from huey.contrib.djhuey import HUEY

    before = HUEY.immediate
    HUEY.immediate = True
    try:
        yield
    finally:
        HUEY.immediate = before


def hook_for(url: str, **fields: Any) -> Webhook:
    return Webhook.objects.create(name="CRM 連携", url=url, events=["call.completed"], **fields)


def announce(call: Any) -> list[Delivery]:
    recording_ready.send(sender=Recording, call=call)
    return list(Delivery.objects.filter(call=call).order_by("created_at"))


# --- signatures ----------------------------------------------------------------------------


def test_a_signature_verifies_only_for_the_same_secret_body_and_recent_time() -> None:
    body = '{"event":"call.completed","data":{"call":{"caller":"山田"}}}'.encode()
    header = signing.sign_header("whsec_s3cret", body, t=1_800_000_000)
    assert signing.verify("whsec_s3cret", header, body, now=1_800_000_000 + 299)
    assert not signing.verify("whsec_other", header, body, now=1_800_000_000)
    assert not signing.verify("whsec_s3cret", header, body + b" ", now=1_800_000_000)
    assert not signing.verify("whsec_s3cret", header, body, now=1_800_000_000 + 301)  # replayed later
    assert not signing.verify("whsec_s3cret", header, body, now=1_800_000_000 - 301)
    for broken in ("", "t=abc,v1=00", "v1=" + "0" * 64, f"t=1800000000,v1={'0' * 64}", "garbage"):
        assert not signing.verify("whsec_s3cret", broken, body, now=1_800_000_000)
    rotated = f"{header},v1={'f' * 64}"
    assert signing.verify("whsec_s3cret", rotated, body, now=1_800_000_000)


# --- delivering ----------------------------------------------------------------------------


def test_a_completed_call_reaches_the_receiver_signed_with_its_api_representation(
    cast: Cast, receiver: Receiver, make_recording: Any, base_url: str
) -> None:
    make_recording(cast.call_a)
    hook = hook_for(receiver.url)
    [delivery] = announce(cast.call_a)
    assert (delivery.status, delivery.attempts, delivery.event) == ("pending", 0, "call.completed")
    sent = services.deliver(delivery.pk)
    assert sent is not None and sent.status == DeliveryStatus.SUCCEEDED
    [request] = receiver.requests
    assert request.path == "/hooks/callvault?source=test"
    assert request.headers["X-Callvault-Event"] == "call.completed"
    assert request.headers["X-Callvault-Delivery"] == str(delivery.pk)
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert signing.verify(hook.secret, request.headers["X-Callvault-Signature"], request.body)
    payload = json.loads(request.body)
    assert (payload["id"], payload["event"]) == (str(delivery.pk), "call.completed")
    call = payload["data"]["call"]
    assert call["recording"]["download_url"] == f"{BASE_URL}/api/v1/calls/{cast.call_a.pk}/recording"
    assert call["url"] == f"{BASE_URL}/api/v1/calls/{cast.call_a.pk}"
    # Exactly what the API answers for the call (apart from the origin of the links).
    from_api = Client().get(
        f"{API}/calls/{cast.call_a.pk}", headers={"Authorization": f"Bearer {issue_token(cast.admin)}"}
    )
    as_api = json.loads(from_api.content.decode().replace("http://testserver", BASE_URL))
    assert call == as_api
    assert hook.secret not in request.body.decode()


def test_a_failed_delivery_is_retried_after_the_backoff_and_both_attempts_are_logged(
    cast: Cast, receiver: Receiver
) -> None:
    receiver.reply(Reply(500, b"temporarily broken"), Reply(200))
    hook_for(receiver.url)
    [delivery] = announce(cast.call_a)
    now = timezone.now()
    scheduled: list[tuple[str, int]] = []
    first = services.deliver(delivery.pk, now=now, schedule=lambda i, d: scheduled.append((i, d)))
    assert first is not None
    assert (first.status, first.attempts, first.last_response_code) == ("pending", 1, 500)
    assert first.last_error == "HTTP 500"
    assert first.next_attempt_at == now + timedelta(seconds=10)
    assert scheduled == [(str(delivery.pk), 10)]
    assert services.deliver(delivery.pk, now=now + timedelta(seconds=9)) is None  # not due yet
    second = services.deliver(delivery.pk, now=now + timedelta(seconds=10))
    assert second is not None
    assert (second.status, second.attempts, second.last_response_code) == ("succeeded", 2, 200)
    assert second.delivered_at == now + timedelta(seconds=10) and second.next_attempt_at is None
    log = [(a.number, a.response_code, a.error, a.response_excerpt) for a in second.attempt_log.all()]
    assert log == [(1, 500, "HTTP 500", "temporarily broken"), (2, 200, "", "ok")]
    ids = {r.headers["X-Callvault-Delivery"] for r in receiver.requests}
    assert ids == {str(delivery.pk)} and len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body
    assert services.deliver(delivery.pk, now=now + timedelta(hours=1)) is None  # done for good


def test_the_backoff_schedule_is_applied_and_then_the_delivery_fails(cast: Cast, receiver: Receiver) -> None:
    receiver.default = Reply(503, b"down")
    hook_for(receiver.url)
    [delivery] = announce(cast.call_a)
    now = timezone.now()
    delays: list[float] = []
    for _attempt in range(7):
        result = services.deliver(delivery.pk, now=now)
        assert result is not None
        if result.next_attempt_at is not None:
            delays.append((result.next_attempt_at - now).total_seconds())
            now = result.next_attempt_at
    assert delays == [10, 60, 300, 1800, 7200, 21600]
    final = Delivery.objects.get(pk=delivery.pk)
    assert (final.status, final.attempts, final.next_attempt_at) == ("failed", 7, None)
    assert final.attempt_log.count() == 7 and len(receiver.requests) == 7


def test_timeouts_and_refused_connections_are_failed_attempts_that_retry(
    cast: Cast, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "TIMEOUT", 0.3)
    receiver.reply(Reply(200, delay=1.0))
    hook = hook_for(receiver.url)
    [delivery] = announce(cast.call_a)
    slow = services.deliver(delivery.pk)
    assert slow is not None and slow.status == "pending" and slow.last_response_code is None
    assert "タイムアウト" in slow.last_error
    receiver.server.server_close()
    Webhook.objects.filter(pk=hook.pk).update(url="http://127.0.0.1:9/closed")
    refused = services.deliver(delivery.pk, now=slow.next_attempt_at)
    assert refused is not None and refused.status == "pending" and refused.attempts == 2
    assert "接続できません" in refused.last_error


def test_redirects_are_not_followed(cast: Cast, receiver: Receiver) -> None:
    receiver.reply(Reply(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}))
    hook_for(receiver.url)
    [delivery] = announce(cast.call_a)
    result = services.deliver(delivery.pk)
    assert result is not None and result.status == "pending" and result.last_response_code == 302
    assert "リダイレクト" in result.last_error
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://0.0.0.0:8080/",
        "http://224.0.0.1/",
        "ftp://127.0.0.1/hook",
        "http://user:pass@127.0.0.1/hook",
        "file:///etc/passwd",
    ],
)
def test_link_local_metadata_and_other_unsafe_destinations_fail_without_retry(cast: Cast, url: str) -> None:
    hook_for(url)
    [delivery] = announce(cast.call_a)
    result = services.deliver(delivery.pk)
    assert result is not None
    assert (result.status, result.attempts, result.next_attempt_at) == ("failed", 1, None)
    assert result.last_error.startswith("送信先が許可されていません")


def test_loopback_private_and_named_hosts_are_allowed() -> None:
    assert transport.check_url("http://127.0.0.1:8080/x")[1] == "127.0.0.1"
    assert transport.check_url("https://10.0.0.5/hooks")[2] == 443
    assert transport.resolve("localhost", 80)[0] in ("127.0.0.1", "::1")
    assert transport.refused_reason(__import__("ipaddress").ip_address("192.168.1.20")) is None


def test_only_active_webhooks_for_the_event_and_team_get_deliveries(cast: Cast) -> None:
    wanted = hook_for("http://127.0.0.1:9/a")
    team_a = hook_for("http://127.0.0.1:9/b", team=cast.team_a)
    hook_for("http://127.0.0.1:9/c", team=cast.team_b)
    hook_for("http://127.0.0.1:9/d", active=False)
    Webhook.objects.create(name="他のイベント", url="http://127.0.0.1:9/e", events=[])
    assert {d.webhook_id for d in announce(cast.call_a)} == {wanted.pk, team_a.pk}
    assert {d.webhook_id for d in announce(cast.call_a)} == {wanted.pk, team_a.pk}  # announced twice: once


def test_a_webhook_switched_off_after_queueing_sends_nothing(cast: Cast, receiver: Receiver) -> None:
    hook = hook_for(receiver.url)
    [delivery] = announce(cast.call_a)
    Webhook.objects.filter(pk=hook.pk).update(active=False)
    result = services.deliver(delivery.pk)
    assert result is not None and result.status == "failed" and not receiver.requests


def test_a_claimed_delivery_is_not_sent_twice(cast: Cast, receiver: Receiver) -> None:
    hook_for(receiver.url)
    [delivery] = announce(cast.call_a)
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(claimed_until=now + timedelta(seconds=30))
    assert services.deliver(delivery.pk, now=now) is None
    assert services.due_ids(now) == []
    # A crashed worker's claim expires and the delivery becomes due again.
    assert services.due_ids(now + timedelta(seconds=31)) == [str(delivery.pk)]
    assert services.deliver(delivery.pk, now=now + timedelta(seconds=31)) is not None
    assert len(receiver.requests) == 1


def test_the_job_queue_sends_after_commit_and_the_sweep_catches_up_after_a_restart(
    cast: Cast,
    receiver: Receiver,
    huey_immediate: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver.reply(Reply(500), Reply(200))
    hook_for(receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = announce(cast.call_a)
    # The job ran after the commit: one failed attempt, retry scheduled in 10 s.
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    # The worker restarts and its scheduled retry is lost: the sweep finds the due row.
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert tasks.sweep() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)
    assert tasks.sweep() == 0


def test_a_ping_is_signed_and_never_retried(cast: Cast, receiver: Receiver) -> None:
    receiver.reply(Reply(404))
    hook = hook_for(receiver.url)
    result = services.deliver(services.create_ping(hook).pk)
    assert result is not None and (result.status, result.event, result.call_id) == ("failed", "ping", None)
    [request] = receiver.requests
    assert signing.verify(hook.secret, request.headers["X-Callvault-Signature"], request.body)
    assert json.loads(request.body)["data"] == {"webhook": {"id": hook.pk, "url": receiver.url}}


def test_resending_a_failed_delivery_starts_a_fresh_schedule_and_keeps_the_history(
    cast: Cast, receiver: Receiver
) -> None:
    receiver.reply(Reply(500), Reply(200))
    hook = hook_for(receiver.url)
    hook.events = ["call.completed"]
    [delivery] = announce(cast.call_a)
    Delivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=7)
    services.deliver(services.resend(delivery).pk)
    failed_again = Delivery.objects.get(pk=delivery.pk)
    assert (failed_again.status, failed_again.attempts) == ("pending", 1)
    done = services.deliver(delivery.pk, now=failed_again.next_attempt_at)
    assert done is not None and done.status == "succeeded"
    assert [a.number for a in done.attempt_log.all()] == [1, 2]


def test_deleting_a_call_deletes_the_copies_sent_about_it(cast: Cast) -> None:
    hook_for("http://127.0.0.1:9/a")
    announce(cast.call_b)
    assert Delivery.objects.filter(call=cast.call_b).count() == 1
    cast.call_b.delete()
    assert Delivery.objects.count() == 0


def test_webhook_secrets_never_reach_the_logs(
    cast: Cast, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.reply(Reply(500))
    hook = hook_for(receiver.url)
    with caplog.at_level("DEBUG"):
        [delivery] = announce(cast.call_a)
        services.deliver(delivery.pk)
    assert "webhooks: delivery" in caplog.text
    assert hook.secret not in caplog.text and "source=test" not in caplog.text
