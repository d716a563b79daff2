"""Live call events for screens and integrations: one function the capture side calls.

``publish(kind, call)`` is called by the recorder's database thread and the worker
when a call starts ringing, is answered, changes, ends, or its recording is ready.
Delivery to browsers (WebSocket ``/ws/events/``) is implemented in
``callvault.apps.web.live``; this module only forwards, so that capture code does
not depend on the web app. Publishing must never raise into the caller: a live
event is a convenience, the call itself is already safe in the spool and database.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("callvault.live")

CALL_RINGING = "call.ringing"
CALL_ANSWERED = "call.answered"
CALL_UPDATED = "call.updated"
CALL_ENDED = "call.ended"
CALL_COMPLETED = "call.completed"  # the recording is ready (also the webhook event)


_batch = threading.local()


def publish(kind: str, call: Any) -> None:
    pending = getattr(_batch, "events", None)
    if pending is not None:
        pending.append((kind, _snapshot(call)))
        return
    _deliver([(kind, call)])


def _snapshot(call: Any) -> Any:
    """A copy of the call as it is now: a later event of the same call must not change this one."""
    import copy

    return copy.copy(call)


def _deliver(events: list[tuple[str, Any]]) -> None:
    try:
        from callvault.apps.web.live import deliver_many
    except ImportError:  # the web app's delivery is not there yet
        return
    try:
        deliver_many(events)
    except Exception:
        log.exception(
            "x could not publish %d event(s) (first: %s for call %s)",
            len(events),
            events[0][0],
            getattr(events[0][1], "pk", "?"),
        )


@contextlib.contextmanager
def batched() -> Iterator[None]:
    """Collect this thread's events and publish them together at the end, in order.

    For bulk work (an import enters hundreds of calls per transaction): one database write and
    one wake-up instead of one per event. Nested use joins the outer batch.
    """
    if getattr(_batch, "events", None) is not None:
        yield
        return
    _batch.events = []
    try:
        yield
    finally:
        events, _batch.events = _batch.events, None
        if events:
            _deliver(events)
