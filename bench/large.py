"""In-process profile of tesoro at FinSync scale: a generated company of N clients, served
pre-serialised by a small FinSync stand-in (page latency configurable), with the sandbox's
Finqware simulator beside it, through the real adapters, cache, interpretation and routes.

`python -m bench.large [clients] [latency_ms]` prints the cold load, the first (building) and
the warm answers, the event loop's longest stall while they ran, and resident memory. It is a
profiling aid for the hot path; `make bench` is the measurement of record.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import resource
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.main import create_app
from app.sandbox import FINSYNC_API_KEY, create_finqware_app
from app.sandbox.wiring import sandbox_transport
from app.settings import Settings
from tests.support.asgi import started

_TYPES = (0, 1)  # internal, external
_CURRENCIES = ("ARS", "USD", "EUR")
_WORDS = ("Banco", "Caja", "Proveedor", "Cliente", "Logística", "Servicios", "Agro", "Norte")


def company(clients: int, seed: int = 7) -> list[dict[str, object]]:
    """`clients` FinSync clients of one or two accounts each, deterministic."""
    rng = random.Random(seed)  # noqa: S311 (made-up data, not a secret)
    records: list[dict[str, object]] = []
    for n in range(clients):
        client_id = 10_000 + n
        accounts = [
            {
                "id": 1_000_000 + 2 * n + k,
                "name": f"Cuenta {k + 1}",
                "currency_name": rng.choice(_CURRENCIES),
                "client_id": client_id,
                "balance": f"{rng.randint(-99_999_999, 99_999_999) / 100:.2f}",
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2026-11-25T10:00:00Z",
            }
            for k in range(rng.choice((1, 2)))
        ]
        records.append(
            {
                "id": client_id,
                "name": f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} {n:05d}",
                "description": None,
                "company_id": 1,
                "type": rng.choice(_TYPES),
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2026-11-25T10:00:00Z",
                "accounts": accounts,
            }
        )
    return records


def finsync_stand_in(records: list[dict[str, object]], latency_seconds: float) -> Starlette:
    """GET /api/clients by pages, each page written once."""
    size = 100
    total_pages = max(1, -(-len(records) // size))
    pages = [
        json.dumps(
            {
                "data": records[(page - 1) * size : page * size],
                "pagination": {
                    "page": page,
                    "pageSize": size,
                    "total": len(records),
                    "totalPages": total_pages,
                },
            }
        ).encode()
        for page in range(1, total_pages + 1)
    ]

    async def clients(request: Request) -> Response:
        if request.headers.get("x-api-key") != FINSYNC_API_KEY:
            return Response(status_code=401)
        await asyncio.sleep(latency_seconds)
        page = int(request.query_params.get("page", "1"))
        body = pages[page - 1] if page <= total_pages else pages[0]
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/api/clients", clients)])


class StallWatch:
    """The event loop's longest stall: a task that asks to wake every millisecond."""

    def __init__(self) -> None:
        self.longest = 0.0

    @asynccontextmanager
    async def running(self) -> AsyncIterator[StallWatch]:
        async def watch() -> None:
            while True:
                before = time.perf_counter()
                await asyncio.sleep(0.001)
                self.longest = max(self.longest, time.perf_counter() - before - 0.001)

        task = asyncio.create_task(watch())
        try:
            yield self
        finally:
            task.cancel()


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def main(clients: int, latency_ms: float) -> None:
    records = company(clients)
    transport = sandbox_transport(
        finsync_stand_in(records, latency_ms / 1000), create_finqware_app()
    )
    del records
    # As `tesoro serve` runs it: what is alive at start-up frozen out of later collections.
    gc.collect()
    gc.freeze()
    settings = Settings(
        _env_file=None, sandbox=True, finsync_ttl_seconds=3600, finqware_ttl_seconds=3600
    )
    app = create_app(settings, transport=transport)
    async with started(app) as running:
        asgi = httpx2.ASGITransport(app=running)
        async with httpx2.AsyncClient(
            transport=asgi, base_url="http://tesoro", timeout=600
        ) as http:
            print(f"{clients} clients, {latency_ms:g} ms a page; RSS before {rss_mb():.0f} MB")
            for label, path in (
                ("cold /positions", "/positions"),
                ("warm /positions", "/positions"),
                ("/positions?page=2", "/positions?page=2"),
                ("cold /counterparties", "/counterparties?page_size=200"),
                ("q=norte", "/counterparties?q=norte"),
                ("q=agro 0001", "/counterparties?q=agro%200001"),
                ("refresh /positions", "/positions?refresh=true"),
            ):
                async with StallWatch().running() as watch:
                    cpu = time.process_time()
                    start = time.perf_counter()
                    answer = await http.get(path)
                    wall = time.perf_counter() - start
                    cpu = time.process_time() - cpu
                print(
                    f"{label:22s} {answer.status_code} {len(answer.content) / 1e6:6.2f} MB "
                    f"wall {wall * 1e3:8.1f} ms cpu {cpu * 1e3:8.1f} ms "
                    f"longest stall {watch.longest * 1e3:7.1f} ms RSS {rss_mb():.0f} MB"
                )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 50_000,
            float(sys.argv[2]) if len(sys.argv) > 2 else 20.0,
        )
    )
