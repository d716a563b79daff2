"""End to end: a real recorder and worker, a real SIPREC test call, a real receiver on 127.0.0.1.

Proves the wiring that unit tests cannot: the worker process runs the webhook job (registered at
start-up, not discovered later), the job is queued after the recording's commit, and the POST that
arrives is signed with the webhook's secret and describes the call the recorder just stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from callvault.apps.webhooks import signing
from tests.api.receiver import Receiver, running_receiver
from tests.e2e.conftest import Server, cli, server_factory  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e

CREATE_WEBHOOK = """
from callvault.apps.webhooks.models import Webhook
hook = Webhook.objects.create(name="e2e", url={url!r}, events=["call.completed"])
print(hook.secret)
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()


def test_a_finished_call_is_posted_signed_to_the_receiver(
    server_factory: Callable[..., Server],  # noqa: F811  (the imported fixture)
    receiver: Receiver,
) -> None:
    server = server_factory(CALLVAULT_BASE_URL="https://rec.example.co.jp")
    out = cli(server.data_dir, "manage", "shell", "-v", "0", "-c", CREATE_WEBHOOK.format(url=receiver.url))
    secret = out.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    # The worker was started before the webhook existed: it reads the table at delivery time.
    cli(server.data_dir, "test-call", f"127.0.0.1:{server.sip_port}", "--seconds", "2")
    [call] = server.wait_calls(1, timeout=40)

    deadline = time.monotonic() + 30
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.1)
    assert receiver.requests, "no webhook arrived\n" + server.log("worker")[-3000:]
    [request] = receiver.requests
    assert request.headers["X-Callvault-Event"] == "call.completed"
    assert signing.verify(secret, request.headers["X-Callvault-Signature"], request.body)
    payload = json.loads(request.body)
    sent = payload["data"]["call"]
    assert sent["id"] == call["id"]
    assert sent["recording_state"] == "ready"
    assert sent["caller"]["display"] == "03-1234-5678"
    assert sent["recording"]["channel_map"] == {"left": "caller", "right": "callee"}
    assert sent["recording"]["download_url"] == (
        f"https://rec.example.co.jp/api/v1/calls/{call['id']}/recording"
    )
    assert secret not in server.log("worker")
