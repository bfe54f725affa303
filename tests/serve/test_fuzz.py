"""Property-based fuzzing of the served OpenAPI spec: no generated request, valid or not, gets a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from conftest import Api

# Every operation the API serves, named as schemathesis labels them; a missing one fails the coverage check below.
OPERATIONS = [
    "GET /health",
    "GET /metrics",
    "POST /events",
    "DELETE /users/{user_id}",
    "POST /search",
    "GET /users/{user_id}/recommendations",
    "GET /users/{user_id}/profile",
    "GET /items/{item_id}/similar",
    "POST /items",
    "GET /suggest",
    "GET /merchandising/rules",
    "POST /merchandising/rules",
    "DELETE /merchandising/rules/{rule_id}",
    "GET /merchandising/audit",
    "GET /analytics/search",
    "GET /users/{user_id}/recommendations/explained",
    "GET /console",
]


@pytest.fixture(scope="module")
def api_schema(api: Api) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json")


def test_fuzzing_covers_every_operation(api_schema: schemathesis.BaseSchema) -> None:
    assert sorted(result.ok().label for result in api_schema.get_all_operations()) == sorted(OPERATIONS)


# Negative mode breaks a request's inputs; /health, /metrics and /console take none, so there is nothing to break.
CASES = [(label, mode) for label in OPERATIONS for mode in GenerationMode if mode.is_positive or label not in ("GET /health", "GET /metrics", "GET /console")]


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{label} {mode.value}" for label, mode in CASES])
def test_no_generated_request_gets_a_server_error(api_schema: schemathesis.BaseSchema, api: Api, label: str, mode: GenerationMode) -> None:
    operation = next(result.ok() for result in api_schema.get_all_operations() if result.ok().label == label)

    # derandomize: the same 200 examples every run, so a failure reproduces and the run time is bounded.
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def no_server_error(case: schemathesis.Case) -> None:
        # An admin key reaches every handler; without one nearly every request would stop at the 401 check.
        response = case.call(headers=api.headers("admin"), timeout=30)
        assert response.status_code < 500, f"{case.method} {case.formatted_path} {case.body!r}: {response.status_code} {response.text[:300]}"

    no_server_error()
