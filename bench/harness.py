"""The hot-path benchmark (`make bench`): tesoro served the production way, against fakes.

    python -m bench.harness [--sizes 250,5000,50000] [--duration 10] [--latency-ms 50]
                            [--output bench/results.json] [--smoke]
                            [--only attack|fx|warm|live] [--attack-seconds 20]

For each size, as separate processes on loopback: the FinSync fake with that many clients
and the Finqware fake (`bench/fakes.py`, a fixed per-page latency), and `tesoro serve`
pointed at them, pinned to CPU 0; wrk pinned to CPU 1. Phases (see bench/README.md):

* warm: wrk on /healthz, /positions, /positions with gzip, /counterparties?page_size=200,
  each beside the bare baseline (`bench/baseline.py`, the same bytes under the same uvicorn
  settings) in the same run: req/s, ratio, server CPU µs per request, p50/p99;
* cold: the first /positions after start against the critical path of the fakes' latency;
* live (short TTLs, fresh process): /healthz polled every 10 ms by another process while
  the data loads cold, reloads behind stale answers, and the first answer after a data
  change is built; the stale answers' latency during the reload; RSS sampled throughout;
* memory: RSS idle, after warm-up, at the reload's peak, VmHWM; bytes per account;
* search: /counterparties?q= over distinct fragments, and one fragment repeated;
* coalescing: 1, 10, 100, 1000 concurrent cold /positions on a fresh process each: upstream
  calls per FinSync page and per Finqware consent, answers built;
* access log: the warm /positions wrk with the access line on (as shipped) and off;
* attack (the largest size only, or alone with `--only attack`): one read-only key on 200
  connections asking a distinct question every request, while another caller reads a kept
  answer and /healthz is polled: peak RSS, both p99s, work after the attack stopped;
* fx (alone with `--only fx`, at every size): the rate sources served by tesoro's own
  simulators (`bench.fakes rates`, the same latency); on a fresh tesoro the first
  /positions?report_currency=USD against the critical path (the slowest of the upstreams and
  the rate sources, all asked at once), then wrk on the warm consolidated answers beside the
  warm plain /positions, alternating: the cost ratio consolidated / plain.

Writes every figure to the results file (with the machine, date and commit) and prints a
table. Every loop is bounded in count and time; traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import http.client
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2

from bench.fakes import PAGE_SIZE, RATE_SOURCES, consents, search_fragments
from bench.loopback import free_port, process

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench" / "results.json"
DEFAULT_ATTACK_OUTPUT = ROOT / "bench" / "results-attack.json"
CALLER_KEY = "bench-caller-key"
AUTH = {"Authorization": f"Bearer {CALLER_KEY}"}
# The attack phase's second caller, who only reads a kept answer while the first attacks.
OTHER_KEY = "bench-other-key"
OTHER_AUTH = {"Authorization": f"Bearer {OTHER_KEY}"}
# The throughput and coalescing phases send one caller's 32 connections, and 1,000 concurrent
# cold requests: what the per-caller limit exists to refuse. They lift it; the attack does not.
NO_CALLER_LIMIT = {"TESORO_CALLER_MAX_IN_FLIGHT": "100000"}
ATTACK_CONNECTIONS = 200
ATTACK_SECONDS = 20.0
ATTACK_PAGE_SIZE = 10_000
OTHER_INTERVAL_SECONDS = 0.05
# After the attack: tesoro counts as quiet again once it uses under this share of a core
# over one window; how long that takes is the work that went on after the attack stopped.
QUIET_CPU_SHARE = 0.1
QUIET_WINDOW_SECONDS = 0.25
QUIET_MAX_SECONDS = 60.0
CONSENTS = 3
SERVER_CPU = 0
CLIENT_CPU = 1 if (os.cpu_count() or 1) > 1 else 0
CONNECTIONS = 32
COALESCING_LEVELS = (1, 10, 100, 1000)
SEARCHES = 50
POLL_INTERVAL_SECONDS = 0.01
PROBE_INTERVAL_SECONDS = 0.1
WARM_ROUNDS = 2
LIVE_TTL_SECONDS = 3.0
LONG_TTL_SECONDS = 86400
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The warm targets: (name, path and query, extra request headers).
TARGETS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("/healthz", "/healthz", {}),
    ("/positions", "/positions", {}),
    ("/positions gzip", "/positions", {"Accept-Encoding": "gzip"}),
    ("/counterparties?page_size=200", "/counterparties?page_size=200", {}),
)
# The fx phase's warm targets: the plain answer, then the consolidated ones it is set against.
FX_PLAIN = "/positions"
FX_TARGETS: tuple[tuple[str, str], ...] = (
    ("/positions", FX_PLAIN),
    ("?report_currency=USD", "/positions?report_currency=USD"),
    ("?report_currency=USD&rates=market", "/positions?report_currency=USD&rates=market"),
)
DEFAULT_FX_OUTPUT = ROOT / "bench" / "results-fx.json"
DEFAULT_WARM_OUTPUT = ROOT / "bench" / "results-warm.json"
DEFAULT_LIVE_OUTPUT = ROOT / "bench" / "results-live.json"
FX_ROUNDS = 6
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"bytes\\":%d,\\"non_2xx\\":%d,"
    .. "\\"socket_errors\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d,\\"max_us\\":%d}\\n",
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


# --------------------------------------------------------------------------- tools


def ensure_wrk() -> str:
    """wrk's path, installed from Debian's packages when missing (needs root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing; install it: sudo apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "install", "-y", "-qq", "wrk"], ["apt-get", "update", "-qq"]):
        subprocess.run(step, env=env, check=False, timeout=600, capture_output=True)
        if step[1] == "update":
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", "wrk"],
                env=env, check=False, timeout=600, capture_output=True,
            )  # fmt: skip
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit("wrk is missing and `apt-get install -y wrk` did not install it")


