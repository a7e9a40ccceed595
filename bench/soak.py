"""A fault soak: tesoro under load while its upstreams rotate through their failures.

Starts the two simulators (`tesoro sandbox`) and tesoro (`tesoro serve`, the production
way, pointed at them) as separate processes on loopback ports; drives `GET /positions`
with wrk at 64 connections while a rotation switches the simulators' faults every few
seconds (500s, stalls, HTML pages, truncated JSON, the bank's rate limit; the expired
consent is always there); then reports the answers that were not 2xx (only 503s are
designed, and only when no connection has data), latency percentiles, and tesoro's own
count of upstream calls by connection outcome. Bounded in time; loopback only.

Run: `python -m bench.soak [seconds]` (needs wrk: `apt-get install wrk`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading

import httpx2

from app.sandbox.data import (
    FINQWARE_CLIENT_ID,
    FINQWARE_CLIENT_SECRET,
    FINSYNC_API_KEY,
    SANDBOX_CONSENTS,
)
from bench.loopback import free_port, process, wait_for

ROTATION: list[tuple[str, dict[str, object]]] = [
    ("none", {"mode": "none"}),
    ("finsync 500s", {"mode": "error"}),
    ("finsync stalls 8 s", {"mode": "timeout", "delay_seconds": 8}),
    ("finsync HTML page", {"mode": "html"}),
    ("finsync truncated JSON", {"mode": "truncated"}),
    ("bank rate limit", {"mode": "rate_limited"}),
    ("finqware 500s", {"mode": "error"}),
]
STEP_SECONDS = 3.0


def rotate(finsync_url: str, finqware_url: str, stop: threading.Event) -> list[str]:
    done: list[str] = []
    step = 0
    while not stop.is_set():
        name, fault = ROTATION[step % len(ROTATION)]
        finsync_fault = fault if not name.startswith(("bank", "finqware")) else {"mode": "none"}
        finqware_fault = fault if name.startswith(("bank", "finqware")) else {"mode": "none"}
        for url, body in ((finsync_url, finsync_fault), (finqware_url, finqware_fault)):
            httpx2.put(f"{url}/_sandbox/faults", content=json.dumps(body), timeout=5)
        done.append(name)
        step += 1
        stop.wait(STEP_SECONDS)
    for url in (finsync_url, finqware_url):
        httpx2.put(f"{url}/_sandbox/faults", content=json.dumps({"mode": "none"}), timeout=5)
    return done


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    finsync_port, finqware_port, tesoro_port = free_port(), free_port(), free_port()
    base_env = {**os.environ, "PYTHONPATH": os.getcwd()}
    base_env = {k: v for k, v in base_env.items() if not k.startswith("TESORO_")}
    finsync_url = f"http://127.0.0.1:{finsync_port}"
    finqware_url = f"http://127.0.0.1:{finqware_port}"
    consents = [consent.as_setting() for consent in SANDBOX_CONSENTS]
    tesoro_env = {
        **base_env,
        "TESORO_FINSYNC_BASE_URL": finsync_url,
        "TESORO_FINSYNC_API_KEY": FINSYNC_API_KEY,
        "TESORO_FINQWARE_BASE_URL": finqware_url + "/v1",
        "TESORO_FINQWARE_CLIENT_ID": FINQWARE_CLIENT_ID,
        "TESORO_FINQWARE_CLIENT_SECRET": FINQWARE_CLIENT_SECRET,
        "TESORO_FINQWARE_CONSENTS": json.dumps(consents),
        "TESORO_AUTH_DISABLED": "true",
        # Short lifetimes, so the soak exercises reloads, stale data and the breaker.
        "TESORO_FINSYNC_TTL_SECONDS": "2",
        "TESORO_FINQWARE_TTL_SECONDS": "2",
        "TESORO_LOG_LEVEL": "error",
    }
    python = sys.executable
    with (
        process(
            [python, "-m", "app", "sandbox", "--finsync-port", str(finsync_port),
             "--finqware-port", str(finqware_port)],
            base_env,
        ),
        process([python, "-m", "app", "serve", "--port", str(tesoro_port)], tesoro_env),
    ):  # fmt: skip
        for port in (finsync_port, finqware_port, tesoro_port):
            wait_for(port)
        url = f"http://127.0.0.1:{tesoro_port}"
        httpx2.get(f"{url}/positions", timeout=30)  # warm
        stop = threading.Event()
        steps: list[str] = []
        rotation = threading.Thread(
            target=lambda: steps.extend(rotate(finsync_url, finqware_url, stop)), daemon=True
        )
        rotation.start()
        out = subprocess.run(
            ["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", "--timeout", "15s",
             f"{url}/positions"],
            capture_output=True, text=True, check=True, timeout=seconds + 60,
        ).stdout  # fmt: skip
        stop.set()
        rotation.join(timeout=10)
        metrics = httpx2.get(f"{url}/metrics", timeout=10).text
    print(f"faults rotated every {STEP_SECONDS:g} s: {', '.join(steps)}")
    for line in out.splitlines():
        if re.search(r"Requests/sec|Non-2xx|requests in|Socket errors|\d+%\s", line):
            print(line.rstrip())
    if "Non-2xx" not in out:
        print("every answer was 2xx")
    print("tesoro's upstream calls by upstream and outcome:")
    for line in metrics.splitlines():
        if line.startswith("tesoro_upstream_requests_total"):
            print("  " + line)
    print("tesoro's answers by route and status:")
    for line in metrics.splitlines():
        if line.startswith("tesoro_http_requests_total") and "/positions" in line:
            print("  " + line)


if __name__ == "__main__":
    main()
