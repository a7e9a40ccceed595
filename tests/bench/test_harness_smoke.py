"""The benchmark harness in smoke mode: 250 clients, 1 s phases and a 2 s attack, every figure
present.

Runs `python -m bench.harness --smoke` as `make bench` runs the full harness (fakes, tesoro
serve and the baseline as processes on loopback, wrk), into a temporary results file, and
checks that every figure the README reports is there and sane. No timing is asserted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.harness import COALESCING_LEVELS, FX_TARGETS, TARGETS, ensure_wrk

# About 45 s on a quiet machine, three to four minutes on two cores shared with other work:
# a bound on a hung run, not a figure.
SMOKE_SECONDS = 420
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(SMOKE_SECONDS + 20)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ensure_wrk()  # installs Debian's wrk when missing, or fails saying how
    output = tmp_path_factory.mktemp("bench") / "results.json"
    # Its own session, so a run cut short takes the servers it started with it.
    harness = subprocess.Popen(
        [sys.executable, "-m", "bench.harness", "--smoke", "--output", str(output)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = harness.communicate(timeout=SMOKE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(harness.pid, signal.SIGKILL)
        harness.communicate()
        raise
    done = subprocess.CompletedProcess(harness.args, harness.returncode, stdout, stderr)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    assert "written to" in done.stdout
    loaded: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    return loaded


def test_results_name_the_machine_and_the_commit(results: dict[str, Any]) -> None:
    assert results["settings"]["smoke"] is True
    assert results["machine"]["cores"] >= 1
    assert results["machine"]["cpu_model"]
    assert len(results["commit"]) == 40
    assert list(results["sizes"]) == ["250"]


def test_warm_phases_measure_tesoro_beside_the_baseline(results: dict[str, Any]) -> None:
    warm = results["sizes"]["250"]["warm"]
    assert set(warm) == {name for name, _, _ in TARGETS}
    for name, figures in warm.items():
        for who in ("tesoro", "baseline"):
            run = figures[who]
            assert run["requests"] > 0, (name, who)
            assert run["non_2xx"] == 0, (name, who)
            assert run["socket_errors"] == 0, (name, who)
            assert run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
            assert run["cpu_us_per_request"] > 0
        assert figures["rps_ratio"] > 0
        assert figures["cpu_ratio"] > 0
    assert warm["/positions gzip"]["content_encoding"] == "gzip"
    assert warm["/positions"]["content_encoding"] is None


def test_cold_answer_is_set_against_the_critical_path(results: dict[str, Any]) -> None:
    cold = results["sizes"]["250"]["cold"]
    assert cold["pages"] == 3
    # Page 1, then pages 2 and 3, then page 1 again (the consistency check).
    assert cold["critical_path_ms"] == cold["latency_ms"] * 3
    assert cold["status"] == 200
    assert cold["complete_ms"] >= cold["critical_path_ms"]
    assert cold["ratio"] > 0


def test_reload_and_live_loop_are_observed(results: dict[str, Any]) -> None:
    size = results["sizes"]["250"]
    swr = size["swr"]
    assert swr["reload_landed"] is True
    assert swr["samples"] > 0  # at least one answer was served stale during the reload
    assert swr["first_after_reload_ms"] > 0
    live = size["live"]
    for phase in ("cold_load", "reload", "build", "all_load"):
        assert phase in live
    assert live["cold_load"]["samples"] > 0
    assert live["cold_load"]["failed"] == 0
    assert live["reload"]["failed"] == 0


def test_memory_search_access_log(results: dict[str, Any]) -> None:
    size = results["sizes"]["250"]
    memory = size["memory"]
    assert 0 < memory["idle_rss_bytes"] <= memory["warm_hwm_bytes"]
    assert memory["peak_bytes"] >= memory["warm_rss_bytes"] > 0
    assert memory["bytes_per_account"] is not None
    search = size["search"]
    assert search["queries"] == 50
    assert search["non_200"] == 0
    assert search["distinct_p50_ms"] > 0
    assert search["repeated_p50_ms"] > 0
    access = size["access_log"]
    assert access["on"]["requests"] > 0
    assert access["on"]["non_2xx"] == 0
    if access["switch"] is not None:
        assert access["off"]["requests"] > 0
        assert access["off"]["non_2xx"] == 0


def test_coalescing_asks_each_page_once(results: dict[str, Any]) -> None:
    rows = results["sizes"]["250"]["coalescing"]
    assert [row["concurrency"] for row in rows] == list(COALESCING_LEVELS)
    for row in rows:
        assert row["statuses"] == {"200 complete": row["concurrency"]}
        assert row["finsync_pages_called"] == 3
        # Once each, and page 1 once more at the end of the read, to confirm nothing moved.
        assert row["finsync_calls_per_page_max"] == 2
        assert row["finsync_calls_per_page_mean"] == round(4 / 3, 3)
        assert row["finqware_calls_per_consent_max"] == 1


def test_the_attack_is_measured_with_its_targets_figures(results: dict[str, Any]) -> None:
    attack = results["attack"]
    assert attack["clients"] == 250
    assert attack["page_size"] == 10_000
    run = attack["attack"]
    assert run["connections"] == 200
    assert run["requests"] > 0
    # One key on 200 connections: past its 16 requests in flight it is refused (429).
    assert set(run["statuses"]) <= {"200", "429", "503"}
    assert run["statuses"].get("429", 0) > 0
    assert attack["peak_rss_bytes"] >= attack["idle_rss_bytes"] > 0
    for window in ("healthz", "other_kept_answer"):
        assert attack[window]["samples"] > 0
        assert attack[window]["failed"] == 0
        assert attack[window]["p50_ms"] <= attack[window]["p99_ms"]
    assert 0 <= attack["busy_after_seconds"] < 60


def test_the_consolidated_answer_is_measured_beside_the_plain_one(
    results: dict[str, Any],
) -> None:
    fx = results["sizes"]["250"]["fx"]
    cold = fx["cold"]
    assert cold["status"] == 200
    assert cold["complete"] is True
    # Tesoro's own rate simulators answered: every source the question needs is listed ok.
    assert cold["fx_sources"]
    assert set(cold["fx_sources"].values()) == {"ok"}
    assert cold["critical_path_ms"] == max(cold["upstreams_ms"], cold["rates_ms"])
    assert cold["wall_ms"] >= cold["critical_path_ms"]
    assert cold["plain_wall_ms"] > 0
    assert set(fx["warm"]) == {name for name, _ in FX_TARGETS}
    for name, figures in fx["warm"].items():
        assert figures["requests"] > 0, name
        assert figures["non_2xx"] == 0, name
        assert figures["socket_errors"] == 0, name
        assert figures["cpu_ratio"] > 0
        assert figures["cpu_ratio_median"] > 0
    assert fx["warm"]["/positions"]["fx_sources"] == {}
    assert fx["warm"]["?report_currency=USD"]["fx_sources"]
    assert len(fx["load_average"]["before"]) == 3
