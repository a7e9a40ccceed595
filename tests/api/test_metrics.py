"""GET /metrics: Prometheus text of requests, upstream calls and connections, per app."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from typing import Any

import httpx2
import pytest
import stamina
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, SecretStr
from starlette.testclient import TestClient

from app.api.edge.limits import MAX_BODY_BYTES
from app.main import create_app
from app.metrics import CACHE_OUTCOMES, Metrics
from app.sandbox import FINSYNC_API_KEY, create_finsync_app
from app.server import limited_protocol
from app.settings import Settings
from tests.support.apps import MakeClient
from tests.support.keys import READ_KEY, WRITE_KEY, bearer
from tests.support.servers import serve
from tests.support.simulators import Simulators

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> tuple[str, Samples]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    samples: Samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return response.text, samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (n, got), value in samples.items() if n == name and wanted <= got)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(got)[label] for n, got in samples if n == name and label in dict(got)}


def settings_of(client: TestClient) -> Settings:
    app = client.app
    assert isinstance(app, FastAPI)
    settings: Settings = app.state.settings
    return settings


def secrets_in(settings: Settings) -> set[str]:
    """Every secret value the settings hold, wherever it is nested."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(settings)
    return found


def test_positions_are_counted_by_route_and_upstream(client: TestClient) -> None:
    assert client.get("/positions").status_code == 200

    _, samples = scrape(client)

    requests = "tesoro_http_requests_total"
    assert total(samples, requests, route="/positions", method="GET", status="200") == 1
    latency = "tesoro_http_request_duration_seconds_count"
    assert total(samples, latency, route="/positions", method="GET") == 1
    upstream = "tesoro_upstream_requests_total"
    assert total(samples, upstream, upstream="finsync", outcome="200") > 0
    assert total(samples, upstream, upstream="finqware", outcome="200") > 0
    assert total(samples, "tesoro_upstream_request_duration_seconds_count", upstream="finsync") > 0
    assert label_values(samples, upstream, "upstream") == {"finsync", "finqware"}


def test_kept_answers_and_probes_answered_at_the_edge_are_counted_and_read_the_cache(
    client: TestClient,
) -> None:
    # The first of each is FastAPI's; the rest are answered at the edge (the fast path),
    # the kept answers from a data state reused without reading the caches again: each
    # request is still counted under its route, and each read it stands for as a hit.
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
        assert client.head("/healthz").status_code == 200
        assert client.get("/counterparties?source=finsync").status_code == 200
    assert client.app.state.fast_path.answered == 2 + 3 + 2  # type: ignore[attr-defined]

    _, samples = scrape(client)

    requests = "tesoro_http_requests_total"
    assert total(samples, requests, route="/healthz", method="GET", status="200") == 3
    assert total(samples, requests, route="/healthz", method="HEAD", status="200") == 3
    assert total(samples, requests, route="/counterparties", method="GET", status="200") == 3
    events = "tesoro_cache_events_total"
    assert total(samples, events, cache="finsync", outcome="miss") == 1
    assert total(samples, events, cache="finsync", outcome="hit") == 2


def test_routes_are_labelled_by_template_not_by_path(client: TestClient) -> None:
    assert client.get("/counterparties/finsync:101").status_code == 200
    assert client.get("/counterparties/finsync:999999").status_code == 404

    _, samples = scrape(client)

    template = "/counterparties/{counterparty_id}"
    assert total(samples, "tesoro_http_requests_total", route=template, status="200") == 1
    assert total(samples, "tesoro_http_requests_total", route=template, status="404") == 1
    routes = label_values(samples, "tesoro_http_requests_total", "route")
    assert not any("finsync:" in route for route in routes), routes


def test_unmatched_paths_share_one_label(client: TestClient) -> None:
    for path in ("/no/such/thing", "/another-1", "/another-2"):
        assert client.get(path).status_code == 404

    _, samples = scrape(client)

    requests = "tesoro_http_requests_total"
    assert total(samples, requests, route="unmatched", method="GET", status="404") == 3
    assert label_values(samples, requests, "route") == {"unmatched"}


def test_the_docs_and_the_spec_are_counted_under_their_own_routes(client: TestClient) -> None:
    for path in ("/docs", "/openapi.json"):
        assert client.get(path).status_code == 200
    assert client.head("/docs").status_code == 200

    _, samples = scrape(client)

    requests = "tesoro_http_requests_total"
    for route in ("/docs", "/openapi.json"):
        assert total(samples, requests, route=route, method="GET", status="200") == 1, route
    assert total(samples, requests, route="/docs", method="HEAD", status="200") == 1
    assert "unmatched" not in label_values(samples, requests, "route")


