"""The cost of tesoro's header limits: uvicorn's httptools against tesoro's limited protocol.

Each round serves the sandbox app with one protocol on a loopback port (pinned to core 0)
and drives `GET /healthz` with wrk (pinned to core 1) for a few seconds; rounds alternate so
drift hits both alike, and the medians are compared. Needs `wrk` (Debian's package).
Run: `python -m bench.bench_protocol [rounds] [seconds]`.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys

from bench.loopback import free_port, process, wait_for

SERVER = """
import sys, uvicorn
from app.main import create_app
from app.server import limited_protocol
from app.settings import Settings
http = limited_protocol() if sys.argv[1] == "limited" else "httptools"
uvicorn.run(create_app(Settings(_env_file=None, sandbox=True)), host="127.0.0.1",
            port=int(sys.argv[2]), loop="uvloop", http=http, log_level="error",
            access_log=False)
"""


def one_round(kind: str, seconds: int) -> float:
    port = free_port()
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    with process([*pin, sys.executable, "-c", SERVER, kind, str(port)], env):
        wait_for(port)
        load = ["taskset", "-c", "1"] if pin else []
        out = subprocess.run(
            [*load, "wrk", "-t1", "-c32", f"-d{seconds}s", f"http://127.0.0.1:{port}/healthz"],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 30,
        ).stdout
    found = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    assert found is not None, out
    return float(found.group(1))


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    results: dict[str, list[float]] = {"httptools": [], "limited": []}
    for _ in range(rounds):
        for kind in results:
            results[kind].append(one_round(kind, seconds))
    base = statistics.median(results["httptools"])
    for kind, values in results.items():
        median = statistics.median(values)
        print(f"{kind:10s} median {median:8.0f} req/s  = {median / base:4.2f}x httptools  {values}")


if __name__ == "__main__":
    main()
