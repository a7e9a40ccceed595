"""A connection's interpreted snapshot as bytes for the shared tier, and back.

JSON: `app.domain.snapshot.Snapshot`, a positional envelope marked with its stored form, whose
counterparties are written as the public models write them (amounts as exact fixed-point
decimal strings, date-times with their offset), compressed with zstandard with the frame's
content checksum. Never pickle: what is read back from Redis is data, decoded into the
snapshot's types with their field types checked, so a tampered, corrupt, truncated or
foreign value is refused (a miss for the shared tier), not run and never served.
"""

from __future__ import annotations

import msgspec
import zstandard

from app.domain.interpret import Interpreted
from app.domain.models import ResponseWarning
from app.domain.snapshot import Snapshot, SnapshotWarning, decode_snapshot, encode_json

# Bumped whenever the encoded shape changes: keys carry it, so an old replica and a new one
# never read each other's values during a rolling update (2: the positional envelope, the
# checksummed frame).
SCHEMA_VERSION = 2
# zstd's fastest levels are already within a few percent of level 3's size on this JSON.
_LEVEL = 3
# A snapshot is refused above this size when decompressed (a corrupt frame never eats memory).
MAX_DECODED_BYTES = 1 << 30


def encode_interpreted(value: Interpreted) -> bytes:
    stored = Snapshot(
        counterparties=value.counterparties,
        warnings=tuple(SnapshotWarning(**dict(warning)) for warning in value.warnings),
        ibans=value.ibans,
    )
    # The checksum: a frame corrupted in Redis or on the way is refused, never decoded.
    compressor = zstandard.ZstdCompressor(level=_LEVEL, write_checksum=True)
    return compressor.compress(encode_json(stored))


def decode_interpreted(data: bytes) -> Interpreted:
    """The snapshot back; ValueError when the bytes are not one."""
    try:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_DECODED_BYTES)
    except zstandard.ZstdError as exc:
        raise ValueError(f"not a zstd frame: {exc}") from exc
    try:
        stored = decode_snapshot(raw)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a snapshot: {exc}") from exc
    # The warnings are few (tens), and public models elsewhere: validated back into them.
    warnings = tuple(
        ResponseWarning(
            code=w.code,
            message=w.message,
            source=w.source,
            counterparty_id=w.counterparty_id,
            account_id=w.account_id,
        )
        for w in stored.warnings
    )
    return Interpreted(stored.counterparties, warnings, stored.ibans)
