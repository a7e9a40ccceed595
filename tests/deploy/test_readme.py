"""The README's reference lists stay true: the error codes and problem types are the spec's
and the error table's, the limits are the code's, the worked example of `totals` is what
tesoro computes, the metrics it says to alert on exist, and nothing links out of the repo."""

from __future__ import annotations

import itertools
import json
import re
import shlex
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from app.api.edge.limits import MAX_BODY_BYTES
from app.api.errors import _HTTP_SLUGS, MAX_FIELD_ERRORS, PROBLEMS
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


# --- The examples: each curl of the README against the sandbox, compared ------------------

ELLIPSIS = "…"
# Values that follow the clock (the sandbox moves its timestamps to the current hour, and
# fetch times are the run's): compared by kind, not by value.
_CLOCK_FIELDS = frozenset(
    {"fetched_at", "generated_at", "as_of", "native_timestamp", "native_date"}
)


def shown_json(text: str) -> Any:
    """README JSON as data: `…` in an object is the member `"…": "…"`, in a list the item
    `"…"` (what was trimmed there), as a member's value the value `"…"` (any value)."""
    out: list[str] = []
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == ELLIPSIS:
            member = stack[-1] == "{" and "".join(out).rstrip()[-1:] != ":"
            out.append(f'"{ELLIPSIS}": "{ELLIPSIS}"' if member else f'"{ELLIPSIS}"')
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]":
            stack.pop()
        out.append(char)
    return json.loads("".join(out))


def differences(shown: Any, actual: Any, where: str = "$") -> list[str]:
    """How `actual` differs from what the README shows: every member and item shown is
    there, in the same order, with the same value; only `…` stands for what was left out."""
    if shown == ELLIPSIS:
        return []
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{where}: shown an object, is {actual!r}"]
        keys = [key for key in shown if key != ELLIPSIS]
        found: list[str] = [f"{where}: no member {key!r}" for key in keys if key not in actual]
        left_out = [key for key in actual if key not in keys]
        if left_out and ELLIPSIS not in shown:
            found.append(f"{where}: {left_out} left out without …")
        in_actual_order = [key for key in actual if key in keys]
        if in_actual_order != [key for key in keys if key in actual]:
            found.append(f"{where}: members shown as {keys}, sent as {in_actual_order}")
        for key in keys:
            if key not in actual:
                continue
            if key in _CLOCK_FIELDS:
                if (shown[key] is None) != (actual[key] is None):
                    found.append(f"{where}.{key}: {shown[key]!r} shown, {actual[key]!r} sent")
                continue
            found += differences(shown[key], actual[key], f"{where}.{key}")
        return found
    if isinstance(shown, list):
        if not isinstance(actual, list):
            return [f"{where}: shown a list, is {actual!r}"]
        items = [item for item in shown if item != ELLIPSIS]
        if len(items) == len(shown) and len(items) != len(actual):
            return [f"{where}: {len(items)} items shown, {len(actual)} sent, no …"]
        # Each item shown, in order, among those sent (`…` stands for the ones between).
        position = 0
        for number, item in enumerate(items):
            while position < len(actual) and differences(item, actual[position]):
                if ELLIPSIS not in shown:
                    return differences(item, actual[position], f"{where}[{position}]")
                position += 1
            if position == len(actual):
                return [f"{where}: item {number} shown is not sent in this order: {item!r}"]
            position += 1
        return []
    return [] if shown == actual else [f"{where}: {shown!r} shown, {actual!r} sent"]


@dataclass(frozen=True)
class Example:
    """A curl of the README against `make run`, and the answer shown after it."""

    line: int
    method: str
    path: str
    headers: dict[str, str]
    body: str | None
    status: int | None  # when the answer shown starts with its status line
    answer_headers: dict[str, str]
    answer: str


