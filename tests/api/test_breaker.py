"""A connection that keeps failing is short-circuited for a while, then probed once."""

from __future__ import annotations

import time

from tests.support.apps import MakeClient
from tests.support.simulators import Simulators


def finsync_source(body: dict[str, object]) -> dict[str, object]:
    sources = body["sources"]
    assert isinstance(sources, list)
    [source] = [s for s in sources if s["source"] == "finsync"]
    assert isinstance(source, dict)
    return source


def test_repeated_failures_open_the_circuit_and_a_probe_closes_it(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(
        failure_backoff_seconds=0,
        min_refresh_interval_seconds=0,
        breaker_failures=2,
        # Long enough that the five reads below all fall inside it on a loaded machine (at
        # 0.3 s the circuit sometimes half-opened among them and a probe was answered 500).
        breaker_open_seconds=1.5,
    )
    assert client.get("/positions").status_code == 200
    simulators.finsync_faults.mode = "error"
    refetch = {"Cache-Control": "no-cache"}
    for _ in range(2):  # two failures in a row: the circuit opens
        source = finsync_source(client.get("/positions", headers=refetch).json())
        assert source["status"] == "stale"
    calls = simulators.finsync_calls()
    for _ in range(5):  # open: FinSync is not called, the last data is served
        source = finsync_source(client.get("/positions", headers=refetch).json())
        assert source["status"] == "stale"
        error = source["error"]
        assert isinstance(error, dict)
        assert error["code"] == "upstream_error"
        assert "circuit open" in str(error["message"])
    assert simulators.finsync_calls() == calls
    simulators.finsync_faults.mode = "none"
    time.sleep(1.6)  # the circuit's open time passes: one probe goes through
    source = finsync_source(client.get("/positions", headers=refetch).json())
    assert source["status"] == "ok"
    assert simulators.finsync_calls() == calls + 1
