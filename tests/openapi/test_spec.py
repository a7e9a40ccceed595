"""The committed OpenAPI document is what the app serves, and it is a contract worth having."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from starlette.testclient import TestClient

from app.cli import main, openapi_document, openapi_settings
from app.main import create_app
from app.sandbox import FINQWARE_CLIENT_ID, FINQWARE_CLIENT_SECRET, FINSYNC_API_KEY
from app.sandbox.data import SANDBOX_CONSENTS
from tests.support.keys import READ_KEY, WRITE_KEY, sha256

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"

PROTECTED = {
    ("get", "/counterparties"): "read",
    ("get", "/counterparties/{counterparty_id}"): "read",
    ("post", "/counterparties"): "write",
    ("get", "/positions"): "read",
    ("get", "/events"): "read",
}
PUBLIC = {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")}

# A property with one of these names holds money: never a JSON number.
MONEY_NAMES = {
    "amount",
    "assets",
    "liabilities",
    "net",
    "cash",
    "overdraft",
    "receivable",
    "payable",
    "available",
    "credit_line",
    "reported",
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return openapi_document()


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = spec["components"]["schemas"][name]
    return schema


def test_committed_spec_is_what_the_app_serves(spec: dict[str, Any]) -> None:
    assert COMMITTED.exists(), "openapi/openapi.json is missing: run `make openapi`"
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == spec, (
        "openapi/openapi.json differs from the spec the app serves: run `make openapi` "
        "and commit the result (and check the change is compatible, see the README)"
    )


def test_served_spec_is_the_exported_one(spec: dict[str, Any]) -> None:
    with TestClient(create_app(openapi_settings())) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == spec


def test_export_ignores_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TESORO_PUBLIC_BASE_URL", "https://tesoro.example.internal")
    monkeypatch.setenv("TESORO_API_KEYS", '{"x": {"sha256": "' + "0" * 64 + '"}}')
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("TESORO_PUBLIC_BASE_URL=https://from-dotenv.example\n")
    output = tmp_path / "spec.json"

    assert main(["openapi", "--output", str(output)]) == 0

    exported = json.loads(output.read_text(encoding="utf-8"))
    assert exported["servers"] == [
        {"url": "http://127.0.0.1:8000", "description": "This deployment"}
    ]
    assert exported == json.loads(COMMITTED.read_text(encoding="utf-8"))


def test_export_is_byte_for_byte_stable(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    main(["openapi", "--output", str(first)])
    main(["openapi", "--output", str(second)])
    assert first.read_bytes() == second.read_bytes()


def test_spec_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    validate(spec)
    assert spec["openapi"].startswith("3.1")


def test_operation_ids_are_readable(spec: dict[str, Any]) -> None:
    ids = {(method, path): op["operationId"] for method, path, op in operations(spec)}
    assert ids == {
        ("get", "/counterparties"): "list_counterparties",
        ("post", "/counterparties"): "create_counterparty",
        ("get", "/counterparties/{counterparty_id}"): "get_counterparty",
        ("get", "/positions"): "list_positions",
        ("get", "/events"): "stream_events",
        ("get", "/healthz"): "get_health",
        ("get", "/readyz"): "get_readiness",
        ("get", "/metrics"): "get_metrics",
    }


def test_every_operation_is_tagged_summarised_and_described(spec: dict[str, Any]) -> None:
    declared_tags = {tag["name"]: tag for tag in spec["tags"]}
    assert all(tag.get("description") for tag in declared_tags.values())
    for method, path, op in operations(spec):
        where = f"{method.upper()} {path}"
        assert op.get("summary"), where
        assert op.get("description"), where
        assert op.get("tags"), where
        assert set(op["tags"]) <= set(declared_tags), where
        for parameter in op.get("parameters", []):
            assert parameter.get("description"), f"{where}: {parameter['name']}"
        for status, response in op["responses"].items():
            assert response["description"] not in ("", "Successful Response"), (where, status)


def test_every_schema_and_field_is_described(spec: dict[str, Any]) -> None:
    missing = [
        f"{name}.{prop}" if prop else name
        for name, schema in spec["components"]["schemas"].items()
        for prop in [None, *schema.get("properties", {})]
        if not (schema if prop is None else schema["properties"][prop]).get("description")
    ]
    assert missing == []


def _money_violations(spec: dict[str, Any]) -> Iterator[str]:
    def is_string(schema: dict[str, Any]) -> bool:
        schema = resolve(spec, schema)
        if "anyOf" in schema:
            return all(is_string(s) or s.get("type") == "null" for s in schema["anyOf"])
        if schema.get("type") == "object":
            # A figure wrapped in an object (e.g. `reported`): its own fields are checked too.
            return True
        return schema.get("type") == "string" and "pattern" in schema

    def walk(where: str, schema: Any) -> Iterator[str]:
        if isinstance(schema, dict):
            if schema.get("type") == "number":
                yield f"{where}: type number"
            for name, prop in schema.get("properties", {}).items():
                if name in MONEY_NAMES and not is_string(prop):
                    yield f"{where}.{name}: {prop}"
            for key, value in schema.items():
                yield from walk(f"{where}/{key}", value)
        elif isinstance(schema, list):
            for index, item in enumerate(schema):
                yield from walk(f"{where}[{index}]", item)

    yield from walk("#/components", spec["components"])
    yield from walk("#/paths", spec["paths"])


def test_money_is_never_a_number(spec: dict[str, Any]) -> None:
    assert list(_money_violations(spec)) == []
    amount = spec["components"]["schemas"]["Position"]["properties"]["amount"]
    assert amount["type"] == "string"
    assert amount["pattern"] == r"^-?[0-9]+(\.[0-9]+)?$"


def test_money_check_catches_a_number() -> None:
    bad = {
        "paths": {},
        "components": {
            "schemas": {
                "X": {
                    "type": "object",
                    "properties": {"net": {"anyOf": [{"type": "number"}, {"type": "null"}]}},
                }
            }
        },
    }
    assert list(_money_violations(bad))


def test_datetimes_are_date_time(spec: dict[str, Any]) -> None:
    suffixed = [
        (name, prop, schema)
        for name, model in spec["components"]["schemas"].items()
        for prop, schema in model.get("properties", {}).items()
        if prop.endswith("_at") or prop in {"as_of", "native_timestamp"}
    ]
    assert suffixed
    for name, prop, schema in suffixed:
        options = schema.get("anyOf", [schema])
        formats = {option.get("format") for option in options if option.get("type") != "null"}
        assert formats == {"date-time"}, f"{name}.{prop}"


@pytest.mark.parametrize(
    ("schema", "values"),
    [
        ("Kind", ["internal", "external"]),
        ("Source", ["finsync", "finqware"]),
        ("Side", ["asset", "liability", "flat"]),
        ("Meaning", ["cash", "overdraft", "receivable", "payable", "zero"]),
        ("SourceStatus", ["ok", "stale", "unavailable"]),
        (
            "SourceErrorCode",
            [
                "timeout",
                "upstream_error",
                "bad_response",
                "rate_limited",
                "unauthorized",
                "consent_expired",
                "rejected",
                "not_found",
                "outcome_unknown",
                "inconsistent_read",
            ],
        ),
    ],
)
def test_closed_sets_are_enums(spec: dict[str, Any], schema: str, values: list[str]) -> None:
    assert spec["components"]["schemas"][schema]["enum"] == values


def test_enums_are_used_where_they_apply(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]

    def ref(model: str, prop: str) -> str:
        prop_schema = schemas[model]["properties"][prop]
        target: str = next(
            s["$ref"] for s in prop_schema.get("anyOf", [prop_schema]) if "$ref" in s
        )
        return target.removeprefix("#/components/schemas/")

    assert ref("Position", "kind") == "Kind"
    assert ref("Position", "side") == "Side"
    assert ref("Position", "meaning") == "Meaning"
    assert ref("SourceInfo", "status") == "SourceStatus"
    assert ref("SourceError", "code") == "SourceErrorCode"
    assert ref("Problem", "code") == "SourceErrorCode"


def test_every_error_is_declared_as_problem_json_only(spec: dict[str, Any]) -> None:
    for method, path, op in operations(spec):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            assert set(response["content"]) == {"application/problem+json"}, (path, status)
            schema = response["content"]["application/problem+json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, status)


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("get", "/counterparties", {"401", "403", "422", "503"}),
        ("get", "/counterparties/{counterparty_id}", {"401", "403", "404", "422", "503"}),
        (
            "post",
            "/counterparties",
            {"400", "401", "403", "409", "413", "422", "502", "503", "504"},
        ),
        ("get", "/positions", {"401", "403", "422", "503"}),
        ("get", "/readyz", {"503"}),
    ],
)
def test_error_statuses_are_declared(
    spec: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    assert statuses <= set(spec["paths"][path][method]["responses"])


def test_problem_schema_has_the_rfc_9457_members(spec: dict[str, Any]) -> None:
    problem = spec["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert {"instance", "errors", "existing_id", "sources", "code"} <= set(problem["properties"])


def test_bearer_scheme_guards_the_data_not_the_probes(spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    for method, path, op in operations(spec):
        if (method, path) in PUBLIC:
            assert "security" not in op, path
        else:
            assert op["security"] == [{"bearerAuth": [PROTECTED[method, path]]}], path


def test_the_spec_and_docs_are_served_without_a_key() -> None:
    settings = openapi_settings(api_keys={"reader": {"sha256": sha256(READ_KEY)}})
    with TestClient(create_app(settings)) as client:
        assert client.get("/positions").status_code == 401
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200


def test_servers_entry_is_declared(spec: dict[str, Any]) -> None:
    assert spec["servers"] == [{"url": "http://127.0.0.1:8000", "description": "This deployment"}]


def test_no_secret_appears_in_the_spec(spec: dict[str, Any]) -> None:
    text = json.dumps(spec)
    secrets = [FINSYNC_API_KEY, FINQWARE_CLIENT_SECRET, FINQWARE_CLIENT_ID, READ_KEY, WRITE_KEY]
    for consent in SANDBOX_CONSENTS:
        secrets += [consent.access_token, consent.credentials_id]
    leaked = [secret for secret in secrets if secret in text]
    assert leaked == []
