"""tesoro follows its own OpenAPI document: schemathesis over every operation, authenticated.

Every generated case (positive and negative, from examples, the coverage phase and
fuzzing) is sent in-process to a fresh app on the sandbox with a write-scoped key, and
every response is checked: no server error, a declared status code, the declared content
type and headers, a body that matches the response schema, and invalid input refused.
The sandbox's upstreams are healthy, so no 5xx is expected at all.
"""

from __future__ import annotations

import contextlib
import copy
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import schemathesis
from fastapi import FastAPI
from pydantic import SecretStr
from schemathesis.core.failures import AcceptedNegativeData, FailureGroup
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.schemas import OpenApiSchema

from app.cli import openapi_settings
from app.main import create_app
from app.sandbox.wiring import sandbox_transport
from tests.support.keys import WRITE_KEY, reader_and_writer

# Fixed seed: the same cases every run, so a finding is reproducible and CI is not flaky.
SEED = 20261123
# Per operation and per hypothesis-driven phase; keeps the module to about half a minute.
MAX_EXAMPLES = 100
VALID_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# Below this, generation broke (a filter, a config change) and the test proves little.
MIN_CASES = 300


# History is on, as by default, in a store of this run's own (never a file in the checkout).
HISTORY_STORE = Path(tempfile.mkdtemp(prefix="tesoro-contract-")) / "history.db"


def _fresh_app() -> FastAPI:
    # Defaults only, whatever TESORO_* the environment holds: the app serves the committed spec.
    settings = openapi_settings(
        api_keys=reader_and_writer(),
        history_enabled=True,
        database_url=SecretStr(f"sqlite:///{HISTORY_STORE}"),
    )
    return create_app(settings, transport=sandbox_transport())


def _load() -> OpenApiSchema:
    # Built at collection, because schemathesis' lazy `from_fixture` loader reads a private
    # pytest attribute that pytest 9 no longer has. The app is new for each test run, and
    # its lifespan (clients, caches) starts and stops around each operation's test.
    app = _fresh_app()
    schema = schemathesis.openapi.from_dict(
        # The document the app serves (equal to the committed one, see test_spec).
        copy.deepcopy(app.openapi()),
        config=schemathesis.Config.from_dict(
            {
                "seed": SEED,
                "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
                "auth": {"openapi": {"bearerAuth": {"bearer": WRITE_KEY}}},
            }
        ),
    )
    schema.app = app
    return schema


# Server-sent events never end by themselves, and an in-process client reads an answer to its
# end: GET /events is held to its spec over a real socket instead (tests/api/test_events.py).
STREAMS = ["/events"]
contract = _load().exclude(path=STREAMS)


