"""Snapshots as pydantic models under the server's heap policy, against msgspec Structs the
garbage collector never tracks, at FinSync scale, in one process (ratios in the same run).

    python -m bench.snapshots [--clients 50000] [--repeat 3] [--structs-gc startup|none]

Both forms hold the same FinSync snapshot (`bench.fakes`' generated company, read through
tesoro's own adapter and interpretation):

- **models**: today's form (`Interpreted` of the public pydantic models), measured under the
  policy `tesoro serve` runs (`app.heap.tune_gc` at start, `settle_heap` after a load);
- **structs**: `app.domain.snapshot`'s form (`Struct`s with `gc=False`, frozen, keyword-only so
  they keep the public models' field names, order and defaults; money as `Decimal`), under
  CPython's collector as it ships, with what is alive at start-up frozen once
  (`--structs-gc none`: not even that), and no policy around loads.

What is measured, for each form (wall and CPU time):

- **cold load**: every page of the company read from a FinSync fake (`httpx2.MockTransport`)
  through `FinsyncClient.each_page` and interpreted into the form. The structs' run is the
  same interpretation code with the snapshot classes it instantiates swapped for the Structs
  (the logic, warnings and order are the very same; only the objects built differ), and the
  run stops unless the result, written as JSON, is the models' stored JSON byte for byte;
- **build**: the default `/positions` answer from the snapshot, as the route does it
  (`positions_of`, `filter_positions`, `totals`, the first page of 1,000); the models' body
  is `PositionsResponse.model_dump_json()`, the structs' the same response with its
  positions written by msgspec's encoder; the two bodies are checked equal, byte for byte;
- **drop**: the last reference to a snapshot let go on the loop's thread, without a reaper;
- **event loop**: while each step runs (loads on the loop as in the server, builds and
  decodes in a worker thread as in the server), a 2 ms ticker on the loop measures how late
  it wakes: the p99 and worst lateness stand for `/healthz` p99 during that step; every
  garbage collection is timed with `gc.callbacks` (total, longest);
- **Redis decode**: the snapshot's stored bytes read back (zstd + JSON; the models through
  `app.services.codec.decode_interpreted`, the structs through one msgspec decoder of the
  same bytes: today's stored format already has the Structs' shape); and, to show that the
  models cannot take the shortcut, msgspec's decode followed by `model_construct`;
- **memory**: each form cold-loaded, and decoded from those same bytes, each figure in a
  fresh process: resident memory added (`/proc/self/statm`), its peak (`VmHWM`), Python
  allocations held (`tracemalloc`) and objects the collector tracks.

msgspec writes a `Decimal` as `str()` does: `app.domain.snapshot` keeps an amount in
exponent form (`1E-11`) as a `Decimal` it writes fixed-point, as the models do (checked in
`__post_init__`, which reading back runs too: its cost is in the decode figure).

Times are the median of `--repeat` runs. Nothing here is a test; the figures of a run are in
`bench/README.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

import httpx2
import zstandard
from pydantic import BaseModel, SecretStr

import app.domain.interpret.finsync as finsync_interpretation
from app.domain import models
from app.domain.counterparties import paginate
from app.domain.interpret import FinsyncPages, Interpreted
from app.domain.models import (
    PositionsResponse,
)
from app.domain.positions import filter_positions, positions_of, totals
from app.domain.snapshot import (
    Account,
    BalanceEntry,
    Counterparty,
    Position,
    ReportedFigure,
    Snapshot,
    SnapshotWarning,
    SourceError,
    decode_snapshot,
    encode_json,
)
from app.heap import settle_heap, tune_gc
from app.services.codec import decode_interpreted, encode_interpreted
from app.upstreams.finsync import FinsyncClient
from bench.fakes import PAGE_SIZE, FinsyncData

T = TypeVar("T")

FETCHED_AT = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # one stamp: the forms' bytes compare
PAGE_SIZE_ASKED = 1000  # /positions' default page
TICK_SECONDS = 0.002
CPYTHON_THRESHOLDS = (700, 10, 10)


# The candidate snapshot types are tesoro's own (`app.domain.snapshot`): what the public
# snapshot models hold, as Structs the collector never tracks and nobody changes.


# Today's models from the Structs, built without validation: what a faster Redis decode
# would cost while the snapshot stays in models.
MODEL_OF: dict[type, type[BaseModel]] = {
    ReportedFigure: models.ReportedFigure,
    BalanceEntry: models.BalanceEntry,
    Position: models.Position,
    Account: models.Account,
    SourceError: models.SourceError,
    Counterparty: models.Counterparty,
    SnapshotWarning: models.ResponseWarning,
}


def _model(value: Any) -> Any:
    model = MODEL_OF.get(type(value))
    if model is None:
        return [_model(item) for item in value] if isinstance(value, tuple) else value
    return model.model_construct(
        **{name: _model(getattr(value, name)) for name in value.__struct_fields__}
    )


def decode_into_models(blob: bytes) -> Interpreted:
    snapshot = decode_structs(blob)
    return Interpreted(
        tuple(_model(c) for c in snapshot.counterparties),
        tuple(_model(w) for w in snapshot.warnings),
        snapshot.ibans,
    )


# Measuring.


@dataclass
class Pauses:
    """The garbage collections of a step (gc.callbacks) and how late the loop's ticks woke."""

    collections: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.collections.append(time.perf_counter() - self._started)

    def p99(self) -> float:
        if not self.lateness:
            return 0.0
        ordered = sorted(self.lateness)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


