"""The snapshot measurements run end to end and find the snapshot read back from its stored
bytes equal to the one interpreted (in every stored form compared). No timing is asserted."""

from __future__ import annotations

import shutil
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


@pytest.mark.timeout(120)
def test_the_stored_forms_comparison_runs_and_every_form_serves_the_same_bytes() -> None:
    base = "5953b9e"  # the comparison's default: the last commit of the first stored form
    git = shutil.which("git")
    if git is None or subprocess.run([git, "cat-file", "-e", base], cwd=ROOT).returncode:
        pytest.skip(f"{base} is not in this clone's history")
    done = subprocess.run(
        [sys.executable, "-m", "bench.stored_forms", "--clients", "300", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    # The run stops unless each form reads back the served bytes.
    rows = {line.split()[0] for line in done.stdout.splitlines()[2:]}
    assert rows == {"v1", "v2", "positional"}