def examples() -> list[Example]:
    # A sh block and the block right after it (neither crossing a fence).
    blocks = re.finditer(
        r"```sh\n((?:(?!```).)*)```\n```(json)?\n((?:(?!```).)*)```", README, re.DOTALL
    )
    found = []
    for block in blocks:
        command, answer = block.group(1), block.group(3)
        if "curl" not in command or "127.0.0.1:8000" not in command:
            continue
        words = shlex.split(command.replace("\\\n", " "))
        url = next(word for word in words if word.startswith("http://127.0.0.1:8000"))
        options = list(itertools.pairwise(words))
        headers = dict(header.split(": ", 1) for flag, header in options if flag == "-H")
        body = next((data for flag, data in options if flag == "-d"), None)
        method = next((m for flag, m in options if flag == "-X"), "GET")
        status, answer_headers = None, {}
        if answer.startswith("HTTP/1.1 "):
            head, answer = answer.split("\n\n", 1)
            status_line, *header_lines = head.splitlines()
            status = int(status_line.split()[1])
            answer_headers = dict(line.split(": ", 1) for line in header_lines)
        found.append(
            Example(
                line=README[: block.start()].count("\n") + 1,
                method=method,
                path=url.removeprefix("http://127.0.0.1:8000"),
                headers=headers,
                body=body,
                status=status,
                answer_headers=answer_headers,
                answer=answer,
            )
        )
    return found


def test_every_example_of_the_readme_is_what_the_sandbox_answers() -> None:
    found = examples()
    assert len(found) >= 5
    problems = []
    # In the README's order, on one app, as someone trying them after `make run` would.
    with TestClient(sandbox_app()) as client:
        for example in found:
            response = client.request(
                example.method, example.path, headers=example.headers, content=example.body
            )
            where = f"README line {example.line}: {example.method} {example.path}"
            if example.status is not None and response.status_code != example.status:
                problems.append(f"{where}: status {response.status_code}")
            for name, value in example.answer_headers.items():
                if response.headers.get(name) != value:
                    problems.append(f"{where}: {name}: {response.headers.get(name)}")
            problems += [
                f"{where}: {difference}"
                for difference in differences(shown_json(example.answer), response.json())
            ]
    assert not problems, "\n".join(problems)


def test_the_inline_answers_of_the_readme_are_what_the_sandbox_answers() -> None:
    listed = re.search(r"read: `status: \"unavailable\"`.*?```json\n(.*?)```", README, re.DOTALL)
    assert listed is not None
    ready = re.search(r"`GET /readyz` → `(\{.*?\})`", README, re.DOTALL)
    assert ready is not None
    with TestClient(sandbox_app()) as client:
        items = client.get("/counterparties?source=finqware").json()["items"]
        readiness = client.get("/readyz").json()
        health = client.get("/healthz").json()
    [legacy] = [item for item in items if item["id"] == "finqware:brd-legacy"]
    # docs/problems.md's example, and what it says `detail` may hold of the input.
    problem_shown = _problems_doc().split("```json\n", 1)[1].split("```", 1)[0]
    with TestClient(sandbox_app()) as client:
        problem = client.get("/counterparties/finsync:abc").json()
    assert differences(shown_json(problem_shown), problem) == []
    assert "of the input only what the path already says" in _problems_doc()
    assert problem["detail"].endswith(f"{problem['instance'].rsplit('/', 1)[1]!r}")
    assert differences(shown_json(listed.group(1)), legacy) == []
    assert differences(shown_json(ready.group(1).replace("\n", " ")), readiness) == []
    assert "`GET /healthz` → `" + json.dumps(health) + "`" in README


@pytest.mark.parametrize(
    ("shown", "actual", "expected"),
    [
        ('{"a": 1, …}', {"a": 1, "b": 2}, []),
        ('{"a": 1}', {"a": 1, "b": 2}, ["$: ['b'] left out without …"]),
        ('{"b": 2, "a": 1, …}', {"a": 1, "b": 2},
         ["$: members shown as ['b', 'a'], sent as ['a', 'b']"]),
        ('[1, …]', [1, 2, 3], []),
        ('[3, 1, …]', [1, 2, 3], ["$: item 1 shown is not sent in this order: 1"]),
        ('[1]', [1, 2], ["$: 1 items shown, 2 sent, no …"]),
        ('{"fetched_at": "2026-11-23T19:28:56Z"}', {"fetched_at": "2027-01-01T00:00:00Z"}, []),
        ('{"a": …, "b": 2}', {"a": [1], "b": 2}, []),
        ('{"fetched_at": null}', {"fetched_at": "2027-01-01T00:00:00Z"},
         ["$.fetched_at: None shown, '2027-01-01T00:00:00Z' sent"]),
    ],
)  # fmt: skip
def test_the_comparison_of_examples_finds_what_was_dropped_or_reordered(
    shown: str, actual: Any, expected: list[str]
) -> None:
    assert differences(shown_json(shown), actual) == expected