@dataclass
class Step:
    seconds: list[float] = field(default_factory=list)
    # The process's CPU time: what the step cost, whatever the neighbours on the cores did.
    cpu_seconds: list[float] = field(default_factory=list)
    pauses: list[Pauses] = field(default_factory=list)


async def _ticking(pauses: Pauses, stop: asyncio.Event) -> None:
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(TICK_SECONDS)
        pauses.lateness.append(max(0.0, time.perf_counter() - before - TICK_SECONDS))


async def timed(step: Step, work: Callable[[], Awaitable[T]]) -> T:
    """`work` timed, with the collections it caused and the loop's lateness meanwhile."""
    pauses = Pauses()
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticking(pauses, stop))
    await asyncio.sleep(0)
    gc.callbacks.append(pauses)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        result = await work()
        step.seconds.append(time.perf_counter() - started)
        step.cpu_seconds.append(time.process_time() - cpu)
    finally:
        gc.callbacks.remove(pauses)
        stop.set()
        await ticker
    step.pauses.append(pauses)
    return result


def fake_finsync(data: FinsyncData) -> httpx2.MockTransport:
    """FinSync's pages, each written when asked (nothing kept here), after a turn of the loop
    as a network read would give."""

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


def _kept_as_is(counterparties: object) -> None:
    """Structs need no compacting: they have no per-instance set of given fields."""


def _counterparty(*, accounts: Sequence[Account], **fields: Any) -> Counterparty:
    # A tuple, as the Struct says (the interpretation passes the sorted list the models
    # validate into theirs): a tuple of untracked objects is untracked too.
    return Counterparty(accounts=tuple(accounts), **fields)


