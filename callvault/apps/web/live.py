"""Live call events from the recorder and the worker to WebSocket clients of the web processes.

``deliver(kind, call)`` runs in the publishing process (the recorder's database thread, the
worker), never in the web server. Two transports, one consumer (``consumers.EventsConsumer``):

- ``REDIS_URL`` set (scale-out): the event is sent through the Channels layer (Redis pub/sub) to
  the group :data:`GROUP`, from a background thread of the publishing process so that a slow or
  absent Redis never holds up capture.
- embedded default (no Redis; the web server is another process): the event is written to the
  ``LiveEvent`` table. Each web process tails that table (:class:`Tailer`, at once when the
  publisher wakes it through ``livewake``, else every :data:`POLL_INTERVAL` seconds; started by
  the first WebSocket connection and stopped after the last) and feeds the events into its
  in-memory channel layer, to the same group.

Every consumer checks each event against its user's access (the team and agent carried in
the event, then :func:`callvault.apps.accounts.access.visible_calls` for the call id) before
forwarding it, so an event only reaches people who may see the call.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from callvault.apps.web import format as fmt
from callvault.apps.web import livewake

log = logging.getLogger("callvault.live")

GROUP = "callvault.calls"
MESSAGE_TYPE = "call.event"
POLL_INTERVAL = 0.15
BATCH = 500
GAP_PATIENCE = 10.0  # seconds to wait for an event id whose transaction has not committed yet
MAX_PENDING = 1000


def redis_enabled() -> bool:
    return bool(getattr(settings, "REDIS_URL", ""))


# --- what an event says ------------------------------------------------------------------------


def payload_of(kind: str, call: Any) -> dict[str, Any]:
    """The event as clients see it: only fields of the call itself (its viewers may see them)."""
    team = call.team if call.team_id else None
    agent = call.agent if call.agent_id else None
    return {
        "id": str(call.pk),
        "kind": kind,
        "state": call.state,
        "recording_state": call.recording_state,
        "direction": call.direction,
        "caller_number": fmt.number(call.caller_number),
        "caller_e164": call.caller_number,
        "caller_name": call.caller_name,
        "callee_number": fmt.number(call.callee_number),
        "callee_name": call.callee_name,
        "started_at": call.started_at.isoformat() if call.started_at else None,
        "duration": call.duration,
        "team": {"id": team.pk, "name": team.name} if team is not None else None,
        "agent": {"id": agent.pk, "name": fmt.user_label(agent)} if agent is not None else None,
        # Not in the database yet: a ringing call announced straight from the INVITE.
        "early": bool(getattr(getattr(call, "_state", None), "adding", False)),
    }


def message_of(
    kind: str, call_id: Any, team_id: Any, agent_id: Any, payload: dict[str, Any], event: str = ""
) -> dict[str, Any]:
    """The channel-layer message (``type`` routes it to ``EventsConsumer.call_event``).

    ``event`` identifies this one event (consumers of one process share work per event).
    """
    return {
        "type": MESSAGE_TYPE,
        "event": event or uuid.uuid4().hex,
        "kind": kind,
        "call_id": str(call_id),
        "team_id": team_id,
        "agent_id": agent_id,
        "payload": payload,
    }


def deliver(kind: str, call: Any) -> None:
    """Publish one call event (called through ``callvault.live.publish``, which logs failures)."""
    deliver_many([(kind, call)])


def deliver_many(events: list[tuple[str, Any]]) -> None:
    """Publish call events in order; on the embedded default in one transaction and one wake-up
    (a bulk ingest of hundreds of calls, see ``callvault.live.batched``)."""
    if not events:
        return
    rows = [(kind, call.pk, call.team_id, call.agent_id, payload_of(kind, call)) for kind, call in events]
    if redis_enabled():
        sender = _redis_sender()
        for kind, call_id, team_id, agent_id, payload in rows:
            sender.send(message_of(kind, call_id, team_id, agent_id, payload))
        return
    from callvault.apps.live.models import LiveEvent

    now = timezone.now()
    made = LiveEvent.objects.bulk_create(
        [
            LiveEvent(
                kind=kind,
                call_id=call_id,
                team_id=team_id,
                agent_id=agent_id,
                payload=payload,
                created_at=now,
            )
            for kind, call_id, team_id, agent_id, payload in rows
        ]
    )
    livewake.wake()
    last = made[-1].pk
    if last is not None and last % 100 < len(made):  # the ids of this write passed a multiple of 100
        trim()


NO_CALL = "00000000-0000-0000-0000-000000000000"


def deliver_access_changed() -> None:
    """Tell every web process that teams, memberships, lines or roles changed (see ``screenpop``)."""
    from callvault.apps.web.screenpop import ACCESS_CHANGED

    try:
        if redis_enabled():
            _redis_sender().send(message_of(ACCESS_CHANGED, NO_CALL, None, None, {}))
            return
        from callvault.apps.live.models import LiveEvent

        LiveEvent.objects.create(kind=ACCESS_CHANGED, call_id=NO_CALL, payload={}, created_at=timezone.now())
        livewake.wake()
    except Exception:  # the periodic re-check (LIVE_REVALIDATE_SECONDS) still catches up
        log.exception("x could not announce an access change to live connections")


def trim() -> int:
    """Remove events older than ``LIVE_EVENT_TTL``; returns how many."""
    from callvault.apps.live.models import LIVE_EVENT_TTL, LiveEvent

    deleted, _ = LiveEvent.objects.filter(created_at__lt=timezone.now() - LIVE_EVENT_TTL).delete()
    return deleted


# --- Redis: a sender thread per publishing process -------------------------------------------


class RedisSender:
    """Sends messages in order from its own event loop; drops (and logs) when Redis lags far behind."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue[dict[str, Any]] | None = None
        self.pending = 0
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="callvault-live-redis", daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.queue = asyncio.Queue()
        self.loop.create_task(self._pump())
        self.ready.set()
        self.loop.run_forever()

    def send(self, message: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self._enqueue, message)

    def _enqueue(self, message: dict[str, Any]) -> None:
        assert self.queue is not None
        if self.queue.qsize() >= MAX_PENDING:
            log.warning("! live events: Redis is not keeping up, dropped %s", message.get("kind"))
            return
        self.pending += 1
        self.queue.put_nowait(message)

    async def _pump(self) -> None:
        from channels.layers import get_channel_layer

        assert self.queue is not None
        while True:
            message = await self.queue.get()
            try:
                layer = get_channel_layer()
                if layer is None:
                    raise RuntimeError("no channel layer configured")
                await asyncio.wait_for(layer.group_send(GROUP, message), timeout=5)
            except Exception as exc:
                log.warning("! live event %s not sent through Redis: %s", message.get("kind"), exc)
            finally:
                self.pending -= 1

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until every queued message has been handed to Redis (at exit, in tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = asyncio.run_coroutine_threadsafe(self._empty(), self.loop)
            try:
                if done.result(timeout=max(0.01, deadline - time.monotonic())):
                    return True
            except Exception:
                return False
            time.sleep(0.02)
        return False

    async def _empty(self) -> bool:
        return self.pending == 0


_sender: RedisSender | None = None
_sender_lock = threading.Lock()


def _redis_sender() -> RedisSender:
    global _sender
    with _sender_lock:
        if _sender is None:
            _sender = RedisSender()
            atexit.register(_sender.flush)
        return _sender


def flush(timeout: float = 2.0) -> bool:
    return _sender.flush(timeout) if _sender is not None else True


# --- embedded: each web process tails the event table ----------------------------------------


class _Position:
    """How far one tailing task has read: the last id, and skipped ids that may still commit."""

    def __init__(self) -> None:
        self.last_id: int | None = None
        self.gaps: dict[int, float] = {}

    def advance(self, ids: list[int]) -> None:
        now = time.monotonic()
        last = self.last_id or 0
        for event_id in sorted(ids):
            self.gaps.pop(event_id, None)
            if event_id > last:
                for missing in range(last + 1, min(event_id, last + 1 + MAX_PENDING)):
                    self.gaps[missing] = now
                last = event_id
        self.last_id = last
        for event_id in [i for i, seen in self.gaps.items() if now - seen > GAP_PATIENCE]:
            del self.gaps[event_id]
        if len(self.gaps) > MAX_PENDING:
            for event_id in sorted(self.gaps)[: len(self.gaps) - MAX_PENDING]:
                del self.gaps[event_id]


class Tailer:
    """Polls ``LiveEvent`` for new rows and group-sends them into this process's channel layer.

    Runs while at least one WebSocket is connected. Event ids are handed out before commit, so
    on PostgreSQL a lower id can become visible after a higher one: ids skipped over are
    remembered for :data:`GAP_PATIENCE` seconds and looked for again.
    """

    def __init__(self) -> None:
        self.users = 0
        self.task: asyncio.Task[None] | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callvault-live-tail")

    async def acquire(self) -> None:
        self.users += 1
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            started = asyncio.Event()
            self.task = loop.create_task(self._run(started), name="callvault-live-tail")
            try:  # start from the newest event there is now, before the client can miss anything
                await asyncio.wait_for(started.wait(), timeout=5)
            except TimeoutError:
                log.warning("! live events: the event table did not answer within 5 s")

    def release(self) -> None:
        self.users = max(0, self.users - 1)

    async def _run(self, started: asyncio.Event) -> None:
        from channels.layers import get_channel_layer

        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        position = _Position()
        failures = 0
        waker = livewake.Listener(loop)  # publishers wake us when they write an event
        try:
            while self.users > 0:
                try:
                    if position.last_id is None:
                        position.last_id = await loop.run_in_executor(self.executor, _newest_id)
                        started.set()
                        continue
                    rows = await loop.run_in_executor(
                        self.executor, _events_after, position.last_id, list(position.gaps)
                    )
                    failures = 0
                except Exception as exc:
                    failures += 1
                    log.warning("! live events: reading the event table failed: %s", exc)
                    await loop.run_in_executor(self.executor, connection.close)
                    await asyncio.sleep(min(5.0, POLL_INTERVAL * 2**failures))
                    continue
                position.advance([r["id"] for r in rows])
                layer = get_channel_layer()
                for row in rows:
                    if layer is not None:
                        message = message_of(
                            row["kind"],
                            row["call_id"],
                            row["team_id"],
                            row["agent_id"],
                            row["payload"],
                            f"live-{row['id']}",
                        )
                        await layer.group_send(GROUP, message)
                if len(rows) >= BATCH:
                    await asyncio.sleep(0)
                else:
                    await waker.wait(POLL_INTERVAL)
        finally:
            waker.close()
            if self.task is me:  # no await between the last check of users and this
                self.task = None
            started.set()
            with contextlib.suppress(BaseException):  # the loop may be shutting down
                await loop.run_in_executor(self.executor, connection.close)


def _newest_id() -> int:
    from callvault.apps.live.models import LiveEvent

    newest = LiveEvent.objects.order_by("-id").values_list("id", flat=True).first()
    return int(newest or 0)


def _events_after(last_id: int, gaps: list[int]) -> list[dict[str, Any]]:
    from callvault.apps.live.models import LiveEvent

    cond = Q(id__gt=last_id)
    if gaps:
        cond |= Q(id__in=gaps)
    return list(
        LiveEvent.objects.filter(cond)
        .order_by("id")
        .values("id", "kind", "call_id", "team_id", "agent_id", "payload")[:BATCH]
    )


tailer = Tailer()


# --- who receives what ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Audience:
    """The calls a connection may hear about, by team and agent (mirrors ``visible_calls``).

    Only a quick pre-filter: every event that passes is checked again with the access helper.
    """

    everything: bool
    team_ids: frozenset[int]
    user_id: int | None
    group: Any = None  # users of one group see the same (``screenpop.group_of``)

    @classmethod
    def of(cls, user: Any) -> Audience:
        from callvault.apps.accounts import access
        from callvault.apps.accounts.models import TeamRole, UserRole
        from callvault.apps.web.screenpop import group_of

        role = access.role_of(user)
        if role == UserRole.ADMIN:
            return cls(True, frozenset(), user.pk, group_of(user, frozenset(), True))
        if role != UserRole.MEMBER:
            return cls(False, frozenset(), None, ("nobody",))
        teams = frozenset(
            m.team_id
            for m in user.memberships.select_related("team")
            if m.role == TeamRole.SUPERVISOR or m.team.share_calls
        )
        return cls(False, teams, user.pk, group_of(user, teams, False))

    def may_hear(self, team_id: Any, agent_id: Any) -> bool:
        if self.everything:
            return True
        if self.user_id is None:
            return False
        return (team_id is not None and team_id in self.team_ids) or (
            agent_id is not None and agent_id == self.user_id
        )


def may_see(user: Any, call_id: Any) -> bool:
    from callvault.apps.accounts import access

    try:
        return access.visible_calls(user).filter(pk=call_id).exists()
    except Exception:  # a malformed id is simply not visible
        return False
