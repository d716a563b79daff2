"""tus against the real server (``callvault web``, uvicorn, ASGI) over loopback sockets.

A connection that breaks in the middle of a PATCH body stores nothing of that chunk (the
server never sees a partial body under ASGI); HEAD reports the bytes that are safely stored and
the client resumes from there. An oversized upload is refused before its body is read.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port
from tests.uploads.conftest import make_audio

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "callvault.cli"]


@dataclass
class Server:
    port: int
    token: str
    data_dir: Path

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Tus-Resumable": "1.0.0", **extra}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("tus-server")
    env = {**os.environ, "CALLVAULT_DATA_DIR": str(data), "CALLVAULT_UPLOAD_MAX_MB": "2"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    subprocess.run([*CLI, "manage", "migrate", "-v0"], env=env, check=True, timeout=120)
    make_team = "from callvault.apps.accounts.models import Team; Team.objects.create(name='営業部')"
    subprocess.run([*CLI, "manage", "shell", "-c", make_team], env=env, check=True, timeout=60)
    token = subprocess.run(
        [*CLI, "manage", "create_device", "テスト端末", "--team", "営業部"],
        env=env, check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    port = free_port()
    log = (data / "web.log").open("wb")
    proc = subprocess.Popen([*CLI, "web", "--http-port", str(port)], env=env, stdout=log, stderr=log)
    try:
        for _ in range(150):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield Server(port, token, data)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def meta() -> str:
    items = {"started_at": "2026-11-27T14:05:00+09:00", "caller": "0312345678", "callee": "201"}
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in items.items())


def test_a_broken_connection_mid_chunk_resumes_from_the_stored_offset(server: Server, tmp_path: Path) -> None:
    data = make_audio(tmp_path, "wav", seconds=20.0).read_bytes()  # 640 KB
    conn = server.conn()
    conn.request(
        "POST",
        "/api/v1/uploads",
        headers=server.headers(**{"Upload-Length": str(len(data)), "Upload-Metadata": meta()}),
    )
    created = conn.getresponse()
    created.read()
    assert created.status == 201
    path = created.getheader("Location", "").split(str(server.port), 1)[1]
    first = 200_000
    conn.request("PATCH", path, body=data[:first], headers=server.headers(**{
        "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}))  # fmt: skip
    response = conn.getresponse()
    response.read()
    assert (response.status, response.getheader("Upload-Offset")) == (204, str(first))
    # The next chunk: the connection dies after half of its body.
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    rest = data[first:]
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: {first}\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {len(rest)}\r\n\r\n"
    ).encode()
    raw.sendall(head + rest[: len(rest) // 2])
    raw.close()
    time.sleep(0.5)
    conn = server.conn()
    conn.request("HEAD", path, headers=server.headers())
    offset = conn.getresponse()
    offset.read()
    assert offset.status == 200 and offset.getheader("Upload-Offset") == str(first)
    conn.request("PATCH", path, body=rest, headers=server.headers(**{
        "Upload-Offset": str(first), "Content-Type": "application/offset+octet-stream"}))  # fmt: skip
    done = conn.getresponse()
    done.read()
    assert done.status == 204 and done.getheader("Upload-Offset") == str(len(data))
    call_id = done.getheader("Callvault-Call-Id")
    conn.request("GET", path, headers=server.headers())
    status = json.loads(conn.getresponse().read())
    assert status["state"] == "complete" and status["call_id"] == call_id
    assert status["recording"]["bytes"] == len(data) and abs(status["recording"]["duration"] - 20.0) < 0.01


def test_an_oversized_upload_is_refused_before_its_body_is_read(server: Server) -> None:
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    raw.sendall(
        (
            f"POST /api/v1/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.token}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 50000000\r\n\r\n"
        ).encode()
    )
    answer = raw.recv(4096).decode("utf-8", "replace")  # no body was sent: the answer comes anyway
    raw.close()
    assert answer.startswith("HTTP/1.1 413")
    assert "payload_too_large" in answer
    staging = server.data_dir / "uploads" / "staging"
    assert not staging.exists() or [p for p in staging.iterdir() if p.suffix == ".tmp"] == []
