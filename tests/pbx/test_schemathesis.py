"""schemathesis over /api/v1/events with a real PBX token: valid and invalid events from the
OpenAPI document must get documented answers (never a 5xx), invalid ones 4xx.

As in tests/api/test_openapi.py, "schema-valid data must be accepted" is left out: some rules are
about meaning (a time within the last 30 days, a phone number in a caller field) and answer 400
naming the field, which the other checks verify is a documented answer. That valid events are
accepted is asserted at the end and, field by field, in test_events.py. Invalid data must get a
4xx (asserted here rather than by schemathesis, which does not count 414 URI Too Long)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from callvault.apps.calls.models import Call
from callvault.apps.pbx.models import Integration
from tests.api.conftest import API
from tests.api.test_openapi import keep_test_connection  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]


def test_the_events_endpoint_keeps_the_promises_of_its_document(
    token_integration: Integration,
    keep_test_connection: None,  # noqa: F811
) -> None:
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", get_wsgi_application())
    token = token_integration.secret
    checked = []
    for result in schema.include(path="/api/v1/events").get_all_operations():
        operation = result.ok()
        for mode, examples in {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 25}.items():

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                # A query string over 4 KiB answers 414 (api/urls.py), which schemathesis does not count
                # as a rejection of invalid data; any 4xx is one here, asserted below.
                response = case.call_and_validate(
                    headers={"X-Callvault-Token": token},
                    excluded_checks=[positive_data_acceptance, negative_data_rejection],
                )
                if mode == GenerationMode.NEGATIVE:  # noqa: B023 (called at once)
                    assert 400 <= response.status_code < 500, (
                        response.status_code,
                        response.text,
                        case.body,
                        case.query,
                        case.headers,
                    )

            check()
            checked.append(f"{operation.method} {mode.value}")
    assert len(checked) == 4
    assert Call.objects.filter(source="pbx").exists()  # valid events really made calls
