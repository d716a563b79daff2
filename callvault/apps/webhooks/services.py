"""Creating and sending webhook deliveries.

Flow: ``recording_ready`` -> :func:`on_recording_ready` creates one ``Delivery`` per interested
webhook (with the payload frozen at that moment) and, after the commit, queues a job per delivery.
:func:`deliver` sends one attempt if the delivery is due, records it, and on failure sets
``next_attempt_at`` from :data:`BACKOFF`; the job reschedules itself for that time and the
periodic :func:`sweep` picks up anything due that no job is waiting for (worker restart, lost
job). Each attempt claims the row first, so two workers never send the same delivery at once.
Delivery is therefore at least once: receivers deduplicate on ``X-Callvault-Delivery``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from callvault.apps.webhooks import signing, transport
from callvault.apps.webhooks.models import PING, Delivery, DeliveryAttempt, DeliveryStatus, Event, Webhook

log = logging.getLogger("callvault.webhooks")

# Seconds to wait after the 1st, 2nd, ... failed attempt; after the last, the delivery fails.
BACKOFF: tuple[int, ...] = (10, 60, 300, 1800, 7200, 21600)
MAX_ATTEMPTS = len(BACKOFF) + 1
CLAIM = timedelta(seconds=60)  # longer than a whole attempt (resolve + connect + 10 s timeout)
SWEEP_BATCH = 500

Scheduler = Callable[[str, int], None]
"""``schedule(delivery_id, delay_seconds)``: queue another attempt (the huey task passes one)."""


def envelope(delivery_id: uuid.UUID, event: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(delivery_id),
        "event": event,
        "created_at": timezone.localtime().isoformat(timespec="seconds"),
        "data": data,
    }


def body_of(delivery: Delivery) -> bytes:
    return json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()


# --- creating deliveries -------------------------------------------------------------------


def create_call_deliveries(call: Any, event: str = str(Event.CALL_COMPLETED)) -> list[Delivery]:
    """One pending delivery per active webhook that wants this event for this call's team.

    Idempotent: a call announced twice gets one delivery per webhook.
    """
    from callvault.apps.api.serialize import call_detail_for_webhook

    hooks = [h for h in Webhook.objects.filter(active=True) if h.wants(event, call.team_id)]
    if not hooks:
        return []
    detail = call_detail_for_webhook(call.pk)
    created: list[Delivery] = []
    for hook in hooks:
        delivery_id = uuid.uuid4()
        try:
            with transaction.atomic():
                created.append(
                    Delivery.objects.create(
                        id=delivery_id,
                        webhook=hook,
                        event=event,
                        call_id=call.pk,
                        payload=envelope(delivery_id, event, {"call": detail}),
                        next_attempt_at=timezone.now(),
                    )
                )
        except IntegrityError:
            continue  # already created for this call and webhook
    return created


def create_ping(webhook: Webhook) -> Delivery:
    delivery_id = uuid.uuid4()
    return Delivery.objects.create(
        id=delivery_id,
        webhook=webhook,
        event=PING,
        payload=envelope(delivery_id, PING, {"webhook": {"id": webhook.pk, "url": webhook.url}}),
        next_attempt_at=timezone.now(),
    )


def queue(deliveries: list[Delivery]) -> None:
    """Queue a job for each delivery once the surrounding transaction has committed."""
    from callvault.apps.webhooks.tasks import enqueue

    ids = [str(d.pk) for d in deliveries]

    def send() -> None:
        for delivery_id in ids:
            enqueue(delivery_id)

    if ids:
        transaction.on_commit(send)


def on_recording_ready(sender: Any, call: Any, **kwargs: Any) -> None:
    """``recording_ready`` receiver (the worker, after a recording is committed)."""
    deliveries = create_call_deliveries(call)
    if deliveries:
        log.info("webhooks: %d delivery(ies) for call %s", len(deliveries), call.pk)
    queue(deliveries)


def resend(delivery: Delivery) -> Delivery:
    """Make a delivery due now with a fresh retry schedule; earlier attempts stay in the log.

    The caller sends it (:func:`deliver`) or queues it (:func:`queue`)."""
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        last_error="",
    )
    delivery.refresh_from_db()
    return delivery


# --- sending -------------------------------------------------------------------------------


def _claim(delivery_id: Any, now: datetime) -> bool:
    return (
        Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + CLAIM)
        == 1
    )


def backoff_after(failed_attempts: int) -> int | None:
    """Seconds until the next attempt after ``failed_attempts`` failures; None when they ran out."""
    if failed_attempts < 1 or failed_attempts > len(BACKOFF):
        return None
    return BACKOFF[failed_attempts - 1]


def deliver(
    delivery_id: Any, *, now: datetime | None = None, schedule: Scheduler | None = None
) -> Delivery | None:
    """Send one attempt of a due delivery. Returns the updated delivery, or None if it was not
    due, already finished, or another worker holds it."""
    now = now or timezone.now()
    if not _claim(delivery_id, now):
        return None
    delivery = Delivery.objects.select_related("webhook").get(pk=delivery_id)
    hook = delivery.webhook
    body = body_of(delivery)
    headers = {
        "X-Callvault-Event": delivery.event,
        "X-Callvault-Delivery": str(delivery.pk),
        "X-Callvault-Signature": signing.sign_header(hook.secret, body, int(now.timestamp())),
    }
    permanent = False
    if not hook.active:
        result = transport.Result(None, _("Webhook が無効になっているため送信しませんでした"), "", 0)
        permanent = True
    else:
        try:
            result = transport.post(hook.url, body, headers, timeout=transport.TIMEOUT)
        except transport.UnsafeDestination as exc:
            result = transport.Result(
                None, _("送信先が許可されていません: %(reason)s") % {"reason": exc}, "", 0
            )
            permanent = True
    attempts = delivery.attempts + 1
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=DeliveryAttempt.objects.filter(delivery=delivery).count() + 1,
        at=now,
        response_code=result.status,
        error=result.error[:2000],
        response_excerpt=result.excerpt,
        duration_ms=result.duration_ms,
    )
    update: dict[str, Any] = {
        "attempts": attempts,
        "last_response_code": result.status,
        "last_error": result.error[:2000],
        "claimed_until": None,
    }
    delay = None
    if result.ok:
        update.update(status=DeliveryStatus.SUCCEEDED, delivered_at=now, next_attempt_at=None)
    elif permanent or delivery.event == PING or (delay := backoff_after(attempts)) is None:
        # a test ping is answered on the spot: it is never retried
        update.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    else:
        update.update(next_attempt_at=now + timedelta(seconds=delay))
    Delivery.objects.filter(pk=delivery.pk).update(**update)
    log.info(
        "webhooks: delivery %s (%s) to webhook %s attempt %d: %s",
        delivery.pk,
        delivery.event,
        hook.pk,
        attempts,
        "ok" if result.ok else (result.error or f"HTTP {result.status}"),
    )
    if delay is not None and schedule is not None:
        schedule(str(delivery.pk), delay)
    delivery.refresh_from_db()
    return delivery


def due_ids(now: datetime | None = None, limit: int = SWEEP_BATCH) -> list[str]:
    now = now or timezone.now()
    qs = (
        Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    return [str(pk) for pk in qs]
