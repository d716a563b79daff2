#!/usr/bin/env python3
"""Asterisk / FreePBX → callvault: turn AMI call events into signed ``POST /api/v1/events``.

Standard library only (Python 3.9+); run it next to Asterisk, for example as a systemd service:

    CALLVAULT_PBX_SECRET=pbxsec_... python3 callvault_ami_bridge.py \\
        --ami-host 127.0.0.1 --ami-user callvault --ami-secret-file /etc/callvault-ami.secret \\
        --url https://callvault.example.co.jp/api/v1/events --key pbx_0123456789ab

AMI user (``/etc/asterisk/manager.conf``, FreePBX: ``manager_custom.conf``)::

    [callvault]
    secret = <a long random password>
    deny = 0.0.0.0/0.0.0.0
    permit = 127.0.0.1/255.255.255.255
    read = call
    write =

How AMI events map (one PBX call = one Asterisk ``Linkedid``):

- ``DialBegin`` (first one of a call)          → ``ringing`` (caller, callee, the dialled extension)
- ``DialEnd`` with ``DialStatus: ANSWER``      → ``answered`` (the extension that answered)
- ``BlindTransfer`` / ``AttendedTransfer``     → ``transfer`` (the new extension)
- ``Hangup`` of the call's first channel       → ``ended`` (``reason`` = the last DialStatus, so
  NOANSWER / BUSY / CANCEL make it a missed call in callvault)

Every event carries an ``event_id`` (Linkedid + kind + time), so a resend after a network error is
applied once. Events that cannot be delivered are kept in memory and retried with back-off (10 s
up to 5 min); on exit the ones still waiting are written to ``--spool`` and sent at the next start.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

log = logging.getLogger("callvault-ami-bridge")

Message = Dict[str, str]
Event = Dict[str, Any]

_ENDPOINT_RE = re.compile(r"^(?:PJSIP|SIP|IAX2|Local|DAHDI)/([^-@/;]+)")


def read_messages(sock: socket.socket) -> Iterator[Message]:
    """AMI messages ("Key: value" lines ended by an empty line) from a connected socket."""
    buffer = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return
        buffer += chunk
        while b"\r\n\r\n" in buffer:
            raw, buffer = buffer.split(b"\r\n\r\n", 1)
            message: Message = {}
            for line in raw.decode("utf-8", "replace").split("\r\n"):
                key, sep, value = line.partition(":")
                if sep:
                    message[key.strip()] = value.strip()
            if message:
                yield message


def extension_of(channel: str) -> str:
    """``PJSIP/201-0000002a`` → ``201``."""
    match = _ENDPOINT_RE.match(channel or "")
    return match.group(1) if match else ""


def _number(value: str) -> str:
    return "" if value in ("", "<unknown>", "s") else value


class Bridge:
    """Folds AMI messages into callvault events (state per Linkedid)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.calls: Dict[str, Dict[str, Any]] = {}

    def _event(self, kind: str, linkedid: str, **fields: Any) -> Event:
        now = self.clock()
        event: Event = {"event": kind, "call_id": linkedid, "time": round(now, 3)}
        event.update({k: v for k, v in fields.items() if v not in (None, "")})
        event["event_id"] = f"ami-{linkedid}-{kind}-{int(now * 1000)}"
        return event

    def feed(self, m: Message) -> List[Event]:
        kind = m.get("Event", "")
        linkedid = m.get("Linkedid") or m.get("DestLinkedid") or m.get("TransfererLinkedid") or ""
        if not linkedid:
            return []
        call = self.calls.get(linkedid)
        if kind == "DialBegin":
            if call is not None:
                call["extensions"].append(extension_of(m.get("DestChannel", "")))
                return []
            call = self.calls[linkedid] = {"answered": False, "status": "", "extensions": []}
            extension = extension_of(m.get("DestChannel", ""))
            call["extensions"].append(extension)
            call["origin"] = m.get("Uniqueid", "")
            return [
                self._event(
                    "ringing",
                    linkedid,
                    caller=_number(m.get("CallerIDNum", "")),
                    caller_name=_number(m.get("CallerIDName", "")),
                    callee=_number(m.get("DialString", "").split("@")[0].split("/")[-1]) or extension,
                    extension=extension,
                    direction=(m.get("Context", "") or "").startswith("from-internal") and "out" or "in",
                )
            ]
        if call is None:
            return []
        if kind == "DialEnd":
            call["status"] = m.get("DialStatus", "")
            if m.get("DialStatus") == "ANSWER" and not call["answered"]:
                call["answered"] = True
                return [self._event("answered", linkedid, extension=extension_of(m.get("DestChannel", "")))]
            return []
        if kind in ("BlindTransfer", "AttendedTransfer"):
            target = m.get("Extension") or extension_of(m.get("SecondTransfererChannel", ""))
            return [self._event("transfer", linkedid, transfer_to=target)] if target else []
        if kind == "Hangup" and m.get("Uniqueid") in (linkedid, call.get("origin")):
            del self.calls[linkedid]
            reason = "ANSWER" if call["answered"] else (call["status"] or "NOANSWER")
            return [self._event("ended", linkedid, reason=reason, answered=call["answered"])]
        return []