@contextmanager
def interpreting_into_structs() -> Iterator[None]:
    """The FinSync interpretation constructing the Struct snapshot types (a measuring aid:
    the module's own code runs, only the classes it instantiates are swapped, then put back)."""
    names = {
        "Account": Account,
        "Counterparty": _counterparty,
        "Position": Position,
        "ReportedFigure": ReportedFigure,
        "compact": _kept_as_is,
    }
    saved = {name: getattr(finsync_interpretation, name) for name in names}
    for name, value in names.items():
        setattr(finsync_interpretation, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(finsync_interpretation, name, value)


def as_snapshot(interpreted: Interpreted) -> Snapshot:
    """What an interpretation made while `interpreting_into_structs`, as its own type (its
    warnings are still the models': interpretation makes them elsewhere, and few)."""
    counterparties: tuple[Any, ...] = interpreted.counterparties
    return Snapshot(
        counterparties=counterparties,
        warnings=tuple(SnapshotWarning(**w.model_dump()) for w in interpreted.warnings),
    )


def build_models(counterparties: Sequence[Any]) -> bytes:
    matching = filter_positions(positions_of(counterparties))
    return (
        PositionsResponse(
            positions=paginate(matching, 1, PAGE_SIZE_ASKED),
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


def build_structs(counterparties: Sequence[Any]) -> bytes:
    # The domain's functions read attributes only: the Structs go through them unchanged.
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


def decode_structs(blob: bytes) -> Snapshot:
    raw = zstandard.ZstdDecompressor().decompress(blob, max_output_size=1 << 30)
    return decode_snapshot(raw)


@dataclass
class Form:
    cold: Step = field(default_factory=Step)
    build: Step = field(default_factory=Step)
    decode: Step = field(default_factory=Step)
    # Models only: the Structs' decode, then today's models built from them unvalidated.
    decode_into_models: Step = field(default_factory=Step)
    drop: Step = field(default_factory=Step)
    body: bytes = b""
    memory: dict[str, dict[str, float]] = field(default_factory=dict)


def drop(step: Step, held: list[Any]) -> None:
    """The last reference to a snapshot let go on the loop's thread (no reaper): timed."""
    # A finished worker thread's future and work item may still hold its result or its
    # arguments for a moment (a reference cycle until a collection, or until the thread lets
    # go of its work item): waited out, so the drop timed is the snapshot's own freeing.
    for _ in range(100):
        gc.collect()
        # The list's reference and the call's; the snapshot's and the call's.
        if sys.getrefcount(held[0]) == 2 and sys.getrefcount(held[0].counterparties) == 2:
            break
        time.sleep(0.01)
    else:
        raise RuntimeError("the snapshot is still held elsewhere")
    started, cpu = time.perf_counter(), time.process_time()
    held.clear()
    step.seconds.append(time.perf_counter() - started)
    step.cpu_seconds.append(time.process_time() - cpu)


async def measure_models(transport: httpx2.MockTransport, repeat: int) -> tuple[Form, bytes]:
    form = Form()
    tune_gc()  # as `tesoro serve` does at start
    blob = b""
    for _ in range(repeat):
        held: list[Any] = [await timed(form.cold, partial(cold_load, transport))]
        settle_heap()  # as the cache does after storing a snapshot
        build = partial(asyncio.to_thread, build_models, held[0].counterparties)
        form.body = await timed(form.build, build)
        blob = encode_interpreted(held[0])
        del build
        drop(form.drop, held)
        for step, decode in (
            (form.decode, decode_interpreted),
            (form.decode_into_models, decode_into_models),
        ):
            held = [await timed(step, partial(asyncio.to_thread, decode, blob))]
            settle_heap()
            drop(form.drop, held)
    return form, blob


async def measure_structs(
    transport: httpx2.MockTransport, blob: bytes, repeat: int, policy: str
) -> Form:
    form = Form()
    gc.unfreeze()
    gc.set_threshold(*CPYTHON_THRESHOLDS)  # CPython's collector as it comes
    gc.collect()
    if policy == "startup":
        gc.freeze()  # what is alive at start-up only, once
    for _ in range(repeat):
        with interpreting_into_structs():
            held: list[Any] = [await timed(form.cold, partial(cold_load, transport))]
        # The interpretation into Structs made the very snapshot the models hold.
        same = encode_json(as_snapshot(held[0]))
        if same != zstandard.ZstdDecompressor().decompress(blob):
            raise SystemExit("the Structs' cold load differs from the models'")
        build = partial(asyncio.to_thread, build_structs, held[0].counterparties)
        form.body = await timed(form.build, build)
        del build
        drop(form.drop, held)
        held = [await timed(form.decode, partial(asyncio.to_thread, decode_structs, blob))]
        drop(form.drop, held)
    return form


# Memory, each form in a fresh process.


def _rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


def _held(make: Callable[[], object], traced: bool) -> dict[str, float]:
    """What the value `make` returns holds (after a full collection): with `traced`, the
    Python allocations it added (tracemalloc, whose own bookkeeping would swell the resident
    figures); else the resident memory it added, the peak it took, and the objects the
    collector tracks."""
    gc.collect()
    rss, tracked = _rss_bytes(), len(gc.get_objects())
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
    if traced:
        tracemalloc.start()
    held = make()
    gc.collect()
    if traced:
        allocated = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return {"traced_mb": allocated / 2**20}
    found = {
        "rss_mb": (_rss_bytes() - rss) / 2**20,
        "peak_mb": (_peak_bytes() - rss) / 2**20,
        "tracked": len(gc.get_objects()) - tracked,
    }
    del held
    return found


def child(form: str, how: str, traced: bool, clients: int, path: str) -> None:
    """In a fresh process: the form cold-loaded, or decoded from the stored bytes."""
    data = FinsyncData.generate(clients)
    blob = Path(path).read_bytes()
    transport = fake_finsync(data)
    decode: Callable[[bytes], object] = decode_interpreted if form == "models" else decode_structs
    if form == "models":
        tune_gc()  # the server's policy (its freezing leaves the counts unchanged)
    with interpreting_into_structs() if form == "structs" else nullcontext():
        if how == "cold":
            found = _held(lambda: asyncio.run(cold_load(transport)), traced)
        else:
            found = _held(lambda: decode(blob), traced)
    print(json.dumps(found))


def memory(form: str, clients: int, blob: bytes) -> dict[str, dict[str, float]]:
    """Each figure from a fresh process of its own (memory freed by one step would be reused
    by the next)."""
    found: dict[str, dict[str, float]] = {}
    with tempfile.NamedTemporaryFile(suffix=".zst") as file:
        file.write(blob)
        file.flush()
        for how in ("cold", "decoded"):
            found[how] = {}
            for traced in ("untraced", "traced"):
                command = [sys.executable, "-m", "bench.snapshots", "--child"]
                command += [form, how, traced, str(clients), file.name]
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                found[how].update(json.loads(out))
    return found


# The table.


def _row(name: str, unit: str, models: float, structs: float) -> str:
    ratio = f"{structs / models:6.2f}x" if models else "     -"
    return f"{name:46s} {models:10.1f} {structs:10.1f} {unit:3s} {ratio}"


def _pauses(step: str, of: Callable[[Pauses], float]) -> Callable[[Form], float]:
    return lambda form: 1e3 * max(of(pauses) for pauses in getattr(form, step).pauses)


def _median(step: str) -> Callable[[Form], float]:
    return lambda form: 1e3 * statistics.median(getattr(form, step).seconds)


def _cpu(step: str) -> Callable[[Form], float]:
    return lambda form: 1e3 * statistics.median(getattr(form, step).cpu_seconds)


def _memory(how: str, figure: str, scale: float = 1.0) -> Callable[[Form], float]:
    return lambda form: form.memory[how][figure] * scale


def _collections(step: str) -> list[tuple[str, Callable[[Form], float]]]:
    return [
        ("  CPU ms", _cpu(step)),
        ("  collections during it, total ms", _pauses(step, lambda p: sum(p.collections))),
        ("  longest collection ms", _pauses(step, lambda p: max(p.collections, default=0))),
        ("  loop lateness p99 ms", _pauses(step, Pauses.p99)),
        ("  loop lateness, worst ms", _pauses(step, lambda p: max(p.lateness, default=0))),
    ]


ROWS: list[tuple[str, Callable[[Form], float]]] = [
    ("cold load (pages read, interpreted) ms", _median("cold")),
    *_collections("cold"),
    ("build of /positions (page of 1,000) ms", _median("build")),
    *_collections("build"),
    ("drop a snapshot on the loop, no reaper ms", _median("drop")),
    ("  CPU ms", _cpu("drop")),
    ("Redis decode (zstd + JSON) ms", _median("decode")),
    *_collections("decode"),
    ("  models: msgspec, then model_construct ms", _median("decode_into_models")),
    *(
        row
        for how in ("cold", "decoded")
        for row in (
            (f"memory, {how}: resident added MB", _memory(how, "rss_mb")),
            ("  peak resident added MB", _memory(how, "peak_mb")),
            ("  Python allocations held MB", _memory(how, "traced_mb")),
            ("  objects the collector tracks k", _memory(how, "tracked", 1e-3)),
        )
    ),
]


def report(clients: int, positions: int, models: Form, structs: Form, stored: bytes) -> None:
    raw = zstandard.ZstdDecompressor().decompress(stored)
    print(f"{clients:,} clients, {positions:,} positions; {len(stored):,} bytes stored")
    print(f"({len(raw):,} as JSON)")
    print(f"{'':46s} {'models':>10s} {'structs':>10s}     structs/models")
    for label, of in ROWS:
        name, _, unit = label.rpartition(" ")
        # Models only: the structs' own decode stands beside it.
        theirs = of(structs) if "model_construct" not in name else _median("decode")(structs)
        print(_row(name, unit, of(models), theirs))
    same = models.body == structs.body
    print(f"/positions bodies equal byte for byte: {same} ({len(models.body):,} bytes)")


async def run(clients: int, repeat: int, policy: str) -> None:
    data = FinsyncData.generate(clients)
    transport = fake_finsync(data)
    models, blob = await measure_models(transport, repeat)
    gc.collect()
    structs = await measure_structs(transport, blob, repeat, policy)
    positions = zstandard.ZstdDecompressor().decompress(blob).count(b'"position":{')
    models.memory = memory("models", clients, blob)
    structs.memory = memory("structs", clients, blob)
    report(clients, positions, models, structs, blob)
    if models.body != structs.body:
        raise SystemExit("the two forms' /positions bodies differ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--structs-gc",
        choices=("none", "startup"),
        default="startup",
        help="the structs' collector: as CPython ships it, or with what is alive at "
        "start-up frozen once",
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        form, how, traced, clients, path = args.child
        child(form, how, traced == "traced", int(clients), path)
        return
    asyncio.run(run(args.clients, args.repeat, args.structs_gc))


if __name__ == "__main__":
    main()
