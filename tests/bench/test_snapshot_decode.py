"""The snapshot measurement runs end to end and finds the snapshot read back from its stored
bytes equal to the one interpreted. No timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_the_measurement_runs_and_reads_the_snapshot_back_equal() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.snapshot_decode", "--clients", "300", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "read back equal: True" in done.stdout
    assert "objects the collector tracks after a decode" in done.stdout
