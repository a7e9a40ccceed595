"""A 50,000-client snapshot read back from Redis in each stored form, interleaved in one
process (the machine is shared: only ratios within a run mean much).

    python -m bench.stored_forms [--clients 50000] [--rounds 9] [--base 5953b9e]

- **v1**: the first stored form, `app.domain.snapshot` and `app.services.codec` as they were
  at `--base` (read with `git show`): an object, a currency pattern per value, the money check
  through a helper per Struct.
- **v2**: today's (`SCHEMA_VERSION` 2): the positional envelope, the checksummed frame,
  currencies checked once per code, the money check inline.
- **positional**: what a fully positional form would cost: `array_like` twins of the Structs,
  generated from their fields, read back and converted into the served Structs (a positional
  value can only be read into positional types, and those would serve arrays).

All three read the same company (`bench.fakes`, through tesoro's FinSync interpretation) and
must give back the same served bytes; the times are process CPU per read-back.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import zstandard

from app.domain import snapshot
from app.domain.interpret import Interpreted
from app.services import codec
from bench.fakes import FinsyncData
from bench.snapshot_decode import cold_load, fake_finsync

ROOT = Path(__file__).resolve().parent.parent


def first_form(base: str, folder: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """The snapshot and codec modules of `base`, importable beside today's."""

    def load(name: str, path: str, replace: tuple[str, str] | None = None) -> types.ModuleType:
        text = subprocess.run(
            ["git", "show", f"{base}:{path}"], cwd=ROOT, check=True, capture_output=True
        ).stdout.decode()
        if replace:
            text = text.replace(*replace)
        file = folder / f"{name}.py"
        file.write_text(text)
        spec = importlib.util.spec_from_file_location(name, file)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    old_snapshot = load("v1_snapshot", "app/domain/snapshot.py")
    old_codec = load(
        "v1_codec",
        "app/services/codec.py",
        ("from app.domain.snapshot import", "from v1_snapshot import"),
    )
    return old_snapshot, old_codec


def positional_twins() -> dict[type, type]:
    """`array_like` copies of the served Structs: same fields, types and money check."""
    made: dict[type, type] = {}

    def swap(hint: Any) -> Any:
        if hint in made:
            return made[hint]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin is None or origin is typing.Annotated:
            return hint
        swapped = tuple(swap(arg) for arg in args)
        if origin in (typing.Union, types.UnionType):
            return typing.Union[swapped]  # noqa: UP007  # built from a tuple
        return origin[swapped]

    for cls in (
        snapshot.ReportedFigure,
        snapshot.BalanceEntry,
        snapshot.Position,
        snapshot.Account,
        snapshot.SourceError,
        snapshot.Counterparty,
    ):
        hints = typing.get_type_hints(cls, include_extras=True)
        fields: list[Any] = []
        for field in msgspec.structs.fields(cls):
            hint = swap(hints[field.name])
            if field.required:
                fields.append((field.name, hint))
            elif field.default is not msgspec.NODEFAULT:
                fields.append((field.name, hint, field.default))
            else:
                fields.append(
                    (field.name, hint, msgspec.field(default_factory=field.default_factory))
                )
        namespace = {"__post_init__": cls.__post_init__} if hasattr(cls, "__post_init__") else {}
        made[cls] = msgspec.defstruct(
            f"Positional{cls.__name__}",
            fields,
            namespace=namespace,
            frozen=True,
            gc=False,
            kw_only=True,
            array_like=True,
        )
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--base", default="5953b9e", help="a commit of the first stored form")
    args = parser.parse_args()
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory() as folder:
        old_snapshot, old_codec = first_form(args.base, Path(folder))
    company = asyncio.run(cold_load(fake_finsync(FinsyncData.generate(args.clients))))
    served = snapshot.encode_json(list(company.counterparties))

    v2 = codec.encode_interpreted(company)
    of: Any = tuple  # a type made at run time: not one mypy can check
    old_many = of[old_snapshot.Counterparty, ...]
    old_counterparties = msgspec.json.decode(served, type=old_many)
    v1 = old_codec.encode_interpreted(
        Interpreted(old_counterparties, company.warnings, company.ibans)
    )

    twins = positional_twins()
    many = of[twins[snapshot.Counterparty], ...]
    as_twins = msgspec.convert(company.counterparties, many, from_attributes=True)
    positional = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(
        msgspec.json.encode(as_twins, enc_hook=snapshot._enc_hook)
    )
    read_twins = msgspec.json.Decoder(many)
    served_type = tuple[snapshot.Counterparty, ...]

    def read_positional() -> tuple[snapshot.Counterparty, ...]:
        raw = zstandard.ZstdDecompressor().decompress(positional)
        return msgspec.convert(read_twins.decode(raw), served_type, from_attributes=True)

    del company, old_counterparties, as_twins
    gc.collect()
    forms: dict[str, tuple[int, Callable[[], Any]]] = {
        "v1": (len(v1), lambda: old_codec.decode_interpreted(v1).counterparties),
        "v2": (len(v2), lambda: codec.decode_interpreted(v2).counterparties),
        "positional": (len(positional), read_positional),
    }
    for name, (_, read) in forms.items():
        if snapshot.encode_json(list(read())) != served:
            raise SystemExit(f"{name} does not serve the same bytes")
    cpu: dict[str, list[float]] = {name: [] for name in forms}
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    for _ in range(args.rounds):
        for name, (_, read) in forms.items():
            started = time.process_time()
            value = read()
            cpu[name].append(time.process_time() - started)
            del value
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    print(f"{args.clients:,} clients, {args.rounds} rounds interleaved; load average ", end="")
    print(f"{' '.join(load_before)} before, {' '.join(load_after)} after")
    first = statistics.median(cpu["v1"])
    print(f"{'form':12s} {'stored bytes':>13s} {'CPU ms median':>14s} {'min':>7s} {'/ v1':>6s}")
    for name, (size, _) in forms.items():
        median = statistics.median(cpu[name])
        print(
            f"{name:12s} {size:13,d} {1e3 * median:14.1f} {1e3 * min(cpu[name]):7.1f} "
            f"{median / first:6.2f}"
        )


if __name__ == "__main__":
    main()
