"""The README's reference lists stay true: the error codes and problem types are the spec's
and the error table's, the limits are the code's, the worked example of `totals` is what
tesoro computes, the metrics it says to alert on exist, and nothing links out of the repo."""

from __future__ import annotations

import json
import re
from decimal import Decimal

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from app.api.errors import _HTTP_SLUGS, MAX_FIELD_ERRORS, PROBLEMS
from app.api.middleware import MAX_BODY_BYTES
from app.domain.ids import CONSENT_KEY_PATTERN
from app.domain.interpret.finsync import finsync_signed
from app.domain.models import (
    Kind,
    Meaning,
    Position,
    ReportedFigure,
    Side,
    Source,
    SourceErrorCode,
)
from app.domain.money import round_upstream_number
from app.domain.positions import totals
from app.metrics import Metrics
from app.server import HEADER_TIMEOUT_SECONDS, MAX_HEADER_BYTES
from tests.deploy.manifests import ROOT
from tests.support.apps import sandbox_app
from tests.support.interpreted import FETCHED_AT

README = (ROOT / "README.md").read_text("utf-8")
SPEC = json.loads((ROOT / "openapi" / "openapi.json").read_text("utf-8"))


def table(marker: str) -> list[list[str]]:
    """The rows of the table after `<!-- marker -->`, each a list of cells, header left out."""
    after = README.split(f"<!-- {marker} -->\n", 1)[1]
    rows = []
    for line in after.splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def code(cell: str) -> str:
    found = re.fullmatch(r"`([^`]+)`", cell)
    assert found, cell
    return found.group(1)


def test_the_error_codes_are_the_spec_enum_in_its_order() -> None:
    listed = [code(row[0]) for row in table("error-codes")]
    assert listed == SPEC["components"]["schemas"]["SourceErrorCode"]["enum"]
    assert listed == [member.value for member in SourceErrorCode]


def test_the_warning_codes_are_those_the_spec_names() -> None:
    described = SPEC["components"]["schemas"]["ResponseWarning"]["properties"]["code"]
    in_spec = re.findall(r"`([a-z_]+)`", described["description"])
    listed = [code(row[0]) for row in table("warning-codes")]
    assert listed == in_spec
    assert len(listed) == len(set(listed)) >= 11


def test_the_problem_types_are_every_type_tesoro_answers_with_its_status() -> None:
    answered = {kind.type: kind.status for kind in PROBLEMS.values()}
    answered |= {f"/problems/{slug}": status for status, slug in _HTTP_SLUGS.items()}
    # The one problem the server itself writes, before the app sees the request.
    answered["/problems/request-header-fields-too-large"] = 431
    listed = {code(row[1]): int(row[0]) for row in table("problem-types")}
    assert listed == answered
    documented = set(re.findall(r"^#+ `(/problems/[a-z-]+)`", _problems_doc(), re.MULTILINE))
    assert documented == set(listed)


def _problems_doc() -> str:
    return (ROOT / "docs" / "problems.md").read_text("utf-8")


def _parameter(path: str, method: str, name: str) -> dict[str, object]:
    for parameter in SPEC["paths"][path][method]["parameters"]:
        if parameter["name"] == name:
            schema: dict[str, object] = parameter["schema"]
            variants = schema.get("anyOf")
            if isinstance(variants, list):
                schema = next(v for v in variants if v.get("type") != "null")
            return schema
    raise AssertionError(f"{method} {path} has no parameter {name}")


