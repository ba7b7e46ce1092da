"""Schemathesis against the OpenAPI document the real stack serves, over HTTP.

Every operation gets generated requests, valid and invalid: none may answer 5xx, and every
answer must be a documented status with a body matching its schema. Bounded: a few
examples per operation. POST /v1/admin/batch and /v1/admin/replay are left out of
generation (each call would start a real job on the shared stack);
tests/integration/test_api.py covers the batch trigger's 202, 401 and 409 answers.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.stack import Stack

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 12
REQUEST_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def api_schema(stack: Stack) -> Any:
    return schemathesis.openapi.from_url(f"{stack.base_url}/openapi.json", timeout=30)


# Operations that start real jobs on the shared stack: their own tests cover them.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(
    method="POST", path_regex=r"^/v1/admin/(batch|replay)$"
)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema(case: Any, stack: Stack) -> None:
    case.call_and_validate(
        base_url=stack.base_url,
        headers=stack.admin_headers,
        checks=CHECKS,
        timeout=REQUEST_TIMEOUT_S,
    )
