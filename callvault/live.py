"""Live call events for screens and integrations: one function the capture side calls.

``publish(kind, call)`` is called by the recorder's database thread and the worker
when a call starts ringing, is answered, changes, ends, or its recording is ready.
Delivery to browsers (WebSocket ``/ws/events/``) is implemented in
``callvault.apps.web.live``; this module only forwards, so that capture code does
not depend on the web app. Publishing must never raise into the caller: a live
event is a convenience, the call itself is already safe in the spool and database.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("callvault.live")

CALL_RINGING = "call.ringing"
CALL_ANSWERED = "call.answered"
CALL_UPDATED = "call.updated"
CALL_ENDED = "call.ended"
CALL_COMPLETED = "call.completed"  # the recording is ready (also the webhook event)


def publish(kind: str, call: Any) -> None:
    try:
        from callvault.apps.web.live import deliver
    except ImportError:  # the web app's delivery is not there yet
        return
    try:
        deliver(kind, call)
    except Exception:
        log.exception("x could not publish %s for call %s", kind, getattr(call, "pk", "?"))
