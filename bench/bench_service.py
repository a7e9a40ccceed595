"""Benchmarks as ratios against a baseline measured in the same process.

Run with `make bench`. Absolute times on a shared 2-core machine are noise; ratios
against a same-process baseline are what is worth comparing between commits.

- cached `/positions` and `/counterparties` against `/healthz` (the framework floor);
- cold `/positions` with 100 concurrent callers: upstream calls made (coalescing);
- interpreting 1,000 FinSync clients against merely decoding their JSON.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal

import httpx2
from pydantic import TypeAdapter

from app.domain.interpret import interpret_finsync
from app.upstreams.finsync import FinsyncClientRecord
from app.upstreams.http import decode_json
from tests.support.apps import sandbox_app
from tests.support.asgi import started
from tests.support.simulators import Simulators


async def per_call_seconds(call: Callable[[], Awaitable[object]], repeat: int) -> float:
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            await call()
        samples.append((time.perf_counter() - start) / repeat)
    return statistics.median(samples)


async def bench_routes() -> None:
    async with started(sandbox_app(Simulators.fresh())) as running:
        transport = httpx2.ASGITransport(app=running)
        async with httpx2.AsyncClient(transport=transport, base_url="http://tesoro") as client:
            await client.get("/positions")  # warm the caches
            floor = await per_call_seconds(lambda: client.get("/healthz"), 200)
            for path in ("/positions", "/counterparties?page_size=200"):
                cost = await per_call_seconds(lambda p=path: client.get(p), 100)  # type: ignore[misc]
                print(f"{path:34s} {cost * 1e3:7.2f} ms  = {cost / floor:5.1f}x /healthz")

    cold = Simulators.fresh()
    async with started(sandbox_app(cold)) as running_cold:
        transport = httpx2.ASGITransport(app=running_cold)
        async with httpx2.AsyncClient(transport=transport, base_url="http://tesoro") as client:
            await asyncio.gather(*(client.get("/positions") for _ in range(100)))
    print(
        "100 concurrent cold /positions -> upstream calls: "
        f"FinSync {cold.finsync_calls()}, "
        f"Finqware balances {cold.finqware_calls()} "
        "(3 consents)"
    )


def bench_interpretation() -> None:
    clients = [
        {
            "id": i,
            "name": f"Cliente {i}",
            "description": None,
            "type": i % 2,
            "accounts": [
                {"id": i * 10 + j, "currency_name": cur, "balance": Decimal(f"{i}.{j}5")}
                for j, cur in enumerate(("ARS", "USD"))
            ],
        }
        for i in range(1, 1001)
    ]
    body = (
        json.dumps(clients, default=str).replace('"balance": "', '"balance": ').replace('5"}', "5}")
    )
    adapter = TypeAdapter(list[FinsyncClientRecord])
    now = datetime.now(UTC)

    def timed(fn: Callable[[], object]) -> float:
        samples = []
        for _ in range(7):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    decode = timed(lambda: decode_json(body.encode()))
    records = adapter.validate_python(decode_json(body.encode()))
    parse = timed(lambda: adapter.validate_python(decode_json(body.encode())))
    interpret = timed(lambda: interpret_finsync(records, fetched_at=now))
    for label, seconds in (
        ("decode 1,000 clients JSON", decode),
        ("decode + wire models", parse),
        ("interpret (to public models)", interpret),
    ):
        print(f"{label:34s} {seconds * 1e3:7.2f} ms  = {seconds / decode:5.1f}x decode")


def main() -> None:
    asyncio.run(bench_routes())
    bench_interpretation()


if __name__ == "__main__":
    main()
