"""The OpenAPI 3.1 document, and schemathesis checking the running API against it.

schemathesis generates requests from the document (valid and invalid ones) for every operation and
checks each answer: no 5xx, a documented status code, a documented content type, a body that
matches the documented schema, 4xx for invalid input, 401 without credentials. It calls the Django
WSGI application in-process, authenticated with a bearer token; half of the generated call ids are
replaced by a real call (with a real recording) so that success answers are checked too.

One check is left out: "schema-valid data must be accepted". Some rules are about meaning, not
form, and no schema can state them: a cursor must be one this server issued (it is signed), ``to``
must not be before ``from``, a comment's offset must lie within that call's recording. Those
answer 400 naming the parameter, which the other checks verify is a documented answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from callvault.apps.calls.models import Comment
from callvault.apps.customers.services import CustomerInput, PhoneInput, create_customer
from tests.api.conftest import API, Cast, issue_token

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]


def document() -> dict[str, Any]:
    response = Client().get(f"{API}/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_the_document_is_openapi_3_1_and_describes_every_endpoint() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "callvault API"
    operations = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert operations == {
        ("/api/v1/me", "get"),
        ("/api/v1/calls", "get"),
        ("/api/v1/calls/{call_id}", "get"),
        ("/api/v1/calls/{call_id}/recording", "get"),
        ("/api/v1/calls/{call_id}/comments", "get"),
        ("/api/v1/calls/{call_id}/comments", "post"),
        ("/api/v1/calls/{call_id}/comments/{comment_id}", "delete"),
        ("/api/v1/tags", "get"),
        ("/api/v1/calls/{call_id}/tags", "post"),
        ("/api/v1/calls/{call_id}/tags", "delete"),
        ("/api/v1/customers", "get"),
        ("/api/v1/customers", "post"),
        ("/api/v1/customers/lookup", "get"),
        ("/api/v1/customers/{customer_id}", "get"),
        ("/api/v1/customers/{customer_id}", "patch"),
        ("/api/v1/customers/{customer_id}", "delete"),
        ("/api/v1/customers/{customer_id}/notes", "get"),
        ("/api/v1/customers/{customer_id}/notes", "post"),
        ("/api/v1/events", "post"),  # PBX call events (tests/pbx)
        ("/api/v1/events", "get"),
        ("/api/v1/uploads", "post"),
        ("/api/v1/uploads/{upload_id}", "get"),
        ("/api/v1/uploads/{upload_id}", "head"),
        ("/api/v1/uploads/{upload_id}", "patch"),
        ("/api/v1/uploads/{upload_id}", "delete"),
    }
    schemes = doc["components"]["securitySchemes"]
    assert (schemes["BearerTokenAuth"]["type"], schemes["BearerTokenAuth"]["scheme"]) == ("http", "bearer")
    session = schemes["SessionCsrfAuth"]
    assert (session["type"], session["in"], session["name"]) == ("apiKey", "cookie", "sessionid")
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert "401" in op["responses"], (path, method)
            if path == "/api/v1/events":  # a PBX integration's signature or token, never a user's
                assert op["security"] == [
                    {"PbxSignature": [], "PbxKey": []},
                    {"PbxToken": []},
                    {"PbxBearer": []},
                ]
                continue
            expected = [{"BearerTokenAuth": []}, {"SessionCsrfAuth": []}]
            if path.startswith("/api/v1/uploads"):  # recording devices upload with their own tokens
                expected = [{"DeviceTokenAuth": []}, *expected]
            assert op["security"] == expected, (path, method)


def test_the_list_parameters_and_errors_are_documented_with_their_limits() -> None:
    doc = document()
    params = {p["name"]: p for p in doc["paths"]["/api/v1/calls"]["get"]["parameters"]}
    assert set(params) == {
        "from", "to", "q", "direction", "state", "recording_state", "team", "agent", "tag",
        "min_duration", "max_duration", "limit", "cursor",
    }  # fmt: skip
    assert params["limit"]["schema"]["maximum"] == 200
    assert params["q"]["schema"]["maxLength"] == 100
    assert params["direction"]["schema"]["enum"] == ["in", "out", "internal", "unknown"]
    assert not any("null" in str(p["schema"]) for p in params.values())
    error = doc["components"]["schemas"]["ErrorOut"]
    assert set(error["required"]) == {"error", "message", "param"}
    recording = doc["paths"]["/api/v1/calls/{call_id}/recording"]["get"]["responses"]
    assert set(recording) >= {"200", "206", "404", "416"}
    assert set(recording["206"]["content"]) >= {
        "audio/ogg",
        "audio/flac",
        "audio/wav",
        "audio/mpeg",
        "audio/mp4",
    }


def test_the_document_describes_the_outgoing_webhooks() -> None:
    doc = document()
    completed = doc["webhooks"]["call.completed"]["post"]
    headers = {p["name"] for p in completed["parameters"]}
    assert headers == {"X-Callvault-Event", "X-Callvault-Delivery", "X-Callvault-Signature"}
    assert "5 分" in completed["description"]
    body = completed["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert schema["properties"]["data"]["properties"]["call"] == {"$ref": "#/components/schemas/CallDetail"}


def test_the_reference_page_works_offline() -> None:
    client = Client()
    page = client.get(f"{API}/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn" not in html.lower() and "https://" not in html
    for name in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-init.js"):
        assert f"{API}/docs/assets/{name}" in html
        asset = client.get(f"{API}/docs/assets/{name}")
        assert asset.status_code == 200
        assert len(b"".join(asset.streaming_content)) > 100
    assert client.get(f"{API}/docs/assets/..%2Fsettings.py").status_code == 404
    assert client.get(f"{API}/docs/assets/redoc.standalone.js.map").status_code == 404


# --- schemathesis --------------------------------------------------------------------------

EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 20}

# tus PATCH bodies (/api/v1/uploads/{upload_id}) are raw bytes, as application/octet-stream.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


# The test sends its own Authorization header, so a negative case whose only invalid part is
# that header would be checked as if it were valid data that the API "accepted".
OVERRIDDEN = {"Authorization"}


def mutated_parameters(case: Any) -> set[str]:
    """Names of the parameters a negative case made invalid (empty for positive cases)."""
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    names = {m.parameter for m in getattr(data, "mutations", None) or () if getattr(m, "parameter", None)}
    if getattr(data, "parameter", None):
        names.add(data.parameter)
    return names


@pytest.fixture
def keep_test_connection() -> Iterator[None]:
    """Serve in-process without closing the test's database connection after each request.

    Django's WSGI handler closes "old" connections when a request starts and ends, which would
    end the test transaction on PostgreSQL; Django's own test client disconnects it the same way.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def test_the_api_keeps_the_promises_of_its_document(
    cast: Cast, make_recording: Any, keep_test_connection: None
) -> None:
    make_recording(cast.call_a, seconds=2.0)
    Comment.objects.create(call=cast.call_a, author=cast.admin, text="既存のコメント", offset=0.5)
    token = issue_token(cast.admin, "schemathesis")
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", get_wsgi_application())
    real_call = str(cast.call_a.pk)
    real_customer = create_customer(
        CustomerInput(
            data={"name": "山田 太郎"}, phones=[PhoneInput("03-1234-5678")], owner_team_id=cast.team_a.pk
        ),
        user=cast.admin,
    ).pk
    checked: list[str] = []

    # The PBX events take no user token; tests/pbx/test_schemathesis.py runs them with a PBX's own.
    for result in schema.exclude(path="/api/v1/events").get_all_operations():
        operation = result.ok()
        for mode, examples in EXAMPLES.items():

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                params = case.path_parameters or {}
                mutated = mutated_parameters(case)
                excluded = [positive_data_acceptance]
                if mutated and mutated <= OVERRIDDEN:
                    # the invalid part is replaced below, so the request is a valid one: it must
                    # still answer as documented, but "invalid data accepted" would be a false alarm
                    excluded.append(negative_data_rejection)
                for name, real in (("call_id", real_call), ("customer_id", real_customer)):
                    if name in params and name not in mutated:
                        digest = hashlib.sha256(str(params[name]).encode()).digest()
                        if digest[0] % 2 == 0:
                            params[name] = real
                case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, excluded_checks=excluded)

            check()
            checked.append(f"{operation.method.upper()} {operation.path} ({mode.value})")
    assert len(checked) == 46, checked
