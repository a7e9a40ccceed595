"""Processes on loopback ports for the benchmarks: a free port, waiting for a listener, and
a child process stopped at the end of a block."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.servers import free_port, wait_for

__all__ = ["free_port", "process", "wait_for"]


@contextmanager
def process(
    args: list[str], env: dict[str, str], *, cwd: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, quiet, terminated when the block ends."""
    child = subprocess.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # A run's figures are worth more than a graceful stop: one that takes this long
            # (a busy shared machine) is killed rather than ending the run.
            child.kill()
            child.wait(timeout=15)