def test_the_limits_are_the_spec_and_the_code() -> None:
    rows = {row[0]: row[1] for row in table("limits")}
    created = SPEC["components"]["schemas"]["NewCounterparty"]["properties"]
    description = next(v for v in created["description"]["anyOf"] if v.get("type") == "string")
    key = _parameter("/counterparties", "post", "idempotency-key")
    positions_page = _parameter("/positions", "get", "page_size")
    counterparties_page = _parameter("/counterparties", "get", "page_size")
    expected = {
        "`name` (create)": f"1 to {created['name']['maxLength']} characters",
        "`description` (create)": f"up to {description['maxLength']} characters",
        "`Idempotency-Key`": f"1 to {key['maxLength']} printable ASCII",
        "request body": f"{MAX_BODY_BYTES // 1024} KiB ({MAX_BODY_BYTES:,} bytes)",
        "request head (request line and headers)": (
            f"{MAX_HEADER_BYTES // 1024} KiB ({MAX_HEADER_BYTES:,} bytes)"
        ),
        "time for the request head to arrive": f"{HEADER_TIMEOUT_SECONDS:g} s",
        "`X-Request-ID`": "1 to 128 ",
        "`q`, `counterparty_id`, a counterparty id in the path": (
            f"{_parameter('/counterparties', 'get', 'q')['maxLength']} characters"
        ),
        "`currency` (repeated)": f"{_parameter('/positions', 'get', 'currency')['maxItems']} ",
        "`meaning` (repeated)": f"{_parameter('/positions', 'get', 'meaning')['maxItems']} ",
        "`page`": f"1 to {_parameter('/positions', 'get', 'page')['maximum']:,}",
        "`page_size`": (
            f"`/counterparties` 1 to {counterparties_page['maximum']:,} "
            f"(default {counterparties_page['default']:,}); `/positions` 1 to "
            f"{positions_page['maximum']:,} (default {positions_page['default']:,})"
        ),
        "`errors` in a validation problem": str(MAX_FIELD_ERRORS),
        "a consent's `key` (configuration)": "1 to 64 letters, digits and `._-`",
    }
    assert set(rows) == set(expected)
    for what, limit in expected.items():
        assert limit in rows[what], what
    assert "{0,63}" in CONSENT_KEY_PATTERN  # 64 with the first character
    # The path id shares the query's limit.
    path_id = _parameter("/counterparties/{counterparty_id}", "get", "counterparty_id")
    assert path_id["maxLength"] == _parameter("/positions", "get", "counterparty_id")["maxLength"]


def _amount(cell: str) -> Decimal:
    return Decimal(code(cell))


def test_the_worked_example_of_totals_is_what_tesoro_computes() -> None:
    positions = []
    for number, (name, client_type, balance, amount, meaning) in enumerate(table("totals-example")):
        kind = Kind.internal if client_type.startswith("0") else Kind.external
        # As FinSync's balance is read: rounded to the currency, then signed.
        rounded = round_upstream_number(_amount(balance), "ARS")
        signed, found_meaning = finsync_signed(kind, rounded, "ARS")
        assert (signed, found_meaning.value) == (_amount(amount), code(meaning)), name
        assert str(signed) == code(amount)  # scaled to the currency, as the answer writes it
        sign = (signed > 0) - (signed < 0)
        positions.append(
            Position(
                counterparty_id=f"finsync:{number + 1}",
                counterparty_name=name,
                kind=kind,
                source=Source.finsync,
                account_id=f"finsync:{number + 100}",
                account_name="ARS",
                currency="ARS",
                amount=signed,
                side={1: Side.asset, -1: Side.liability, 0: Side.flat}[sign],
                meaning=Meaning(found_meaning),
                reported=ReportedFigure(amount=_amount(balance), client_type=int(client_type[0])),
                fetched_at=FETCHED_AT,
            )
        )
    example = README.split("<!-- totals-example -->", 1)[1].split("```json\n", 1)[1]
    shown = json.loads(example.split("```", 1)[0])
    [computed] = totals(positions)
    assert computed.model_dump(mode="json") == shown


def test_the_metrics_to_alert_on_are_exported() -> None:
    section = README.split("### What to alert on", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"\btesoro_[a-z_]+", section))
    with TestClient(sandbox_app()) as client:
        client.get("/positions")  # so the per-connection and upstream series exist
        exported = client.get("/metrics").text
    # The shared tier's gauge is declared only when a Redis is configured.
    shared = Metrics()
    shared.observe_redis(True)
    exported += generate_latest(shared.registry).decode()
    # A family with no series yet (a counter nothing has counted) still declares its name.
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    exported_names = {
        family.name + suffix
        for family in text_string_to_metric_families(exported)
        for suffix in ("", *suffixes.get(family.type, ()))
    }
    assert len(named) >= 6
    assert named <= exported_names


def test_nothing_links_outside_the_repository() -> None:
    targets = re.findall(r"\]\(([^)\s]+)\)", README) + re.findall(r"<(https?://[^>]+)>", README)
    assert targets, "the README links to docs/"
    for target in targets:
        assert not re.match(r"[a-z]+:", target), target
        path = target.split("#", 1)[0]
        assert path, target
        assert (ROOT / path).resolve().is_relative_to(ROOT), target
        assert (ROOT / path).exists(), target
