"""The shared tier (Redis) measured: two replicas as in-process apps on one set of simulators
and one redis-server (`make redis-server`), each figure against the same run without Redis.

- upstream calls per connection for 2 replicas x 100 concurrent cold `/positions`;
- cold latency (a replica's first answers: loading itself, or taking another replica's
  snapshot from Redis) and warm latency (fresh local hits, which never ask Redis);
- a FinSync snapshot's size in Redis and its encode/decode time at 2,000 and 50,000 clients.

Run with `make bench`. Absolute times on a shared machine are noise; ratios are the figures.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import httpx2
from pydantic import TypeAdapter

from app.domain.interpret import interpret_finsync
from app.sandbox import SANDBOX_CONSENTS
from app.services.codec import decode_interpreted, encode_interpreted
from app.upstreams.finsync import FinsyncClientRecord
from tests.support.redis import replicas, running_redis
from tests.support.simulators import Simulators

BURST = 100
WARM = 300
# Upstream latency of the simulators: a cold answer waits for it (as it would for the network).
UPSTREAM_DELAY_SECONDS = 0.05


def _calls(simulators: Simulators) -> dict[str, int]:
    calls = {"finsync (list pages)": simulators.finsync_calls()}
    for consent in SANDBOX_CONSENTS:
        calls[f"finqware:{consent.key} balances"] = simulators.consent_calls(consent.key)
        calls[f"finqware:{consent.key} accounts"] = simulators.consent_calls(
            consent.key, "POST /v1/accounts/get"
        )
    return calls


async def _timed(call: Callable[[], Awaitable[httpx2.Response]]) -> float:
    start = time.perf_counter()
    answer = await call()
    assert answer.status_code == 200, answer.status_code
    return time.perf_counter() - start


def _slow_simulators() -> Simulators:
    simulators = Simulators.fresh()
    simulators.finsync_faults.delay_seconds = UPSTREAM_DELAY_SECONDS
    simulators.finqware_faults.delay_seconds = UPSTREAM_DELAY_SECONDS
    return simulators


async def _fleet_run(**overrides: Any) -> dict[str, Any]:
    simulators = _slow_simulators()
    async with replicas(simulators, **overrides) as [first, second]:
        burst = await asyncio.gather(
            *(
                _timed(partial(http.get, "/positions"))
                for http in (first, second)
                for _ in range(BURST)
            )
        )
        calls = _calls(simulators)
        warm = [await _timed(lambda: first.get("/positions")) for _ in range(WARM)]
    # A replica that starts after another loaded: its first answer (from Redis, or upstream).
    late = _slow_simulators()
    async with replicas(late, count=1, **overrides) as [loader]:
        await loader.get("/positions")
        async with replicas(late, count=1, **overrides) as [newcomer]:
            joining = await _timed(lambda: newcomer.get("/positions"))
    return {
        "calls": calls,
        "cold_median": statistics.median(burst),
        "warm_median": statistics.median(warm),
        "joining": joining,
    }


def _snapshot_sizes() -> None:
    adapter = TypeAdapter(list[FinsyncClientRecord])
    for count in (2_000, 50_000):
        clients = [
            {
                "id": i,
                "name": f"Cliente {i}",
                "description": None,
                "type": i % 2,
                "accounts": [
                    {"id": i * 10 + j, "currency_name": cur, "balance": str(Decimal(f"{i}.{j}5"))}
                    for j, cur in enumerate(("ARS", "USD"))
                ],
            }
            for i in range(1, count + 1)
        ]
        records = adapter.validate_python(clients)
        start = time.perf_counter()
        snapshot = interpret_finsync(records, fetched_at=datetime.now(UTC))
        interpret = time.perf_counter() - start
        start = time.perf_counter()
        data = encode_interpreted(snapshot)
        encode = time.perf_counter() - start
        start = time.perf_counter()
        assert decode_interpreted(data) == snapshot
        decode = time.perf_counter() - start
        accounts = 2 * count
        print(
            f"  {count:6,d} clients ({accounts:,d} accounts): {len(data) / 1e6:6.2f} MB "
            f"({len(data) / accounts:5.1f} B/account); encode {encode:5.2f} s, decode "
            f"{decode:5.2f} s (interpreting the upstream's answer: {interpret:5.2f} s)"
        )


async def main_async() -> None:
    with running_redis() as server:
        shared = await _fleet_run(redis_url=server.url)
        keys = server.command("KEYS", "tesoro:*")
    alone = await _fleet_run()
    print(
        f"2 replicas x {BURST} concurrent cold /positions (upstreams answer in "
        f"{UPSTREAM_DELAY_SECONDS * 1e3:.0f} ms): upstream calls per connection"
    )
    print(f"  {'connection':34s} {'with Redis':>10s} {'without':>8s}")
    for name, count in shared["calls"].items():
        print(f"  {name:34s} {count:10d} {alone['calls'][name]:8d}")
    for label, key in (
        (f"cold /positions, median of 2 x {BURST}", "cold_median"),
        ("a replica's first /positions after another loaded", "joining"),
        (f"warm /positions, median of {WARM} (local hits)", "warm_median"),
    ):
        with_redis, without = shared[key], alone[key]
        print(
            f"{label:52s} {with_redis * 1e3:8.2f} ms with Redis, {without * 1e3:8.2f} ms "
            f"without = {with_redis / without:5.2f}x"
        )
    print(
        f"keys in Redis after the run: {keys.count(b'tesoro:')} "
        "(connection keys and digests, never a secret)"
    )
    print("A FinSync snapshot in Redis (zstd JSON):")
    _snapshot_sizes()


def main() -> None:
    asyncio.run(main_async())


if __name__ == "__main__":
    main()
