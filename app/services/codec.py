"""A connection's interpreted snapshot as bytes for the shared tier, and back.

JSON (pydantic's own serialiser: amounts as exact decimal strings, date-times with their
offset), compressed with zstandard. Never pickle: what is read back from Redis is data,
validated into the public models again, so a tampered or foreign value is refused, not run.
"""

from __future__ import annotations

import zstandard
from pydantic import TypeAdapter

from app.domain.interpret import Interpreted
from app.domain.models import compact

# Bumped whenever the encoded shape changes: keys carry it, so an old replica and a new one
# never read each other's values during a rolling update.
SCHEMA_VERSION = 1
# zstd's fastest levels are already within a few percent of level 3's size on this JSON.
_LEVEL = 3
_ADAPTER = TypeAdapter(Interpreted)
# A snapshot is refused above this size when decompressed (a corrupt frame never eats memory).
MAX_DECODED_BYTES = 1 << 30


def encode_interpreted(value: Interpreted) -> bytes:
    return zstandard.ZstdCompressor(level=_LEVEL).compress(_ADAPTER.dump_json(value))


def decode_interpreted(data: bytes) -> Interpreted:
    """The snapshot back; ValueError when the bytes are not one (pydantic's is one too)."""
    try:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_DECODED_BYTES)
    except zstandard.ZstdError as exc:
        raise ValueError(f"not a zstd frame: {exc}") from exc
    value = _ADAPTER.validate_json(raw)
    # As compact in memory as a snapshot interpreted here (shared field-name sets).
    compact(value.counterparties)
    return value
