"""Property-based fuzzing of every operation in the project's own OpenAPI document.

Schemathesis generates valid (positive) and invalid (negative) requests from /api/doc; every
response must be a non-5xx and, where the document gives a schema, match it. It runs against
its own server on its own database, because it calls destructive endpoints (clear, purge,
delete) freely.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support.server import LiveServer, fresh_database, start_server

# Examples per operation and mode: small, so the whole run stays near a minute on a shared machine.
MAX_EXAMPLES = 30


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[LiveServer]:
    """A server on a throwaway database that the fuzzer may wipe at will."""
    with fresh_database("relay_fuzz") as url, start_server(url) as server:
        yield server


def _bounded(case: Any) -> None:
    """Keep generated long-polls short: a parked request is correct, but slows the run down."""
    query = case.query or {}
    if "timeout" in query:
        try:
            if float(query["timeout"]) > 0.2:
                query["timeout"] = "0.2"
        except (TypeError, ValueError):
            pass


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_5xx_or_breaks_its_schema(fuzz_server: LiveServer, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(fuzz_server.api + "/doc")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30, "the OpenAPI document should describe every endpoint"
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            _bounded(case)
            case.call_and_validate(base_url=fuzz_server.api, timeout=30,
                                   checks=[not_a_server_error, response_schema_conformance])

        try:
            fuzz()
        except Unsatisfiable:
            pass  # no parameters and no body: nothing to make invalid in negative mode
        except (Exception, BaseExceptionGroup) as exc:  # collect every failing operation, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:2000]}")
    assert not failures, "\n\n".join(failures)