def pinned(cpu: int, args: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *args] if shutil.which("taskset") else args


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process in bytes, from /proc/<pid>/status."""
    found = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) * 1024
    return found


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (share in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(milliseconds: Sequence[float]) -> dict[str, Any]:
    return {
        "samples": len(milliseconds),
        "p50_ms": percentile(milliseconds, 50),
        "p99_ms": percentile(milliseconds, 99),
        "max_ms": max(milliseconds) if milliseconds else None,
    }


# --------------------------------------------------------------------------- processes


@dataclass
class Running:
    name: str
    child: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _why(command: list[str], env: dict[str, str], cwd: str) -> str:
    """What a child that failed to start writes when run again (it is quiet when run)."""
    try:
        again = subprocess.run(
            command, env=env, cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return "(it ran again without failing)"
    return (again.stderr or again.stdout)[-2000:]


def _wait_listening(
    running: Running, command: list[str], env: dict[str, str], cwd: str, seconds: float = 60
) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        code = running.child.poll()
        if code is not None:
            raise RuntimeError(
                f"{running.name} exited ({code}) before listening: "
                + " ".join(command)
                + "\n"
                + _why(command, env, cwd)
            )
        try:
            socket.create_connection(("127.0.0.1", running.port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{running.name} did not listen on {running.port} within {seconds:g} s")


@contextmanager
def started(name: str, command: list[str], env: dict[str, str], cpu: int) -> Iterator[Running]:
    port = free_port()
    args = pinned(cpu, [arg.replace("{port}", str(port)) for arg in command])
    with tempfile.TemporaryDirectory(prefix="tesoro-bench-") as cwd, process(
        args, env, cwd=cwd
    ) as child:  # fmt: skip
        running = Running(name, child, port)
        _wait_listening(running, args, env, cwd)
        yield running


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESORO_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


@dataclass
class Fakes:
    finsync: Running
    finqware: Running
    clients: int
    latency_ms: float
    rates: Running | None = None

    def calls(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for fake in (self.finsync, self.finqware):
            found.update(json.loads(httpx2.get(f"{fake.url}/_calls", timeout=10).text))
        return found

    def rate_calls(self) -> dict[str, int]:
        if self.rates is None:
            return {}
        found: dict[str, int] = json.loads(httpx2.get(f"{self.rates.url}/_calls", timeout=10).text)
        return found

    def accounts(self) -> int:
        info = json.loads(httpx2.get(f"{self.finsync.url}/_info", timeout=10).text)
        return int(info["accounts"])

    def change(self) -> None:
        httpx2.post(f"{self.finsync.url}/_change", timeout=10).raise_for_status()


def tesoro_env(fakes: Fakes, **overrides: str) -> dict[str, str]:
    """tesoro's environment against the fakes, the per-caller limit lifted (see
    NO_CALLER_LIMIT; `attack_env` keeps it)."""
    digest = hashlib.sha256(CALLER_KEY.encode()).hexdigest()
    other = hashlib.sha256(OTHER_KEY.encode()).hexdigest()
    from app.sandbox.data import FINQWARE_CLIENT_ID, FINQWARE_CLIENT_SECRET, FINSYNC_API_KEY

    env = {
        **base_env(),
        "TESORO_FINSYNC_BASE_URL": fakes.finsync.url,
        "TESORO_FINSYNC_API_KEY": FINSYNC_API_KEY,
        "TESORO_FINQWARE_BASE_URL": fakes.finqware.url + "/v1",
        "TESORO_FINQWARE_CLIENT_ID": FINQWARE_CLIENT_ID,
        "TESORO_FINQWARE_CLIENT_SECRET": FINQWARE_CLIENT_SECRET,
        "TESORO_FINQWARE_CONSENTS": json.dumps([c.as_setting() for c in consents(CONSENTS)]),
        "TESORO_API_KEYS": json.dumps(
            {
                "bench": {"sha256": digest, "scopes": ["read"]},
                "other": {"sha256": other, "scopes": ["read"]},
            }
        ),
        # Data lifetimes long enough that no reload runs inside a warm phase (the live
        # phase sets them short); everything else is tesoro's default.
        "TESORO_FINSYNC_TTL_SECONDS": str(LONG_TTL_SECONDS),
        "TESORO_FINQWARE_TTL_SECONDS": str(LONG_TTL_SECONDS),
        **NO_CALLER_LIMIT,
    }
    if fakes.rates is not None:
        # The rate sources' simulators, one path each; their latest fixings kept as long as
        # the upstreams' data, so no refresh lands inside a warm phase either.
        env.update(
            {
                f"TESORO_FX_{name.upper()}_BASE_URL": f"{fakes.rates.url}/{name}"
                for name in RATE_SOURCES
            }
        )
        env["TESORO_FX_TTL_SECONDS"] = str(LONG_TTL_SECONDS)
    env.update(overrides)
    return env


TESORO = [
    str(ROOT / ".venv" / "bin" / "tesoro"),
    "serve",
    "--host",
    "127.0.0.1",
    "--port",
    "{port}",
]


def start_tesoro(stack: ExitStack, env: dict[str, str], name: str = "tesoro") -> Running:
    command = TESORO if Path(TESORO[0]).exists() else [sys.executable, "-m", "app", *TESORO[1:]]
    return stack.enter_context(started(name, command, env, SERVER_CPU))


# --------------------------------------------------------------------------- HTTP


class Client:
    """One keep-alive connection; raw bytes (no decoding), wall time per request."""

    def __init__(self, port: int, timeout: float = 120) -> None:
        self._port, self._timeout = port, timeout
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def get(
        self, target: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes, float]:
        for attempt in (1, 2):
            start = time.perf_counter()
            try:
                self._conn.request("GET", target, headers={**AUTH, **(headers or {})})
                response = self._conn.getresponse()
                body = response.read()
            except (ConnectionError, http.client.HTTPException):
                self._conn.close()
                self._conn = http.client.HTTPConnection("127.0.0.1", self._port, self._timeout)
                if attempt == 2:
                    raise
                continue
            seconds = time.perf_counter() - start
            found = {k.lower(): v for k, v in response.getheaders()}
            return response.status, found, body, seconds
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._conn.close()


def wrk(
    url: str, seconds: float, pid: int, headers: dict[str, str], script: Path
) -> dict[str, Any]:
    """One wrk run pinned to the client CPU; the server's CPU time is measured around it."""
    header_args = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    command = pinned(
        CLIENT_CPU,
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
         "-s", str(script), *header_args, url],
    )  # fmt: skip
    before = cpu_seconds(pid)
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    used = cpu_seconds(pid) - before
    line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
    raw = json.loads(line.removeprefix("WRKJSON "))
    requests = raw["requests"]
    duration = raw["duration_us"] / 1e6
    return {
        "requests": requests,
        "seconds": round(duration, 3),
        "rps": round(requests / duration, 1) if duration else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "bytes_per_request": round(raw["bytes"] / requests) if requests else 0,
        "non_2xx": raw["non_2xx"],
        "socket_errors": raw["socket_errors"],
        "server_cpu_seconds": round(used, 2),
        "cpu_us_per_request": round(used * 1e6 / requests, 1) if requests else None,
    }


def answer_builds(url: str) -> int | None:
    """tesoro_answer_builds_total from /metrics (summed over labels); None when absent."""
    text = httpx2.get(f"{url}/metrics", headers=AUTH, timeout=30).text
    values = [
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("tesoro_answer_builds_total")
    ]
    return round(sum(values)) if values else None


# --------------------------------------------------------------------------- samplers


def attack_env(fakes: Fakes) -> dict[str, str]:
    """tesoro's environment for the attack: every limit at its default."""
    env = tesoro_env(fakes)
    for name in NO_CALLER_LIMIT:
        env.pop(name)
    return env


def poll(
    port: int,
    stop_file: str,
    max_seconds: float,
    path: str = "/healthz",
    key: str = CALLER_KEY,
    interval_seconds: float = POLL_INTERVAL_SECONDS,
) -> None:
    """Run as its own process: GET `path` (as the caller of `key`) every `interval_seconds`
    until `stop_file` exists (or `max_seconds`), then print `[[monotonic start, milliseconds
    or null], ...]` (null: not a 200). A file `<stop_file>.ready` says the first answer came
    back."""
    samples: list[tuple[float, float | None]] = []
    client = Client(port, timeout=30)
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        start = time.monotonic()
        try:
            status, _, _, seconds = client.get(path, headers)
            samples.append((start, seconds * 1000 if status == 200 else None))
        except OSError:
            samples.append((start, None))
        if len(samples) == 1:
            Path(f"{stop_file}.ready").touch()
        time.sleep(max(0.0, interval_seconds - (time.monotonic() - start)))
    client.close()
    print(json.dumps(samples))