def test_no_created_twin_series_and_the_version_as_build_info(client: TestClient) -> None:
    assert client.get("/positions").status_code == 200

    text, samples = scrape(client)

    assert "_created" not in text
    assert samples[("tesoro_build_info", frozenset({("version", version("tesoro"))}))] == 1
    assert label_values(samples, "tesoro_build_info", "version") == {version("tesoro")}


def test_unknown_methods_share_one_label(client: TestClient) -> None:
    assert client.request("BREW", "/positions").status_code == 405
    assert client.request("DELETE", "/positions").status_code == 405

    _, samples = scrape(client)

    requests = "tesoro_http_requests_total"
    assert total(samples, requests, route="/positions", method="other", status="405") == 1
    assert total(samples, requests, route="/positions", method="DELETE", status="405") == 1
    assert "BREW" not in label_values(samples, requests, "method")


def test_metrics_need_no_key_and_count_refusals(authed_client: TestClient) -> None:
    assert authed_client.get("/positions").status_code == 401

    response = authed_client.get("/metrics")

    assert response.status_code == 200
    _, samples = scrape(authed_client)
    assert total(samples, "tesoro_http_requests_total", route="/positions", status="401") == 1
    # A refused caller reaches no upstream.
    assert total(samples, "tesoro_upstream_requests_total") == 0


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "tesoro_http_requests",
        "tesoro_http_request_duration_seconds",
        "tesoro_upstream_requests",
        "tesoro_upstream_request_duration_seconds",
        "tesoro_connection_up",
        "tesoro_connection_stale_after_failure",
        "tesoro_connection_past_ttl",
    } <= names


def test_no_secret_appears_in_the_metrics(authed_client: TestClient) -> None:
    settings = settings_of(authed_client)
    secrets = secrets_in(settings) | {READ_KEY, WRITE_KEY}
    secrets |= {key.sha256 for key in settings.api_keys.values()}
    if settings.finqware_client_id:
        secrets.add(settings.finqware_client_id)
    assert len(secrets) >= 10, secrets  # FinSync, Finqware, three consents, two callers
    read = bearer(READ_KEY)
    assert authed_client.get("/positions", headers=read).status_code == 200
    for secret in sorted(secrets):
        # Secrets in the path, matched or not, never become a label.
        authed_client.get(f"/counterparties/finqware:{secret}", headers=read)
        authed_client.get(f"/{secret}", headers=read)

    text, _ = scrape(authed_client)

    leaked = [secret for secret in secrets if secret in text]
    assert leaked == []


def test_each_app_counts_on_its_own(make_client: MakeClient) -> None:
    first, second = make_client(), make_client()
    assert first.get("/positions").status_code == 200

    _, samples = scrape(second)

    assert total(samples, "tesoro_http_requests_total", route="/positions") == 0
    assert total(samples, "tesoro_upstream_requests_total") == 0


