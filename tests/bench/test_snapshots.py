"""The snapshot measurement (`bench/snapshots.py`) compares like with like: its candidate
Struct snapshot, interpreted by tesoro's own FinSync interpretation, is the snapshot today's
models hold, written to the same JSON, read back from the same stored bytes, and serving the
same `/positions` body, byte for byte. No timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import zstandard
from pydantic import TypeAdapter

from app.domain.interpret import Interpreted
from app.domain.models import Counterparty
from app.services.codec import decode_interpreted, encode_interpreted
from bench.fakes import FinsyncData
from bench.snapshots import (
    as_snapshot,
    build_models,
    build_structs,
    cold_load,
    decode_into_models,
    decode_structs,
    fake_finsync,
    interpreting_into_structs,
)

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
# Enough clients for an unknown client type (one in 4,999) and more than a page of answer.
CLIENTS = 5_100


@pytest.fixture(scope="module")
def company() -> FinsyncData:
    return FinsyncData.generate(CLIENTS)


async def test_the_structs_interpreted_from_finsync_are_the_models_snapshot(
    company: FinsyncData,
) -> None:
    models = await cold_load(fake_finsync(company))
    with interpreting_into_structs():
        structs = await cold_load(fake_finsync(company))
    assert models.warnings  # the unknown client types, left out
    as_structs = as_snapshot(structs)
    stored = TypeAdapter(Interpreted).dump_json(models)
    assert msgspec.json.encode(as_structs) == stored
    # Read back, every value is kept: the same JSON again.
    decoded = decode_structs(zstandard.ZstdCompressor().compress(stored))
    assert msgspec.json.encode(decoded) == stored
    # The swap ends with the block: the interpretation makes the public models again.
    again = await cold_load(fake_finsync(company))
    assert isinstance(again.counterparties[0], Counterparty)


async def test_both_forms_serve_the_same_positions_body(company: FinsyncData) -> None:
    models = await cold_load(fake_finsync(company))
    structs = decode_structs(encode_interpreted(models))
    body = build_models(models.counterparties)
    assert body.count(b'"counterparty_id"') == 1000  # a whole first page
    assert build_structs(structs.counterparties) == body


async def test_models_built_from_the_structs_unvalidated_equal_the_decoded_models(
    company: FinsyncData,
) -> None:
    stored = encode_interpreted(await cold_load(fake_finsync(company)))
    assert decode_into_models(stored) == decode_interpreted(stored)


@pytest.mark.timeout(150)  # eight fresh processes for the memory figures, on shared cores
def test_the_measurement_runs_and_finds_the_forms_bodies_equal() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.snapshots", "--clients", "300", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Redis decode" in done.stdout
    assert "bodies equal byte for byte: True" in done.stdout