@dataclass
class Tally:
    """The cases sent per operation, and the status codes they got back."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    def succeeded(self, label: str) -> int:
        return sum(n for (op, status), n in self.statuses.items() if op == label and status < 300)


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    """Reported at the end, and checked: every operation answered, and answered with data."""
    found = Tally()
    yield found
    total = found.cases.total()
    summary = ", ".join(f"{label}: {n}" for label, n in sorted(found.cases.items()))
    # Shown even when output is captured: the count is part of the test's evidence.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\nschemathesis cases against tesoro: {total} ({summary})")
    if request.session.testsfailed or set(found.cases) != OPERATIONS:
        return  # a failure, or a subset of the operations selected: nothing more to prove
    assert total >= MIN_CASES, f"only {total} schemathesis cases were generated"
    # A key that did not work would turn every case into an (accepted, documented) 401.
    assert [label for label in OPERATIONS if not found.succeeded(label)] == [], found.statuses


OPERATIONS = {
    f"{method.upper()} {path}"
    for path, methods in contract.raw_schema["paths"].items()
    for method in methods
    if path not in STREAMS
}


def _one_idempotency_key_per_case(case: schemathesis.Case[Any], n: int) -> None:
    # The contract answers 422 to a key reused with a different body, and the generator
    # reuses short keys ("0") freely: give each case its own key. A key that is not valid
    # stays as generated, so a negative case keeps the flaw it was built with.
    if case.headers is None:
        return
    key = case.headers.get("idempotency-key")
    if isinstance(key, str) and VALID_IDEMPOTENCY_KEY.fullmatch(key):
        case.headers["idempotency-key"] = f"{n}-{key}"[:255]


@contract.parametrize()
def test_tesoro_follows_its_spec(case: schemathesis.Case[Any], tally: Tally) -> None:
    tally.cases[case.operation.label] += 1
    _one_idempotency_key_per_case(case, tally.cases.total())
    response = case.call()
    tally.statuses[case.operation.label, response.status_code] += 1
    try:
        case.validate_response(response)
    except FailureGroup as failures:
        if _only_a_rate_date_after_today(failures, response):
            return
        if _only_rejected_instants(failures, response):
            return
        if not (_only_accepted_negative_data(failures) and _query_sent_is_valid(case, response)):
            raise


def _only_a_rate_date_after_today(failures: FailureGroup, response: Any) -> bool:
    """A rate date after today (UTC) is refused by the contract, which a schema cannot say
    (its pattern and format accept any date of the century): such a 422 is no failure."""
    if response.status_code != 422 or not all(
        isinstance(failure, RejectedPositiveData) for failure in failures.exceptions
    ):
        return False
    errors = response.json().get("errors") or [{}]
    return all(
        error.get("location") in (["query", "rate_date"], ["query", "date"])
        and "after today in UTC" in error.get("message", "")
        for error in errors
    )


# History's questions: a schema cannot say "not in the future", "at most 10,000 points" or
# "a zone this system knows" (each a 422 naming the parameter).
HISTORY_PARAMETERS = frozenset({"as_of", "from", "to", "since", "until", "tz"})


def _only_rejected_instants(failures: FailureGroup, response: Any) -> bool:
    """A schema-valid history question refused for what its schema cannot say."""
    if not all(isinstance(failure, RejectedPositiveData) for failure in failures.exceptions):
        return False
    if response.status_code != 422:
        return False
    errors = response.json().get("errors", [])
    return bool(errors) and all(
        error["location"][:1] == ["query"] and error["location"][-1] in HISTORY_PARAMETERS
        for error in errors
    )


def _only_accepted_negative_data(failures: FailureGroup) -> bool:
    return all(isinstance(failure, AcceptedNegativeData) for failure in failures.exceptions)


def _query_sent_is_valid(case: schemathesis.Case[Any], response: Any) -> bool:
    """Whether the query the request carried, read as the text it is, is valid after all.

    A query string holds only text: a negative case that puts JSON `true` where a string is
    due sends `true`, which may be a perfectly valid string (a currency code, say).
    schemathesis forgives such a mutation of one parameter, not of two at once; this
    forgives it when every parameter sent is valid text and every required one is there.
    """
    sent: dict[str, list[str]] = {}
    for name, value in parse_qsl(urlsplit(str(response.request.url)).query, True):
        sent.setdefault(name, []).append(value)
    declared = {p.name: p.definition for p in case.operation.query}
    if set(sent) - set(declared):
        return False
    for name, definition in declared.items():
        schema = definition.get("schema", {})
        if name not in sent:
            if definition.get("required", False):
                return False
            continue
        values = sent[name]
        item = _string_schema(schema, case.operation.schema.raw_schema["components"]["schemas"])
        if item is None or (not _is_array(schema) and len(values) != 1):
            return False
        if not all(_valid_text(value, item) for value in values):
            return False
    return True


def _is_array(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(option.get("type") == "array" for option in options)


def _string_schema(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any] | None:
    """The string (or string enum) form a parameter, or its items, accept, if text at all."""
    for option in schema.get("anyOf", [schema]):
        ref = option.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            option = components[ref.removeprefix("#/components/schemas/")]
        if option.get("type") == "array":
            return _string_schema(option.get("items", {}), components)
        if option.get("type") == "string" or "enum" in option:
            return dict(option)
    return None


def _valid_text(value: str, schema: dict[str, Any]) -> bool:
    if "enum" in schema and value not in schema["enum"]:
        return False
    if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 10**9):
        return False
    pattern = schema.get("pattern")
    return pattern is None or re.search(pattern, value) is not None