def test_upstream_failures_are_counted_by_outcome(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(
        upstream_timeout_seconds=0.2, min_refresh_interval_seconds=0, failure_backoff_seconds=0
    )
    simulators.finsync_faults.mode = "error"
    assert client.get("/positions").status_code == 200
    simulators.finsync_faults.mode = "timeout"
    assert client.get("/positions", headers={"Cache-Control": "no-cache"}).status_code == 200

    _, samples = scrape(client)

    upstream = "tesoro_upstream_requests_total"
    assert total(samples, upstream, upstream="finsync", outcome="500") > 0
    assert total(samples, upstream, upstream="finsync", outcome="timeout") > 0
    assert total(samples, upstream, upstream="finsync", outcome="200") == 0


UP = "tesoro_connection_up"
STALE_AFTER_FAILURE = "tesoro_connection_stale_after_failure"
PAST_TTL = "tesoro_connection_past_ttl"


def test_a_failed_load_takes_the_connection_down_while_its_old_data_is_served(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(
        min_refresh_interval_seconds=0,
        failure_backoff_seconds=0,
        permanent_failure_backoff_seconds=0,
    )
    assert client.get("/positions").status_code == 200

    _, samples = scrape(client)

    assert total(samples, UP, connection="finsync") == 1
    assert total(samples, UP, connection="finqware:bt-main") == 1
    # The sandbox's expired consent: its load fails and nothing is held.
    assert total(samples, UP, connection="finqware:brd-legacy") == 0
    assert total(samples, STALE_AFTER_FAILURE, connection="finqware:brd-legacy") == 0
    assert total(samples, STALE_AFTER_FAILURE, connection="finsync") == 0
    assert total(samples, PAST_TTL, connection="finsync") == 0

    simulators.finsync_faults.mode = "unauthorized"
    answer = client.get("/positions", headers={"Cache-Control": "no-cache"})
    finsync = next(s for s in answer.json()["sources"] if s["source"] == "finsync")
    assert (finsync["status"], finsync["error"]["code"]) == ("stale", "unauthorized")

    _, samples = scrape(client)

    # FinSync refuses the key: down, however well the old data serves.
    assert total(samples, UP, connection="finsync") == 0
    assert total(samples, STALE_AFTER_FAILURE, connection="finsync") == 1
    assert total(samples, PAST_TTL, connection="finsync") == 0

    simulators.finsync_faults.mode = "none"
    assert client.get("/positions", headers={"Cache-Control": "no-cache"}).status_code == 200

    _, samples = scrape(client)

    assert total(samples, UP, connection="finsync") == 1
    assert total(samples, STALE_AFTER_FAILURE, connection="finsync") == 0


def test_data_past_its_ttl_with_a_refresh_running_is_not_a_failure(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(finsync_ttl_seconds=0.05, min_refresh_interval_seconds=0)
    assert client.get("/positions?source=finsync").status_code == 200
    time.sleep(0.1)  # past FinSync's TTL
    simulators.finsync_faults.delay_seconds = 0.5  # the refresh behind the answer is slow
    answer = client.get("/positions?source=finsync")
    assert answer.json()["sources"][0]["status"] == "stale"

    _, samples = scrape(client)

    assert total(samples, UP, connection="finsync") == 1
    assert total(samples, PAST_TTL, connection="finsync") == 1
    assert total(samples, STALE_AFTER_FAILURE, connection="finsync") == 0

    for _ in range(100):  # the refresh lands
        _, samples = scrape(client)
        if total(samples, PAST_TTL, connection="finsync") == 0:
            break
        time.sleep(0.05)
    assert total(samples, PAST_TTL, connection="finsync") == 0
    assert total(samples, UP, connection="finsync") == 1


def test_a_connection_with_nothing_to_serve_is_down(
    client: TestClient, simulators: Simulators
) -> None:
    simulators.finsync_faults.mode = "error"
    simulators.finqware_faults.mode = "error"
    assert client.get("/positions").status_code == 503

    _, samples = scrape(client)

    assert total(samples, "tesoro_connection_up", connection="finsync") == 0
    assert total(samples, "tesoro_connection_up", connection="finqware:bt-main") == 0
    requests = "tesoro_http_requests_total"
    assert total(samples, requests, route="/positions", status="503") == 1


@pytest.mark.e2e
@pytest.mark.parametrize("http2", [False, True])
def test_calls_over_the_network_are_counted(http2: bool) -> None:
    # No injected transport: the network one, built with the HTTP/2 setting, is instrumented.
    with serve(create_finsync_app()) as finsync_url:
        settings = Settings(
            _env_file=None,
            finsync_base_url=finsync_url,
            finsync_api_key=FINSYNC_API_KEY,
            auth_disabled=True,
            upstream_http2=http2,
        )
        with TestClient(create_app(settings)) as client:
            assert client.get("/positions").status_code == 200
            _, samples = scrape(client)

    upstream = "tesoro_upstream_requests_total"
    assert total(samples, upstream, upstream="finsync", outcome="200") > 0
    assert label_values(samples, upstream, "upstream") == {"finsync"}


def test_cache_reads_are_counted_by_outcome(make_client: MakeClient) -> None:
    # A TTL long enough that the second read is a hit even on a loaded machine (at 0.05 s
    # it sometimes found the data already past its TTL).
    client = make_client(finsync_ttl_seconds=1.0, min_refresh_interval_seconds=0)
    assert client.get("/positions").status_code == 200  # nothing held: a miss
    assert client.get("/counterparties").status_code == 200  # fresh: a hit
    time.sleep(1.1)  # past FinSync's TTL
    assert client.get("/positions").status_code == 200  # stale at once, load behind it

    _, samples = scrape(client)

    events = "tesoro_cache_events_total"
    assert total(samples, events, cache="finsync", connection="finsync", outcome="miss") == 1
    assert total(samples, events, cache="finsync", connection="finsync", outcome="hit") == 1
    assert total(samples, events, connection="finsync", outcome="stale_served") == 1
    assert total(samples, events, connection="finsync", outcome="background_refresh") == 1
    assert total(samples, events, cache="finqware_balances", connection="finqware:bt-main") > 0
    assert total(samples, events, cache="finqware_accounts", outcome="miss") > 0
    assert label_values(samples, events, "cache") == {
        "finsync",
        "finqware_balances",
        "finqware_accounts",
    }
    assert label_values(samples, events, "outcome") <= set(CACHE_OUTCOMES)


def test_reads_joining_a_load_under_way_are_counted_as_coalesced(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client()
    simulators.finsync_faults.delay_seconds = 0.3
    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(lambda _: client.get("/positions"), range(3)))
    assert [answer.status_code for answer in answers] == [200] * 3

    _, samples = scrape(client)

    events = "tesoro_cache_events_total"
    assert total(samples, events, connection="finsync", outcome="miss") == 1
    assert total(samples, events, connection="finsync", outcome="coalesced_wait") == 2
    assert simulators.finsync_calls() == 1


def test_an_open_breaker_and_its_state_are_exported(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(
        breaker_failures=2, failure_backoff_seconds=0, min_refresh_interval_seconds=0
    )
    simulators.finsync_faults.mode = "error"
    for _ in range(3):
        assert client.get("/positions", headers={"Cache-Control": "no-cache"}).status_code == 200

    _, samples = scrape(client)

    state = "tesoro_circuit_breaker_state"
    assert total(samples, state, connection="finsync") == 2  # open
    assert total(samples, state, connection="finqware:bt-main") == 0  # closed
    assert total(samples, "tesoro_circuit_breaker_opened_total", connection="finsync") == 1
    # The third load failed at once: FinSync was asked twice.
    assert simulators.finsync_calls() == 2


def test_retries_are_counted_by_upstream(make_client: MakeClient, simulators: Simulators) -> None:
    client = make_client()
    simulators.finsync_faults.mode, simulators.finsync_faults.remaining = "error", 1
    with stamina.set_testing(True, attempts=3):
        assert client.get("/positions").status_code == 200

    _, samples = scrape(client)

    assert total(samples, "tesoro_upstream_retries_total", upstream="finsync") == 1
    assert total(samples, "tesoro_upstream_retries_total", upstream="finqware") == 0
    assert total(samples, STALE_AFTER_FAILURE, connection="finsync") == 0
    assert total(samples, UP, connection="finsync") == 1


def test_a_body_over_the_limit_is_counted_under_the_refused_route(
    authed_client: TestClient,
) -> None:
    big = b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}"
    response = authed_client.post(
        "/counterparties",
        content=big,
        headers={**bearer(WRITE_KEY), "Content-Type": "application/json"},
    )
    assert response.status_code == 413

    _, samples = scrape(authed_client)

    requests = "tesoro_http_requests_total"
    assert total(samples, requests, route="<refused>", method="POST", status="413") == 1
    assert total(samples, requests, route="/counterparties", status="413") == 0


@pytest.mark.e2e
def test_a_head_over_the_limit_is_counted_under_the_refused_route() -> None:
    app = create_app(Settings(_env_file=None, sandbox=True))
    metrics: Metrics = app.state.metrics
    protocol = limited_protocol(on_refused=metrics.observe_refused_head)
    with serve(app, http=protocol) as url:
        response = httpx2.get(f"{url}/healthz", headers={"X-Big": "b" * 20_000}, timeout=10)
        assert response.status_code == 431
        assert httpx2.get(f"{url}/healthz", timeout=10).status_code == 200
        text = httpx2.get(f"{url}/metrics", timeout=10).text

    samples: Samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    requests = "tesoro_http_requests_total"
    assert total(samples, requests, route="<refused>", method="other", status="431") == 1
    assert total(samples, requests, route="/healthz", status="200") == 1


def test_every_new_family_is_exported_with_bounded_labels(client: TestClient) -> None:
    assert client.get("/positions").status_code == 200
    response = client.get("/metrics")

    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert {
        "tesoro_cache_events",
        "tesoro_circuit_breaker_state",
        "tesoro_circuit_breaker_opened",
        "tesoro_upstream_retries",
    } <= set(families)
    # Connections are named by their configured key, nothing else.
    keys = {"finsync", "finqware:bt-main", "finqware:ing-ops", "finqware:brd-legacy"}
    for name in ("tesoro_cache_events", "tesoro_circuit_breaker_state"):
        for sample in families[name].samples:
            assert sample.labels["connection"] in keys, sample