class Poller:
    """A poller process (/healthz by default); samples are read when it stops."""

    def __init__(
        self,
        port: int,
        max_seconds: float,
        path: str = "/healthz",
        key: str = CALLER_KEY,
        interval_seconds: float = POLL_INTERVAL_SECONDS,
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="tesoro-poll-")
        self._stop = os.path.join(self._dir.name, "stop")
        code = (
            "import sys; from bench.harness import poll; "
            f"poll({port}, {self._stop!r}, {max_seconds}, {path!r}, {key!r}, {interval_seconds})"
        )
        self._child = subprocess.Popen(
            pinned(CLIENT_CPU, [sys.executable, "-c", code]),
            env=base_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        self.samples: list[tuple[float, float | None]] = []
        self.max_seconds = max_seconds
        ready = time.monotonic() + 30
        while not os.path.exists(f"{self._stop}.ready") and time.monotonic() < ready:
            if self._child.poll() is not None:
                raise RuntimeError("the /healthz poller exited before its first poll")
            time.sleep(0.02)

    def stop(self) -> list[tuple[float, float | None]]:
        Path(self._stop).touch()
        out, _ = self._child.communicate(timeout=self.max_seconds + 30)
        self._dir.cleanup()
        self.samples = [(t, ms) for t, ms in json.loads(out)]
        return self.samples

    def window(self, start: float, end: float) -> dict[str, Any]:
        inside = [ms for t, ms in self.samples if start <= t <= end]
        ok = [ms for ms in inside if ms is not None]
        return {**latency_summary(ok), "failed": len(inside) - len(ok)}


class RssSampler:
    """VmRSS of a process every 20 ms in a thread, with the peak of any time window."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.samples.append((time.monotonic(), memory(self._pid)["VmRSS"]))
            except (OSError, KeyError):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def peak(self, start: float, end: float) -> int | None:
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return max(inside) if inside else None


# --------------------------------------------------------------------------- phases


def critical_path_ms(clients: int, latency_ms: float, page_concurrency: int) -> dict[str, Any]:
    """The least time a cold /positions can take: FinSync's page 1, then the other pages
    `page_concurrency` at a time, then (more than one page) page 1 again, once every page is
    in: the consistency check of issue #15, which must start after the last page landed to
    see a move during the read; beside it Finqware's accounts and balances of every consent
    at once (one latency). The longer of the two."""
    pages = max(1, -(-clients // PAGE_SIZE))
    again = 1 if pages > 1 else 0
    finsync = latency_ms * (1 + math.ceil((pages - 1) / page_concurrency) + again)
    finqware = latency_ms
    return {
        "pages": pages,
        "page_concurrency": page_concurrency,
        "finsync_ms": finsync,
        "finqware_ms": finqware,
        "critical_path_ms": max(finsync, finqware),
    }


def page_concurrency() -> int:
    from app.settings import Settings

    default = Settings.model_fields["finsync_page_concurrency"].default
    return int(os.environ.get("TESORO_FINSYNC_PAGE_CONCURRENCY", default))


def access_log_switch() -> dict[str, str] | None:
    """The environment that turns tesoro's access line off, if tesoro has one."""
    from app.settings import Settings

    fields = Settings.model_fields
    if "access_log" in fields:
        return {"TESORO_ACCESS_LOG": "false"}
    if "log_level" in fields:
        # The access line is written at INFO: above it, none is written.
        return {"TESORO_LOG_LEVEL": "warning"}
    return None


def capture(client: Client, path: str, headers: dict[str, str], name: str) -> dict[str, Any]:
    status, found, body, _ = client.get(path, headers)
    if status != 200:
        raise RuntimeError(f"tesoro answered {status} to {name}: {body[:300]!r}")
    return {
        "target": path,
        "gzip": "gzip" in headers.get("Accept-Encoding", ""),
        "status": status,
        "content_type": found.get("content-type", "application/octet-stream"),
        "content_encoding": found.get("content-encoding"),
        "body_b64": base64.b64encode(body).decode(),
    }


def ratio(part: float | None, whole: float | None, digits: int = 3) -> float | None:
    return round(part / whole, digits) if part is not None and whole else None


@dataclass
class Plan:
    sizes: list[int]
    duration: float
    latency_ms: float
    levels: tuple[int, ...]
    searches: int
    script: Path
    rounds: int = WARM_ROUNDS
    log: Callable[[str], None] = field(default=print)
    attack_seconds: float = ATTACK_SECONDS
    attack_script: Path = Path()
    # The attack runs at this size only (the largest asked); None: nowhere.
    attack_size: int | None = None
    only: str | None = None


def warm_phases(
    plan: Plan, stack: ExitStack, fakes: Fakes, tesoro: Running
) -> tuple[dict[str, Any], dict[str, Any]]:
    client = Client(tesoro.port)
    answers = []
    for name, path, headers in TARGETS:
        client.get(path, headers)  # builds the kept answer
        answers.append(capture(client, path, headers, name))
    client.close()
    # What the load set going goes on behind it (at 50,000 clients the history recorder writes
    # its first observation for tens of seconds): measured after it, not beside it.
    settled = busy_after(tesoro.pid)
    plan.log(f"  warm: tesoro quiet {settled} s after the answers were built")
    spec = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tesoro-bl-"))) / "a.json"
    spec.write_text(json.dumps(answers), encoding="utf-8")
    baseline = stack.enter_context(
        started(
            "baseline",
            [sys.executable, "-m", "bench.baseline", "--spec", str(spec), "--port", "{port}"],
            base_env(),
            SERVER_CPU,
        )
    )
    warm: dict[str, Any] = {}
    for (name, path, headers), answer in zip(TARGETS, answers, strict=True):
        # Alternated in rounds, so a neighbour's burst on the shared machine hits both.
        runs: dict[str, list[dict[str, Any]]] = {"tesoro": [], "baseline": []}
        for _ in range(plan.rounds):
            for who, server in (("tesoro", tesoro), ("baseline", baseline)):
                url = f"{server.url}{path}"
                step = max(1.0, plan.duration / plan.rounds)
                runs[who].append(wrk(url, step, server.pid, {**AUTH, **headers}, plan.script))
        both = {who: combined(found) for who, found in runs.items()}
        for who, found in runs.items():
            both[who]["bytes_per_request"] = found[0]["bytes_per_request"]
        warm[name] = {
            **both,
            "body_bytes": len(base64.b64decode(answer["body_b64"])),
            "content_encoding": answer["content_encoding"],
            "rps_ratio": ratio(both["tesoro"]["rps"], both["baseline"]["rps"]),
            "cpu_ratio": ratio(
                both["tesoro"]["cpu_us_per_request"], both["baseline"]["cpu_us_per_request"]
            ),
        }
        plan.log(
            f"  warm {name:32s} tesoro {both['tesoro']['rps']:9.1f} req/s "
            f"{both['tesoro']['cpu_us_per_request']} µs/req | baseline "
            f"{both['baseline']['rps']:9.1f} req/s -> ratio {warm[name]['rps_ratio']}"
        )
    return warm, {"baseline_pid": baseline.pid, "settled_after_seconds": settled}


def search_phase(plan: Plan, tesoro: Running) -> dict[str, Any]:
    client = Client(tesoro.port)
    distinct, repeated, statuses = [], [], []
    fragments = search_fragments(plan.searches)
    for fragment in fragments:
        status, _, _, seconds = client.get(f"/counterparties?q={quote(fragment)}")
        statuses.append(status)
        distinct.append(seconds * 1000)
    for _ in range(plan.searches):
        status, _, _, seconds = client.get(f"/counterparties?q={quote(fragments[0])}")
        statuses.append(status)
        repeated.append(seconds * 1000)
    client.close()
    return {
        "queries": len(distinct),
        "distinct_p50_ms": percentile(distinct, 50),
        "distinct_max_ms": max(distinct),
        "repeated_p50_ms": percentile(repeated, 50),
        "non_200": sum(1 for s in statuses if s != 200),
    }


def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several wrk runs as one: totals, CPU per request over all, p50 the median of the
    runs', p99 and max the worst."""
    requests = sum(run["requests"] for run in runs)
    seconds = sum(run["seconds"] for run in runs)
    cpu = sum(run["server_cpu_seconds"] for run in runs)
    return {
        "runs": len(runs),
        "requests": requests,
        "seconds": round(seconds, 3),
        "rps": round(requests / seconds, 1) if seconds else 0.0,
        "p50_ms": statistics.median(run["p50_ms"] for run in runs),
        "p99_ms": max(run["p99_ms"] for run in runs),
        "max_ms": max(run["max_ms"] for run in runs),
        "non_2xx": sum(run["non_2xx"] for run in runs),
        "socket_errors": sum(run["socket_errors"] for run in runs),
        "server_cpu_seconds": round(cpu, 2),
        "cpu_us_per_request": round(cpu * 1e6 / requests, 1) if requests else None,
    }


def access_log_phase(plan: Plan, stack: ExitStack, fakes: Fakes, tesoro: Running) -> dict[str, Any]:
    """The warm /positions with the access line on (tesoro as shipped) and off (a second
    process with the switch), alternated in rounds so both see the same machine."""
    switch = access_log_switch()
    rounds = plan.rounds
    step = max(1.0, plan.duration / rounds)
    if switch is None:
        on = wrk(f"{tesoro.url}/positions", plan.duration, tesoro.pid, AUTH, plan.script)
        return {"switch": None, "on": on, "off": None, "cost_us_per_request": None}
    quiet = start_tesoro(stack, tesoro_env(fakes, **switch), "tesoro (access log off)")
    client = Client(quiet.port)
    wait_complete(client, time.monotonic() + 120)
    client.close()
    on_runs, off_runs = [], []
    for _ in range(rounds):
        on_runs.append(wrk(f"{tesoro.url}/positions", step, tesoro.pid, AUTH, plan.script))
        off_runs.append(wrk(f"{quiet.url}/positions", step, quiet.pid, AUTH, plan.script))
    on, off = combined(on_runs), combined(off_runs)
    cost = (
        round(on["cpu_us_per_request"] - off["cpu_us_per_request"], 1)
        if on["cpu_us_per_request"] is not None and off["cpu_us_per_request"] is not None
        else None
    )
    return {
        "switch": " ".join(f"{k}={v}" for k, v in switch.items()),
        "on": on,
        "off": off,
        "rps_ratio_on_off": ratio(on["rps"], off["rps"]),
        "cost_us_per_request": cost,
    }


def wait_complete(
    client: Client, until: float, headers: dict[str, str] | None = None
) -> tuple[dict[str, Any], float]:
    """/positions every 50 ms until an answer is complete (or `until`): the answer and the
    moment it arrived."""
    while True:
        status, _, body, _ = client.get("/positions", headers)
        answer = json.loads(body) if status == 200 else {}
        if answer.get("complete") or time.monotonic() >= until:
            return answer, time.monotonic()
        time.sleep(0.05)


def _finsync_status(status: int, body: bytes) -> str:
    if status != 200:
        return f"http {status}"
    for source in json.loads(body).get("sources", []):
        if source.get("source") == "finsync":
            return str(source.get("status"))
    return "absent"


def live_phase(plan: Plan, fakes: Fakes, critical_ms: float) -> dict[str, Any]:
    """Fresh tesoro with a short FinSync TTL: /healthz polled from another process during the
    cold load, during the reload behind stale answers, and while the first answer after the
    data changed is built. (Finqware keeps its long TTL, so only FinSync's reload, the large
    one, is measured.)"""
    budget = 60 + 6 * critical_ms / 1000
    short = {"TESORO_FINSYNC_TTL_SECONDS": str(LIVE_TTL_SECONDS)}
    seen: dict[str, int] = {}
    with ExitStack() as stack:
        tesoro = start_tesoro(stack, tesoro_env(fakes, **short), "tesoro (live)")
        rss = RssSampler(tesoro.pid)
        poller = Poller(tesoro.port, max_seconds=budget * 2 + LIVE_TTL_SECONDS + 30)
        client = Client(tesoro.port)
        client.get("/healthz")
        time.sleep(0.3)  # the poller polls an idle tesoro for a moment, before any load
        cold_start = time.monotonic()
        status, _, body, cold_seconds = client.get("/positions")
        cold_first_end = time.monotonic()
        cold_status = _finsync_status(status, body)
        # A first answer cut short by the request deadline: the load goes on behind it.
        cold_end = wait_complete(client, cold_start + budget)[1]
        fakes.change()  # the reload will bring new data: the answers are built again
        time.sleep(max(0.0, cold_end + LIVE_TTL_SECONDS + 0.2 - time.monotonic()))
        reload = _until_reloaded(client, time.monotonic() + budget, seen)
        # Then a TTL lapse with the data unchanged: the first answer once the reload behind
        # it has landed.
        lapse_from = (reload.end or time.monotonic()) + LIVE_TTL_SECONDS + 0.2
        time.sleep(max(0.0, lapse_from - time.monotonic()))
        lapse = _until_reloaded(client, time.monotonic() + budget, {})
        time.sleep(0.2)
        client.close()
        poller.stop()
        rss.stop()
        status_after = memory(tesoro.pid)
    reload_start = reload.start or cold_end
    reload_end = reload.end or time.monotonic()
    build_end = reload.build_end or reload_end
    first_after_ms = reload.first_after_ms
    stale_ms = reload.stale_ms
    return {
        "ttl_seconds": LIVE_TTL_SECONDS,
        "cold_first_answer_finsync": cold_status,
        "cold_ms": round(cold_seconds * 1000, 1),
        "cold_complete_ms": round((cold_end - cold_start) * 1000, 1),
        "probe_interval_ms": PROBE_INTERVAL_SECONDS * 1000,
        "probe_finsync_statuses": seen,
        "reload_landed": first_after_ms is not None,
        "reload_seconds": round(reload_end - reload_start, 3),
        "stale_during_reload": latency_summary(stale_ms),
        "first_after_reload_ms": first_after_ms,
        "first_after_ttl_lapse_ms": lapse.first_after_ms,
        "healthz": {
            "poll_interval_ms": POLL_INTERVAL_SECONDS * 1000,
            "idle": poller.window(cold_start - 0.3, cold_start),
            "cold_load": poller.window(cold_start, cold_end),
            "cold_first_answer": poller.window(cold_start, cold_first_end),
            "reload": poller.window(reload_start, reload_end),
            "build": poller.window(reload_end, build_end),
            "ttl_lapse_reload": poller.window(lapse.start or lapse_from, lapse.end or lapse_from),
            "ttl_lapse_build": poller.window(
                lapse.end or lapse_from, lapse.build_end or lapse.end or lapse_from
            ),
            "all_load": {
                **latency_summary(
                    [
                        ms
                        for t, ms in poller.samples
                        if ms is not None
                        and (cold_start <= t <= cold_end or reload_start <= t <= build_end)
                    ]
                )
            },
        },
        "rss_peak_cold_bytes": rss.peak(cold_start, cold_end + 0.5),
        "rss_peak_reload_bytes": rss.peak(reload_start, build_end + 0.5),
        "hwm_bytes": status_after.get("VmHWM"),
    }


@dataclass
class Reloaded:
    """A reload probed by a steady /positions caller: when FinSync's answers turned stale
    and ok again, and the first answer after (which builds the new answer)."""

    stale_ms: list[float] = field(default_factory=list)
    start: float | None = None
    end: float | None = None
    build_end: float | None = None
    first_after_ms: float | None = None


def _until_reloaded(client: Client, deadline: float, seen: dict[str, int]) -> Reloaded:
    """/positions every 100 ms or so (a steady caller, not a flood that would slow the
    reload it measures) until FinSync's status went stale and back to ok."""
    found = Reloaded()
    while time.monotonic() < deadline:
        start = time.monotonic()
        status, _, body, seconds = client.get("/positions")
        finsync = _finsync_status(status, body)
        seen[finsync] = seen.get(finsync, 0) + 1
        if finsync == "stale":
            found.start = start if found.start is None else found.start
            found.stale_ms.append(seconds * 1000)
        elif found.start is not None:
            found.end, found.build_end = start, time.monotonic()
            found.first_after_ms = seconds * 1000
            break
        # Never busier than half the time: an answer that took long is followed by as
        # long a pause.
        pause = max(PROBE_INTERVAL_SECONDS, seconds)
        time.sleep(max(0.0, pause - (time.monotonic() - start)))
    return found


async def _concurrent(url: str, count: int) -> dict[str, int]:
    limits = httpx2.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx2.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        answers = await asyncio.gather(
            *(client.get("/positions", headers=AUTH) for _ in range(count)),
            return_exceptions=True,
        )
    found: dict[str, int] = {}
    for answer in answers:
        key = str(answer.status_code) if isinstance(answer, httpx2.Response) else "error"
        if key == "200" and isinstance(answer, httpx2.Response):
            key = "200 complete" if answer.json().get("complete") else "200 incomplete"
        found[key] = found.get(key, 0) + 1
    return found


def coalescing_phase(plan: Plan, fakes: Fakes) -> list[dict[str, Any]]:
    rows = []
    for level in plan.levels:
        with ExitStack() as stack:
            tesoro = start_tesoro(stack, tesoro_env(fakes), f"tesoro (cold x{level})")
            before = fakes.calls()
            start = time.perf_counter()
            statuses = asyncio.run(_concurrent(tesoro.url, level))
            seconds = time.perf_counter() - start
            if set(statuses) != {"200 complete"}:
                # Answered at the request deadline: the calls are counted once the load is in.
                client = Client(tesoro.port)
                wait_complete(client, time.monotonic() + 120)
                client.close()
            after = fakes.calls()
            builds = answer_builds(tesoro.url)
        delta = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
        pages = [v for k, v in delta.items() if k.startswith("GET /api/clients?page=")]
        consent_calls = [v for k, v in delta.items() if k.startswith("POST /v1/")]
        rows.append(
            {
                "concurrency": level,
                "statuses": statuses,
                "wall_seconds": round(seconds, 3),
                "finsync_pages_called": len(pages),
                "finsync_calls_per_page_max": max(pages, default=0),
                "finsync_calls_per_page_mean": round(sum(pages) / len(pages), 3) if pages else 0,
                "finqware_calls_per_consent_max": max(consent_calls, default=0),
                "finqware_calls": sum(consent_calls),
                "answer_builds": builds,
            }
        )
        plan.log(f"  coalescing x{level}: {rows[-1]}")
    return rows


# The reader's attack: every request a distinct question (never a kept answer) about a big
# share of the positions. A subset of the four currencies the fakes hold, plus a code nobody
# holds that changes with every request; all of it on one read-only key.
ATTACK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {}; counter = 0 end
local held = {"ARS", "USD", "USDT", "EUR"}
request = function()
  counter = counter + 1
  local subset = counter % 15 + 1
  local path = "/positions?page_size=PAGE_SIZE"
  for i = 1, 4 do
    if math.floor(subset / 2 ^ (i - 1)) % 2 == 1 then
      path = path .. "&currency=" .. held[i]
    end
  end
  path = path .. string.format("&currency=X%07d", counter)
  return wrk.format("GET", path)
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses")) do counts[code] = (counts[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(counts) do table.insert(parts, string.format('"%d":%d', code, n)) end
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"socket_errors\\":%d,"
    .. "\\"timeouts\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d,\\"max_us\\":%d,"
    .. "\\"statuses\\":{%s}}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, table.concat(parts, ",")))
end
""".replace("PAGE_SIZE", str(ATTACK_PAGE_SIZE))


def fx_critical_path_ms(clients: int, latency_ms: float, concurrency: int) -> dict[str, Any]:
    """The least time a cold consolidated /positions can take: the upstreams' critical path
    beside the rate sources' (each leg's fixing is one call to its source, every leg asked
    at once: one latency). The longer of the two."""
    upstreams = critical_path_ms(clients, latency_ms, concurrency)
    rates_ms = latency_ms
    return {
        **upstreams,
        "upstreams_ms": upstreams["critical_path_ms"],
        "rates_ms": rates_ms,
        "critical_path_ms": max(upstreams["critical_path_ms"], rates_ms),
    }


def _consolidated(body: bytes) -> dict[str, Any]:
    answer = json.loads(body)
    consolidated = answer.get("consolidated") or {}
    return {
        "complete": answer.get("complete"),
        "consolidated_complete": consolidated.get("complete"),
        "missing_currencies": consolidated.get("missing_currencies"),
        "fx_sources": {
            s["source"]: s["status"]
            for s in answer.get("sources", [])
            if s["source"].startswith("fx:")
        },
    }


def fx_phase(plan: Plan, stack: ExitStack, fakes: Fakes) -> dict[str, Any]:
    """The consolidated answer (issue #17): cold against the critical path on a fresh
    tesoro, then warm beside the plain /positions, alternating."""
    load_before = os.getloadavg()
    critical = fx_critical_path_ms(fakes.clients, plan.latency_ms, page_concurrency())
    tesoro = start_tesoro(stack, tesoro_env(fakes), "tesoro fx")
    client = Client(tesoro.port)
    client.get("/healthz")
    status, _, body, seconds = client.get(FX_TARGETS[1][1])
    if status != 200:
        raise RuntimeError(f"tesoro answered {status} to a cold consolidated: {body[:300]!r}")
    cold = {
        **critical,
        "latency_ms": plan.latency_ms,
        "target": FX_TARGETS[1][1],
        "status": status,
        "wall_ms": round(seconds * 1000, 1),
        "ratio": ratio(seconds * 1000, critical["critical_path_ms"]),
        **_consolidated(body),
        "rate_calls": fakes.rate_calls(),
    }
    # The same first answer without a conversion, on another fresh tesoro: what the rate
    # sources add to a cold answer on this machine now.
    plain_cold = start_tesoro(stack, tesoro_env(fakes), "tesoro fx plain")
    other = Client(plain_cold.port)
    other.get("/healthz")
    status, _, _, plain_seconds = other.get(FX_PLAIN)
    other.close()
    cold["plain_wall_ms"] = round(plain_seconds * 1000, 1) if status == 200 else None
    cold["plain_ratio"] = ratio(plain_seconds * 1000, critical["critical_path_ms"])
    plan.log(
        f"  fx cold {FX_PLAIN} (fresh tesoro, reference) {cold['plain_wall_ms']} ms -> "
        f"{cold['plain_ratio']}"
    )
    plan.log(
        f"  fx cold {cold['target']} {cold['wall_ms']} ms (complete: {cold['complete']}, "
        f"consolidated complete: {cold['consolidated_complete']}) vs critical path "
        f"{critical['critical_path_ms']:.0f} ms (upstreams {critical['upstreams_ms']:.0f}, "
        f"rates {critical['rates_ms']:.0f}) -> {cold['ratio']}"
    )
    answers: dict[str, dict[str, Any]] = {}
    for name, path in FX_TARGETS:
        client.get(path)  # builds the kept answer
        status, _, body, _ = client.get(path)
        if status != 200:
            raise RuntimeError(f"tesoro answered {status} to {path}: {body[:300]!r}")
        answers[name] = {"body_bytes": len(body), **_consolidated(body)}
    client.close()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in FX_TARGETS}
    # Short runs in many rounds, each round every target in turn: a neighbour's burst on the
    # shared machine hits a round's plain and consolidated runs alike, and the median of the
    # rounds' ratios leaves the disturbed rounds out.
    rounds = 1 if plan.rounds == 1 else FX_ROUNDS
    step = max(1.0, plan.duration * plan.rounds / rounds)
    for _ in range(rounds):
        for name, path in FX_TARGETS:
            runs[name].append(wrk(f"{tesoro.url}{path}", step, tesoro.pid, AUTH, plan.script))
    warm: dict[str, Any] = {}
    plain_runs = runs[FX_TARGETS[0][0]]
    plain = combined(plain_runs)
    for name, path in FX_TARGETS:
        figures = combined(runs[name])
        per_round = [
            ratio(run["cpu_us_per_request"], base["cpu_us_per_request"])
            for run, base in zip(runs[name], plain_runs, strict=True)
        ]
        warm[name] = {
            "target": path,
            **figures,
            **answers[name],
            # What the consolidated answer costs against the plain one (1.0: nothing more):
            # the median of the rounds' CPU ratios, and over all rounds CPU and req/s.
            "cpu_ratio_median": statistics.median(r or 0.0 for r in per_round),
            "cpu_ratio_rounds": per_round,
            "cpu_ratio": ratio(figures["cpu_us_per_request"], plain["cpu_us_per_request"]),
            "rps_cost_ratio": ratio(plain["rps"], figures["rps"]),
        }
        plan.log(
            f"  fx warm {name:36s} {figures['rps']:9.1f} req/s "
            f"{figures['cpu_us_per_request']} µs/req p50/p99 {figures['p50_ms']:.1f}/"
            f"{figures['p99_ms']:.1f} ms -> cost x{warm[name]['cpu_ratio_median']} (CPU, "
            f"median of {rounds} rounds), x{warm[name]['rps_cost_ratio']} (req/s)"
        )
    return {
        "cold": cold,
        "warm": warm,
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
    }


def run_fx(plan: Plan, clients: int) -> dict[str, Any]:
    """The fx phase alone (`--only fx`): the fakes with the rate sources, then the phase."""
    plan.log(f"fx at {clients:,} clients")
    with ExitStack() as stack:
        fakes = stack.enter_context(fakes_running(plan, clients, rates=True))
        return {"clients": clients, "accounts": fakes.accounts() + 2 * CONSENTS,
                "fx": fx_phase(plan, stack, fakes)}  # fmt: skip


def attack_wrk(url: str, seconds: float, script: Path) -> dict[str, Any]:
    """wrk with ATTACK_CONNECTIONS connections of the attacking key, pinned to the client CPU."""
    command = pinned(
        CLIENT_CPU,
        ["wrk", "-t1", f"-c{ATTACK_CONNECTIONS}", f"-d{max(1, round(seconds))}s",
         "--timeout", "30s", "-s", str(script), "-H", f"Authorization: Bearer {CALLER_KEY}",
         url],
    )  # fmt: skip
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 90
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
    raw = json.loads(line.removeprefix("WRKJSON "))
    return {
        "connections": ATTACK_CONNECTIONS,
        "requests": raw["requests"],
        "seconds": round(raw["duration_us"] / 1e6, 3),
        "statuses": {code: raw["statuses"][code] for code in sorted(raw["statuses"])},
        "socket_errors": raw["socket_errors"],
        "timeouts": raw["timeouts"],
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
    }


def busy_after(pid: int) -> float:
    """Seconds until the process uses less than QUIET_CPU_SHARE of a core over a window
    (at most QUIET_MAX_SECONDS): the work that goes on once the load has stopped."""
    start = time.monotonic()
    while time.monotonic() - start < QUIET_MAX_SECONDS:
        window_start, used_before = time.monotonic(), cpu_seconds(pid)
        time.sleep(QUIET_WINDOW_SECONDS)
        used = cpu_seconds(pid) - used_before
        if used < QUIET_CPU_SHARE * (time.monotonic() - window_start):
            return round(window_start - start, 2)
    return QUIET_MAX_SECONDS


def limit_metrics(url: str) -> dict[str, float]:
    """tesoro's work-limit figures from /metrics (absent on a tesoro without them)."""
    text = httpx2.get(f"{url}/metrics", headers=OTHER_AUTH, timeout=30).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        for name in (
            "tesoro_requests_rejected_total",
            "tesoro_answer_builds_total",
            "tesoro_answer_builds_abandoned_total",
        ):
            if line.startswith((name + "{", name + " ")):
                label = line[len(name) : line.rfind(" ")]
                found[name + label] = float(line.rpartition(" ")[2])
    return found


def attack_phase(plan: Plan, fakes: Fakes) -> dict[str, Any]:
    """The reader's attack, on a fresh tesoro with its defaults (the per-caller limit on):
    ATTACK_CONNECTIONS connections of one read-only key, each request a distinct question
    for ATTACK_PAGE_SIZE positions, while another caller reads a kept answer every 50 ms and
    /healthz is polled every 10 ms, each from a process of its own. Resident memory is
    sampled throughout; after the attack, how long tesoro went on working."""
    seconds = plan.attack_seconds
    with ExitStack() as stack:
        tesoro = start_tesoro(stack, attack_env(fakes), "tesoro (attack)")
        other = Client(tesoro.port)
        answer, _ = wait_complete(other, time.monotonic() + 120, OTHER_AUTH)
        # The other caller's answer is kept from here on (built once, above).
        other.get("/positions", OTHER_AUTH)
        other.close()
        idle = memory(tesoro.pid)
        rss = RssSampler(tesoro.pid)
        budget = seconds + 120
        healthz = Poller(tesoro.port, max_seconds=budget)
        reader = Poller(
            tesoro.port,
            max_seconds=budget,
            path="/positions",
            key=OTHER_KEY,
            interval_seconds=OTHER_INTERVAL_SECONDS,
        )
        time.sleep(0.5)  # both pollers see tesoro before the attack, for a moment
        attack_start = time.monotonic()
        cpu_before = cpu_seconds(tesoro.pid)
        attack = attack_wrk(f"{tesoro.url}/positions", seconds, plan.attack_script)
        attack_end = time.monotonic()
        cpu_during = cpu_seconds(tesoro.pid) - cpu_before
        healthz.stop()
        reader.stop()
        after = busy_after(tesoro.pid)
        time.sleep(0.2)
        rss.stop()
        status = memory(tesoro.pid)
        limits = limit_metrics(tesoro.url)
    other_ms = reader.window(attack_start, attack_end)
    return {
        "clients": fakes.clients,
        "positions": answer.get("total"),
        "attack_seconds": seconds,
        "page_size": ATTACK_PAGE_SIZE,
        "attack": attack,
        "server_cpu_seconds": round(cpu_during, 2),
        "healthz": healthz.window(attack_start, attack_end),
        "healthz_before": healthz.window(attack_start - 0.5, attack_start),
        "other_kept_answer": other_ms,
        "other_kept_answer_before": reader.window(attack_start - 0.5, attack_start),
        "idle_rss_bytes": idle["VmRSS"],
        "peak_rss_bytes": rss.peak(attack_start, time.monotonic()),
        "hwm_bytes": status.get("VmHWM"),
        "busy_after_seconds": after,
        "limits": limits,
    }


@contextmanager
def fakes_running(plan: Plan, clients: int, *, rates: bool = False) -> Iterator[Fakes]:
    """The FinSync fake with `clients` clients and the Finqware fake (and with `rates` the
    rate sources' simulators), until the block ends."""
    fake = [sys.executable, "-m", "bench.fakes"]
    latency = ["--latency-ms", str(plan.latency_ms), "--port", "{port}"]
    with ExitStack() as stack:
        rate_fake = (
            stack.enter_context(
                started("rates fake", [*fake, "rates", *latency], base_env(), CLIENT_CPU)
            )
            if rates
            else None
        )
        yield Fakes(
            stack.enter_context(
                started("finsync fake", [*fake, "finsync", "--clients", str(clients), *latency],
                        base_env(), CLIENT_CPU)
            ),
            stack.enter_context(
                started("finqware fake", [*fake, "finqware", "--consents", str(CONSENTS),
                        *latency], base_env(), CLIENT_CPU)
            ),
            clients,
            plan.latency_ms,
            rate_fake,
        )  # fmt: skip


def run_warm(plan: Plan, clients: int) -> dict[str, Any]:
    """The warm phase alone (`--only warm`): tesoro and the baseline on the same answers."""
    plan.log(f"warm at {clients:,} clients")
    with ExitStack() as stack:
        fakes = stack.enter_context(fakes_running(plan, clients))
        tesoro = start_tesoro(stack, tesoro_env(fakes))
        client = Client(tesoro.port)
        complete = wait_complete(client, time.monotonic() + 120)[0]
        client.close()
        warm, settling = warm_phases(plan, stack, fakes, tesoro)
    return {
        "clients": clients,
        "positions_total": complete.get("total"),
        "warm": warm,
        "warm_settled_after_seconds": settling["settled_after_seconds"],
    }


def run_live(plan: Plan, clients: int) -> dict[str, Any]:
    """The live phase alone (`--only live`): the fakes, then the phase on a fresh tesoro."""
    plan.log(f"live at {clients:,} clients")
    critical = critical_path_ms(clients, plan.latency_ms, page_concurrency())
    with fakes_running(plan, clients) as fakes:
        live = live_phase(plan, fakes, critical["critical_path_ms"])
    plan.log(f"  live: {live_summary(live)}")
    return {"clients": clients, "live": live}


def live_summary(live: dict[str, Any]) -> str:
    healthz = live["healthz"]
    return (
        f"healthz p99 cold {healthz['cold_load']['p99_ms']} reload "
        f"{healthz['reload']['p99_ms']} build {healthz['build']['p99_ms']}; "
        f"stale p99 {live['stale_during_reload']['p99_ms']}"
    )


def run_attack(plan: Plan, clients: int) -> dict[str, Any]:
    """The attack phase alone (`--only attack`): the fakes, then the attack."""
    plan.log(f"attack at {clients:,} clients")
    with fakes_running(plan, clients) as fakes:
        attack = attack_phase(plan, fakes)
    plan.log(f"  attack: {attack_summary(attack)}")
    return attack


def attack_summary(attack: dict[str, Any]) -> str:
    return (
        f"peak RSS {(attack['peak_rss_bytes'] or 0) / 2**20:.0f} MiB, /healthz p99 "
        f"{_ms(attack['healthz']['p99_ms'])} ms, other caller's kept answer p99 "
        f"{_ms(attack['other_kept_answer']['p99_ms'])} ms, busy "
        f"{attack['busy_after_seconds']} s after; statuses {attack['attack']['statuses']}"
    )


def run_size(plan: Plan, clients: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Every phase at one size; the attack's figures too when this is the attack's size."""
    plan.log(f"size {clients:,} clients")
    concurrency = page_concurrency()
    critical = critical_path_ms(clients, plan.latency_ms, concurrency)
    attack = None
    with ExitStack() as stack:
        fakes = stack.enter_context(fakes_running(plan, clients, rates=True))
        tesoro = start_tesoro(stack, tesoro_env(fakes))
        client = Client(tesoro.port)
        client.get("/healthz")
        idle = memory(tesoro.pid)
        cold_start = time.monotonic()
        status, _, body, cold_seconds = client.get("/positions")
        first = json.loads(body) if status == 200 else {}
        # Cut short by the request deadline, the first answer is incomplete while the load
        # goes on: the time to the first complete answer is measured too.
        answer, complete_at = first, cold_start + cold_seconds
        if not first.get("complete"):
            answer, complete_at = wait_complete(client, cold_start + 120)
        complete_ms = (complete_at - cold_start) * 1000 if answer.get("complete") else None
        client.close()
        cold = {
            **critical,
            "latency_ms": plan.latency_ms,
            "status": status,
            "wall_ms": round(cold_seconds * 1000, 1),
            "first_complete": first.get("complete"),
            "complete_ms": None if complete_ms is None else round(complete_ms, 1),
            "ratio": ratio(cold_seconds * 1000, critical["critical_path_ms"]),
            "complete_ratio": ratio(complete_ms, critical["critical_path_ms"]),
            "positions_total": answer.get("total"),
        }
        plan.log(
            f"  cold /positions {cold['wall_ms']} ms (complete: {cold['first_complete']}; "
            f"complete after {cold['complete_ms']} ms) vs critical path "
            f"{critical['critical_path_ms']:.0f} ms -> {cold['ratio']}"
        )
        warm, settling = warm_phases(plan, stack, fakes, tesoro)
        search = search_phase(plan, tesoro)
        plan.log(f"  search {search}")
        warm_memory = memory(tesoro.pid)
        access = access_log_phase(plan, stack, fakes, tesoro)
        plan.log(f"  access log on/off: {access['switch']} cost {access['cost_us_per_request']}")
        live = live_phase(plan, fakes, critical["critical_path_ms"])
        plan.log(f"  live: {live_summary(live)}")
        coalescing = coalescing_phase(plan, fakes)
        fx = fx_phase(plan, stack, fakes)
        accounts = fakes.accounts() + 2 * CONSENTS
        if clients == plan.attack_size:
            attack = attack_phase(plan, fakes)
            plan.log(f"  attack: {attack_summary(attack)}")
    grown = warm_memory["VmRSS"] - idle["VmRSS"]
    peak = max(v for v in (live["rss_peak_reload_bytes"], live["hwm_bytes"], 0) if v is not None)
    figures = {
        "clients": clients,
        "accounts": accounts,
        "consents": CONSENTS,
        "warm": warm,
        "warm_settled_after_seconds": settling["settled_after_seconds"],
        "cold": cold,
        "swr": {
            "ttl_seconds": live["ttl_seconds"],
            "reload_landed": live["reload_landed"],
            "reload_seconds": live["reload_seconds"],
            **live["stale_during_reload"],
            "first_after_reload_ms": live["first_after_reload_ms"],
            "first_after_ttl_lapse_ms": live["first_after_ttl_lapse_ms"],
            "probe_interval_ms": live["probe_interval_ms"],
            "probe_finsync_statuses": live["probe_finsync_statuses"],
        },
        "live": live["healthz"],
        "memory": {
            "idle_rss_bytes": idle["VmRSS"],
            "warm_rss_bytes": warm_memory["VmRSS"],
            "warm_hwm_bytes": warm_memory["VmHWM"],
            "reload_peak_rss_bytes": live["rss_peak_reload_bytes"],
            "cold_peak_rss_bytes": live["rss_peak_cold_bytes"],
            "live_hwm_bytes": live["hwm_bytes"],
            "peak_bytes": peak,
            "bytes_per_account": round(grown / accounts) if accounts else None,
        },
        "search": search,
        "coalescing": coalescing,
        "access_log": access,
        "fx": fx,
    }
    return figures, attack


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    import uvicorn

    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvicorn": uvicorn.__version__,
        "wrk": (wrk_version.stdout or wrk_version.stderr).split("\n")[0].strip(),
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "server_cpu": SERVER_CPU,
        "client_cpu": CLIENT_CPU,
        "pinned": shutil.which("taskset") is not None,
    }


def commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--short"))}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(results: dict[str, Any]) -> str:
    lines = []
    for size, r in results["sizes"].items():
        lines.append(f"\n== {int(size):,} clients ({r['accounts']:,} accounts) ==")
        lines.extend(warm_lines(r["warm"]))
        c = r["cold"]
        lines.append(
            f"cold /positions: {c['wall_ms']} ms (complete: {c['first_complete']}) vs critical "
            f"path {c['critical_path_ms']:.0f} ms ({c['pages']} pages at "
            f"{c['page_concurrency']}, {c['latency_ms']:g} ms a call) -> ratio {c['ratio']}; "
            f"first complete answer {c['complete_ms']} ms -> {c['complete_ratio']}"
        )
        s = r["swr"]
        lines.append(
            f"stale-while-revalidate: {s['samples']} answers during a {s['reload_seconds']} s "
            f"reload, p50 {_ms(s['p50_ms'])} p99 {_ms(s['p99_ms'])} max {_ms(s['max_ms'])} ms; "
            f"first after reload (builds) {_ms(s['first_after_reload_ms'])} ms; first after "
            f"a TTL lapse (data unchanged) {_ms(s.get('first_after_ttl_lapse_ms'))} ms"
        )
        for phase in ("cold_load", "reload", "build", "ttl_lapse_reload", "ttl_lapse_build"):
            if phase not in r["live"]:
                continue
            h = r["live"][phase]
            lines.append(
                f"/healthz during {phase:16s}: {h['samples']:4d} polls p50 {_ms(h['p50_ms'])} "
                f"p99 {_ms(h['p99_ms'])} max {_ms(h['max_ms'])} ms, failed {h['failed']}"
            )
        m = r["memory"]
        lines.append(
            f"memory: idle {m['idle_rss_bytes'] / 2**20:.0f} MiB, warm "
            f"{m['warm_rss_bytes'] / 2**20:.0f} MiB, peak {m['peak_bytes'] / 2**20:.0f} MiB "
            f"(reload {(m['reload_peak_rss_bytes'] or 0) / 2**20:.0f} MiB), "
            f"{m['bytes_per_account']} bytes/account"
        )
        q = r["search"]
        lines.append(
            f"search: {q['queries']} distinct q p50 {_ms(q['distinct_p50_ms'])} ms "
            f"(max {_ms(q['distinct_max_ms'])}), repeated q p50 {_ms(q['repeated_p50_ms'])} ms"
        )
        for row in r["coalescing"]:
            builds = "n/a" if row["answer_builds"] is None else row["answer_builds"]
            lines.append(
                f"cold x{row['concurrency']:<5d}: FinSync calls/page max "
                f"{row['finsync_calls_per_page_max']} ({row['finsync_pages_called']} pages), "
                f"Finqware calls/consent-route max {row['finqware_calls_per_consent_max']}, "
                f"answers built {builds}, statuses {row['statuses']}, {row['wall_seconds']} s"
            )
        if "fx" in r:
            lines.extend(fx_lines(r["fx"]))
        a = r["access_log"]
        if a["off"] is None:
            lines.append("access log: no switch to turn it off (n/a)")
        else:
            lines.append(
                f"access log ({a['switch']} to turn off): on {a['on']['rps']:.0f} req/s "
                f"{a['on']['cpu_us_per_request']} µs/req, off {a['off']['rps']:.0f} req/s "
                f"{a['off']['cpu_us_per_request']} µs/req -> {a['cost_us_per_request']} µs/req"
            )
    for size, r in results.get("warm_only", {}).items():
        lines.append(f"\n== {int(size):,} clients, warm only ==")
        lines.extend(warm_lines(r["warm"]))
    for size, r in results.get("live_only", {}).items():
        lines.append(f"\n== {int(size):,} clients, live only ==")
        lines.append(f"live: {live_summary(r['live'])}")
    if "load_average" in results:
        before, after = results["load_average"]["before"], results["load_average"]["after"]
        lines.append(f"\nload average before {before[0]:.2f}, after {after[0]:.2f} (1 min)")
    for size, r in results.get("fx", {}).items():
        lines.append(f"\n== {int(size):,} clients ({r['accounts']:,} accounts) ==")
        lines.extend(fx_lines(r["fx"]))
    if results.get("attack"):
        lines.append("\n== attack ==")
        lines.append(attack_summary(results["attack"]))
    return "\n".join(lines)


def warm_lines(warm: dict[str, Any]) -> list[str]:
    lines = [
        f"{'warm':32s} {'req/s':>9s} {'base':>9s} {'ratio':>6s} {'µs/req':>8s} "
        f"{'base':>7s} {'cpu x':>6s} {'p50':>7s} {'p99':>7s} {'bytes':>8s}"
    ]
    for name, w in warm.items():
        t, b = w["tesoro"], w["baseline"]
        lines.append(
            f"{name:32s} {t['rps']:9.1f} {b['rps']:9.1f} {w['rps_ratio'] or 0:6.2f} "
            f"{t['cpu_us_per_request'] or 0:8.0f} {b['cpu_us_per_request'] or 0:7.0f} "
            f"{w['cpu_ratio'] or 0:6.2f} {t['p50_ms']:7.2f} {t['p99_ms']:7.2f} "
            f"{t['bytes_per_request']:8d}"
        )
    return lines


def fx_lines(fx: dict[str, Any]) -> list[str]:
    c = fx["cold"]
    lines = [
        f"fx cold {c['target']}: {c['wall_ms']} ms (consolidated complete: "
        f"{c['consolidated_complete']}) vs critical path {c['critical_path_ms']:.0f} ms "
        f"(upstreams {c['upstreams_ms']:.0f}, rate sources {c['rates_ms']:.0f}) -> {c['ratio']}; "
        f"plain /positions cold {c['plain_wall_ms']} ms -> {c['plain_ratio']}",
        f"{'fx warm':40s} {'req/s':>9s} {'µs/req':>8s} {'p50':>7s} {'p99':>7s} "
        f"{'CPU x':>6s} {'median':>6s} {'rps x':>6s}",
    ]
    for name, w in fx["warm"].items():
        lines.append(
            f"{name:40s} {w['rps']:9.1f} {w['cpu_us_per_request'] or 0:8.0f} "
            f"{w['p50_ms']:7.2f} {w['p99_ms']:7.2f} {w['cpu_ratio'] or 0:6.3f} "
            f"{w['cpu_ratio_median']:6.3f} {w['rps_cost_ratio'] or 0:6.3f}"
        )
    before, after = fx["load_average"]["before"], fx["load_average"]["after"]
    lines.append(f"load average before / after: {before[0]:.2f} / {after[0]:.2f}")
    return lines


def attack_markdown(attack: dict[str, Any]) -> list[str]:
    """The attack's figures as a Markdown table (with its targets)."""
    a = attack["attack"]
    statuses = ", ".join(f"{code}: {count:,}" for code, count in a["statuses"].items())

    def window(w: dict[str, Any]) -> str:
        return f"{_n(w['p50_ms'])} / {_n(w['p99_ms'])} / {_n(w['max_ms'])} ({w['samples']})"

    rows = [
        ("clients (positions)", f"{attack['clients']:,} ({attack['positions']:,})"),
        (
            "attack: connections, seconds, requests (socket errors)",
            f"{a['connections']}, {a['seconds']:g}, {a['requests']:,} ({a['socket_errors']})",
        ),
        ("attack: answers by status", statuses or "-"),
        ("attack: p50 / p99 ms", f"{_n(a['p50_ms'])} / {_n(a['p99_ms'])}"),
        (
            "RSS idle / peak MiB (< 512)",
            f"{attack['idle_rss_bytes'] / 2**20:.0f} / "
            f"{(attack['peak_rss_bytes'] or 0) / 2**20:.0f}",
        ),
        ("/healthz p50 / p99 / max ms (polls) (p99 < 50)", window(attack["healthz"])),
        (
            "other caller's kept answer p50 / p99 / max ms (reads) (p99 < 50)",
            window(attack["other_kept_answer"]),
        ),
        ("other caller's reads refused or failed", str(attack["other_kept_answer"]["failed"])),
        ("work after the attack stopped, s", _n(attack["busy_after_seconds"], 2)),
    ]
    return ["| | |", "|---|---:|", *(f"| {label} | {value} |" for label, value in rows)]


def _n(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    """The README's results section from a results file."""
    m = results["machine"]
    sizes = results["sizes"]
    if not sizes:
        return "\n".join(
            [f"Attack only, run of {results['date']} at commit "
             f"`{(results['commit'] or '?')[:12]}`; {results['settings']['latency_ms']:g} ms "
             f"an upstream call; {results['elapsed_seconds']:g} s in all.", "",
             *attack_markdown(results["attack"])]
        )  # fmt: skip
    heads = [f"{int(size):,}" for size in sizes]
    out = [
        f"Run of {results['date']} at commit `{(results['commit'] or '?')[:12]}`"
        + (" (with uncommitted work of others in the tree)" if results["dirty"] else "")
        + f"; {results['settings']['duration_seconds']:g} s a warm phase, "
        f"{results['settings']['latency_ms']:g} ms an upstream call, "
        f"{results['elapsed_seconds']:g} s in all. "
        f"Machine: {m['cores']} cores ({m['cpu_model']}), Linux {m['kernel']}, Python "
        f"{m['python']}, uvicorn {m['uvicorn']}, {m['wrk'].split(' Copyright')[0]}; tesoro "
        f"on CPU {m['server_cpu']}, wrk on CPU {m['client_cpu']}.",
        "",
        "Warm, tesoro against the bare baseline (req/s tesoro / baseline = ratio; CPU µs per "
        "request tesoro / baseline; tesoro's p50 / p99 ms at 32 connections):",
        "",
        "| clients | route | req/s | ratio | CPU µs/req | p50 / p99 ms | body bytes |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for size, r in sizes.items():
        for name, w in r["warm"].items():
            t, b = w["tesoro"], w["baseline"]
            out.append(
                f"| {int(size):,} | `{name}` | {t['rps']:,.0f} / {b['rps']:,.0f} | "
                f"{_n(w['rps_ratio'], 2)} | {_n(t['cpu_us_per_request'], 0)} / "
                f"{_n(b['cpu_us_per_request'], 0)} | {_n(t['p50_ms'])} / {_n(t['p99_ms'])} | "
                f"{w['body_bytes']:,} |"
            )
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("accounts", lambda r: f"{r['accounts']:,}"),
        ("cold: first /positions ms (complete?)",
         lambda r: f"{_n(r['cold']['wall_ms'], 0)} ({r['cold']['first_complete']})"),
        ("cold: first complete answer ms",
         lambda r: _n(r["cold"]["complete_ms"], 0)),
        ("cold: critical path ms (pages)",
         lambda r: f"{_n(r['cold']['critical_path_ms'], 0)} ({r['cold']['pages']})"),
        ("cold: ratio first / complete (≤ 1.10)",
         lambda r: f"{_n(r['cold']['ratio'], 2)} / {_n(r['cold']['complete_ratio'], 2)}"),
        ("reload behind stale answers, s", lambda r: _n(r["swr"]["reload_seconds"], 2)),
        ("stale answers during it: n, p50 / p99 ms",
         lambda r: f"{r['swr']['samples']}, {_n(r['swr']['p50_ms'])} / {_n(r['swr']['p99_ms'])}"),
        ("first answer after the reload (builds), ms",
         lambda r: _n(r["swr"]["first_after_reload_ms"])),
        ("first answer after a TTL lapse, data unchanged, ms (< 100)",
         lambda r: _n(r["swr"].get("first_after_ttl_lapse_ms"))),
    ]  # fmt: skip
    phases = ("cold_load", "reload", "build", "ttl_lapse_reload", "ttl_lapse_build")
    for phase in phases:
        rows.append(
            (
                f"/healthz p50 / p99 / max ms during {phase.replace('_', ' ')} (p99 < 50)",
                lambda r, p=phase: (  # type: ignore[misc]
                    f"{_n(r['live'][p]['p50_ms'])} / {_n(r['live'][p]['p99_ms'])} / "
                    f"{_n(r['live'][p]['max_ms'])}"
                    if p in r["live"]
                    else "n/a"
                ),
            )
        )
    rows += [
        ("RSS idle / warm / peak MiB (< 400 at 50,000)",
         lambda r: " / ".join(
             _n((r["memory"][k] or 0) / 2**20, 0)
             for k in ("idle_rss_bytes", "warm_rss_bytes", "peak_bytes"))),
        ("bytes per account", lambda r: f"{r['memory']['bytes_per_account']:,}"),
        ("search p50 ms, distinct q / repeated q (< 50)",
         lambda r: f"{_n(r['search']['distinct_p50_ms'])} / {_n(r['search']['repeated_p50_ms'])}"),
        ("access line: CPU µs/req on / off (cost)",
         lambda r: "n/a" if r["access_log"]["off"] is None else (
             f"{_n(r['access_log']['on']['cpu_us_per_request'], 0)} / "
             f"{_n(r['access_log']['off']['cpu_us_per_request'], 0)} "
             f"({_n(r['access_log']['cost_us_per_request'], 0)})")),
    ]  # fmt: skip
    for row in next(iter(sizes.values()))["coalescing"]:
        level = row["concurrency"]
        rows.append(
            (
                f"{level} concurrent cold: calls per page / per consent call, answers built",
                lambda r, level=level: next(  # type: ignore[misc]
                    f"{x['finsync_calls_per_page_max']} / {x['finqware_calls_per_consent_max']}"
                    f", {'n/a' if x['answer_builds'] is None else x['answer_builds']}"
                    for x in r["coalescing"]
                    if x["concurrency"] == level
                ),
            )
        )
    out += ["", "| | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for label, cell in rows:
        out.append(f"| {label} | " + " | ".join(cell(r) for r in sizes.values()) + " |")
    if results.get("attack"):
        out += ["", "The reader's attack:", "", *attack_markdown(results["attack"])]
    return "\n".join(out)


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.harness", description=__doc__)
    parser.add_argument("--sizes", default="250,5000,50000", help="client counts, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk phase")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=float(os.environ.get("BENCH_LATENCY_MS", "50")),
        help="each upstream call's latency in the fakes (env BENCH_LATENCY_MS)",
    )
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="250 clients, 1 s phases and a 2 s attack: checks the harness",
    )
    parser.add_argument(
        "--only",
        choices=["attack", "fx", "warm", "live"],
        help="run only this phase: attack at the largest of --sizes (default output "
        "bench/results-attack.json), fx at each (default output bench/results-fx.json), "
        "warm at each (default output bench/results-warm.json), live at each (default "
        "output bench/results-live.json)",
    )
    parser.add_argument(
        "--attack-seconds",
        type=float,
        default=ATTACK_SECONDS,
        help="how long the attack phase attacks",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="RESULTS",
        help="print a results file as Markdown, run nothing",
    )
    args = parser.parse_args(argv)
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text(encoding="utf-8"))))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    duration = args.duration
    attack_seconds = args.attack_seconds
    if args.smoke:
        sizes, duration, attack_seconds = [250], 1.0, 2.0
    output = (
        args.output
        or {
            None: DEFAULT_OUTPUT,
            "attack": DEFAULT_ATTACK_OUTPUT,
            "fx": DEFAULT_FX_OUTPUT,
            "warm": DEFAULT_WARM_OUTPUT,
            "live": DEFAULT_LIVE_OUTPUT,
        }[args.only]
    )
    ensure_wrk()
    raise_file_limit()
    started_at = time.monotonic()
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="tesoro-wrk-") as scratch:
        script = Path(scratch) / "report.lua"
        script.write_text(WRK_SCRIPT, encoding="utf-8")
        attack_script = Path(scratch) / "attack.lua"
        attack_script.write_text(ATTACK_SCRIPT, encoding="utf-8")
        plan = Plan(
            sizes=sizes,
            duration=duration,
            latency_ms=args.latency_ms,
            levels=COALESCING_LEVELS,
            searches=SEARCHES,
            script=script,
            rounds=1 if args.smoke else WARM_ROUNDS,
            log=lambda line: print(line, flush=True),
            attack_seconds=attack_seconds,
            attack_script=attack_script,
            attack_size=max(sizes),
            only=args.only,
        )
        results: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            **commit(),
            "machine": machine(),
            "settings": {
                "sizes": sizes,
                "duration_seconds": duration,
                "latency_ms": args.latency_ms,
                "connections": CONNECTIONS,
                "wrk_threads": 1,
                "rounds": 1 if args.smoke else WARM_ROUNDS,
                "consents": CONSENTS,
                "smoke": args.smoke,
                "only": args.only,
                "attack_seconds": attack_seconds,
                "attack_connections": ATTACK_CONNECTIONS,
            },
            "sizes": {},
            "attack": None,
        }
        if args.only == "attack":
            results["attack"] = run_attack(plan, max(sizes))
        elif args.only == "fx":
            results["fx"] = {str(size): run_fx(plan, size) for size in sizes}
        elif args.only == "warm":
            results["warm_only"] = {str(size): run_warm(plan, size) for size in sizes}
        elif args.only == "live":
            results["live_only"] = {str(size): run_live(plan, size) for size in sizes}
        else:
            for size in sizes:
                results["sizes"][str(size)], attack = run_size(plan, size)
                results["attack"] = attack or results["attack"]
    results["elapsed_seconds"] = round(time.monotonic() - started_at, 1)
    # The machine is shared: how busy it was says how far to trust the figures.
    results["load_average"] = {"before": load_before, "after": list(os.getloadavg())}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(table(results))
    print(f"\nwritten to {output} in {results['elapsed_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
