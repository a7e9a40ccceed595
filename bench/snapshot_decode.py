"""A FinSync snapshot as the server holds it (`app.domain.snapshot`'s Structs), at scale: its
Redis read-back, the `/positions` page built from it, and what the collector tracks.

    python -m bench.snapshot_decode [--clients 50000] [--repeat 3]

The company is `bench.fakes`' generated one, read through tesoro's FinSync adapter and
interpretation; the stored bytes are `app.services.codec`'s.
Times are wall and process CPU, the median of `--repeat` runs; the figures of a run are in
`bench/README.md` (issue #18's "after", beside the models' "before").
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from urllib.parse import parse_qs

import httpx2
import zstandard
from pydantic import SecretStr

from app.domain.counterparties import paginate
from app.domain.interpret import FinsyncPages, Interpreted
from app.domain.models import PositionsResponse
from app.domain.positions import filter_positions, positions_of, totals
from app.domain.snapshot import Counterparty, decode_snapshot, encode_json
from app.services.codec import SCHEMA_VERSION, decode_interpreted, encode_interpreted
from app.upstreams.finsync import FinsyncClient
from bench.fakes import PAGE_SIZE, FinsyncData

FETCHED_AT = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
PAGE_SIZE_ASKED = 1000  # /positions' default page


def fake_finsync(data: FinsyncData) -> httpx2.MockTransport:
    """FinSync's pages, each written when asked, after a turn of the loop as a network read
    would give."""

    async def handler(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(0)
        number = int(parse_qs(request.url.query.decode()).get("page", ["1"])[0])
        body = data.page(number, PAGE_SIZE)
        return httpx2.Response(200, content=body, headers={"content-type": "application/json"})

    return httpx2.MockTransport(handler)


async def cold_load(transport: httpx2.MockTransport) -> Interpreted:
    async with httpx2.AsyncClient(transport=transport, base_url="https://finsync.test") as http:
        client = FinsyncClient(http, api_key=SecretStr("bench"))
        pages = await client.each_page(lambda: FinsyncPages(fetched_at=FETCHED_AT))
    return pages.done()


def build_structs(counterparties: Sequence[Counterparty]) -> bytes:
    """The default `/positions` answer as the route writes it: the page of Structs written by
    msgspec where the response model writes its list."""
    matching = filter_positions(positions_of(counterparties))
    head = (
        PositionsResponse(
            positions=[],
            totals=totals(matching),
            total=len(matching),
            page=1,
            page_size=PAGE_SIZE_ASKED,
            complete=True,
            warnings=[],
            sources=[],
            generated_at=FETCHED_AT,
        )
        .model_dump_json()
        .encode()
    )
    page = encode_json(paginate(matching, 1, PAGE_SIZE_ASKED))
    before, _, after = head.partition(b'"positions":[]')
    return before + b'"positions":' + page + after


def timed(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        del result
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    # As `tesoro serve` does at start-up.
    gc.collect()
    gc.freeze()
    data = FinsyncData.generate(args.clients)
    started = time.process_time()
    snapshot = asyncio.run(cold_load(fake_finsync(data)))
    cold_cpu = time.process_time() - started
    stored = encode_interpreted(snapshot)
    decode = timed(partial(decode_interpreted, stored), args.repeat)
    # Its parts: the zstd frame, then msgspec with the checks (the rest is the warnings).
    unzip = timed(partial(zstandard.ZstdDecompressor().decompress, stored), args.repeat)
    raw = zstandard.ZstdDecompressor().decompress(stored)
    parse = timed(partial(decode_snapshot, raw), args.repeat)
    build = timed(partial(build_structs, snapshot.counterparties), args.repeat)
    del snapshot
    gc.collect()
    before = len(gc.get_objects())
    # Python allocations the decoded snapshot holds (resident memory would count the freed
    # cold-loaded one's pages again, kept by the allocator).
    tracemalloc.start()
    decoded = decode_interpreted(stored)
    held = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    gc.collect()
    tracked = len(gc.get_objects()) - before
    same = decode_interpreted(encode_interpreted(decoded)) == decoded
    print(
        f"{args.clients:,} clients, stored form v{SCHEMA_VERSION}: {len(stored):,} bytes "
        f"stored, {len(raw):,} of JSON"
    )
    print(f"cold load CPU ms                 {1e3 * cold_cpu:10.1f}")
    print(f"Redis decode wall / CPU ms       {1e3 * decode[0]:10.1f} {1e3 * decode[1]:10.1f}")
    print(f"  of which zstd wall / CPU ms    {1e3 * unzip[0]:10.1f} {1e3 * unzip[1]:10.1f}")
    print(f"  of which msgspec and checks    {1e3 * parse[0]:10.1f} {1e3 * parse[1]:10.1f}")
    print(f"/positions page build wall / CPU ms {1e3 * build[0]:7.1f} {1e3 * build[1]:10.1f}")
    print(f"objects the collector tracks after a decode: {tracked:,}")
    print(f"Python allocations a decoded snapshot holds MB {held:6.1f}")
    print(f"read back equal: {same}")
    if not same:
        raise SystemExit("the snapshot read back differs")


if __name__ == "__main__":
    main()
