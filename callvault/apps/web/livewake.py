"""Wake the web processes' event tailers at once when a live event is written (embedded default).

Without Redis, each web process polls the event table every ``POLL_INTERVAL`` (0.15 s): on
average 75 ms, at worst 150 ms, of a screen-pop's time budget. A tailing web process listens on a
loopback UDP port and registers it as ``<data dir>/run/live-wake/<pid>.port``; the publishing
process (recorder, worker), after writing an event, sends one byte to every registered port.
The tailer then reads the table at once. A lost or forged datagram only causes one read more or
one read later; polling goes on regardless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from pathlib import Path

from django.conf import settings

log = logging.getLogger("callvault.live")

PORTS_TTL = 1.0  # seconds the publisher trusts its list of registered ports


def wake_dir() -> Path:
    return Path(settings.DATA_DIR) / "run" / "live-wake"


class Listener:
    """One per tailing task: an event that is set when a wake-up datagram arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()
        self.sock: socket.socket | None = None
        self.path: Path | None = None
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            folder = wake_dir()
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{os.getpid()}-{id(self):x}.port"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(str(sock.getsockname()[1]))
            tmp.replace(path)
            loop.add_reader(sock.fileno(), self._readable)
            self.sock, self.path = sock, path
        except OSError as exc:  # a read-only data dir: polling alone still delivers
            log.warning("! live events: no wake-up port (%s); polling only", exc)
            with contextlib.suppress(Exception):
                sock.close()

    def _readable(self) -> None:
        assert self.sock is not None
        with contextlib.suppress(OSError):
            while True:
                self.sock.recv(64)
        self.event.set()

    async def wait(self, timeout: float) -> None:
        """Until woken or ``timeout`` seconds pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.path = None


class _Sender:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.ports: dict[Path, int] = {}
        self.read_at = 0.0

    def wake(self) -> None:
        with self.lock:
            now = time.monotonic()
            if now - self.read_at > PORTS_TTL:
                self.ports = _registered()
                self.read_at = now
            if not self.ports:
                return
            if self.sock is None:
                self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.sock.setblocking(False)
            for path, port in list(self.ports.items()):
                try:
                    self.sock.sendto(b"!", ("127.0.0.1", port))
                except OSError:  # gone, or its buffer is full (it is reading anyway)
                    if not path.exists():
                        self.ports.pop(path, None)


def _registered() -> dict[Path, int]:
    ports: dict[Path, int] = {}
    with contextlib.suppress(OSError):
        for path in wake_dir().glob("*.port"):
            try:
                pid = int(path.name.split("-", 1)[0])
                os.kill(pid, 0)  # still running?
            except (ValueError, ProcessLookupError):
                with contextlib.suppress(OSError):
                    path.unlink()  # left behind by a process that died
                continue
            except PermissionError:
                pass  # running as another user
            with contextlib.suppress(OSError, ValueError):
                ports[path] = int(path.read_text())
    return ports


_sender = _Sender()


def wake() -> None:
    """Tell every tailing web process that an event was written (never raises)."""
    try:
        _sender.wake()
    except Exception as exc:
        log.debug("x live wake-up not sent: %s", exc)