def signed_request(
    url: str, key: str, secret: str, event: Event, now: Optional[float] = None
) -> Tuple[bytes, Dict[str, str]]:
    """The body and headers of one signed event (callvault's webhook signature scheme)."""
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    t = int(time.time() if now is None else now)
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-Callvault-Key": key,
        "X-Callvault-Signature": f"t={t},v1={mac}",
    }


class Sender:
    """Posts events in order; keeps and retries the ones that fail (4xx other than 401 are dropped)."""

    def __init__(self, url: str, key: str, secret: str) -> None:
        self.url, self.key, self.secret = url, key, secret
        self.queue: deque = deque()
        self.next_try = 0.0
        self.delay = 10.0

    def post(self, event: Event) -> int:
        body, headers = signed_request(self.url, self.key, self.secret, event)
        request = urllib.request.Request(self.url, body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def send(self, events: List[Event]) -> None:
        self.queue.extend(events)
        self.flush()

    def flush(self) -> None:
        if time.time() < self.next_try:
            return
        while self.queue:
            event = self.queue[0]
            try:
                status = self.post(event)
            except OSError as exc:
                status = 0
                log.warning("x callvault unreachable (%s); %d event(s) waiting", exc, len(self.queue))
            if 200 <= status < 300 or status in (400, 409, 413):
                if status >= 400:
                    log.error("x callvault refused %s %s (HTTP %d)", event["event"], event["call_id"], status)
                self.queue.popleft()
                self.delay = 10.0
                continue
            self.next_try = time.time() + self.delay
            self.delay = min(self.delay * 2, 300.0)
            return


def run(args: argparse.Namespace) -> int:
    secret = os.environ.get("CALLVAULT_PBX_SECRET", "")
    if not secret:
        print("callvault-ami-bridge: set CALLVAULT_PBX_SECRET to the integration's secret", file=sys.stderr)
        return 2
    ami_secret = (
        open(args.ami_secret_file).read().strip()
        if args.ami_secret_file
        else os.environ.get("AMI_SECRET", "")
    )
    sender = Sender(args.url, args.key, secret)
    if args.spool and os.path.exists(args.spool):
        with open(args.spool) as fh:
            sender.queue.extend(json.load(fh))
        os.unlink(args.spool)
    bridge = Bridge()
    try:
        while True:
            try:
                with socket.create_connection((args.ami_host, args.ami_port), timeout=30) as sock:
                    sock.settimeout(None)
                    sock.sendall(
                        f"Action: Login\r\nUsername: {args.ami_user}\r\nSecret: {ami_secret}\r\n"
                        "Events: call\r\n\r\n".encode()
                    )
                    log.info("connected to AMI %s:%s", args.ami_host, args.ami_port)
                    for message in read_messages(sock):
                        if message.get("Response") == "Error":
                            print(
                                f"callvault-ami-bridge: AMI login failed: {message.get('Message')}",
                                file=sys.stderr,
                            )
                            return 1
                        sender.send(bridge.feed(message))
            except OSError as exc:
                log.warning("x AMI connection lost (%s); reconnecting in 5 s", exc)
            sender.flush()
            time.sleep(5)
    except KeyboardInterrupt:
        return 0
    finally:
        if args.spool and sender.queue:
            with open(args.spool, "w") as fh:
                json.dump(list(sender.queue), fh)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Send Asterisk AMI call events to callvault (signed).")
    parser.add_argument("--ami-host", default="127.0.0.1")
    parser.add_argument("--ami-port", type=int, default=5038)
    parser.add_argument("--ami-user", default="callvault")
    parser.add_argument("--ami-secret-file", help="file holding the AMI password (else $AMI_SECRET)")
    parser.add_argument("--url", required=True, help="https://<callvault>/api/v1/events")
    parser.add_argument("--key", required=True, help="the integration's key (pbx_...)")
    parser.add_argument("--spool", default="", help="file to keep unsent events across restarts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
