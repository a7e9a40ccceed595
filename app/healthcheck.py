"""The container's health check: asks `/healthz` on the address `tesoro serve` listens on.

`python -m app.healthcheck` reads the command line of the container's main process
(`/proc/1/cmdline`; under an init such as `docker run --init`, of the first `serve` process
found), so `tesoro serve --port 19095` is probed on 19095 without a second place to say the
port. Standard library only: the image runs it every 30 s, and importing
tesoro's application for it would cost more than the check itself. Exit 0: healthy; 1: not.
"""

from __future__ import annotations

import argparse
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

# `tesoro serve`'s defaults (app/cli.py reads them from here).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# Addresses that mean "every interface": the check asks loopback instead.
_EVERY_INTERFACE = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104
TIMEOUT_SECONDS = 2.0


def served_address(argv: Sequence[str]) -> tuple[str, int] | None:
    """Where a `... serve [--host H] [--port P]` command line listens, or None when it is not
    `tesoro serve` (`--host`/`--port` as separate words or with `=`, as argparse takes them)."""
    if "serve" not in argv:
        return None
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--host", default=DEFAULT_HOST)
    options.add_argument("--port", type=int, default=DEFAULT_PORT)
    try:
        known, _ = options.parse_known_args(list(argv[list(argv).index("serve") + 1 :]))
    except SystemExit:
        return None
    host: str = known.host
    return _EVERY_INTERFACE.get(host, host), known.port


PROC = Path("/proc")


def command_line(pid: int, proc: Path = PROC) -> list[str]:
    """The command line of process `pid`, word by word."""
    raw = (proc / str(pid) / "cmdline").read_bytes()
    return [word.decode(errors="replace") for word in raw.split(b"\0") if word]


def find_server(proc: Path = PROC) -> tuple[str, int] | None:
    """The address of the container's `tesoro serve`: process 1's, else (under an init
    process) the first other process's whose command line is `... serve ...`."""
    pids = sorted(int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())
    for pid in sorted(pids, key=lambda pid: pid != 1):
        try:
            address = served_address(command_line(pid, proc))
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if address is not None:
            return address
    return None


def healthy(host: str, port: int) -> bool:
    shown = f"[{host}]" if ":" in host else host
    try:
        with urllib.request.urlopen(
            f"http://{shown}:{port}/healthz", timeout=TIMEOUT_SECONDS
        ) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.healthcheck", description=__doc__)
    parser.add_argument(
        "--pid",
        type=int,
        default=None,
        help="the process running tesoro serve (default: process 1, else the first found)",
    )
    args = parser.parse_args(argv)
    try:
        address = find_server() if args.pid is None else served_address(command_line(args.pid))
    except OSError as exc:
        print(f"healthcheck: cannot read the processes: {exc}", file=sys.stderr)
        return 1
    if address is None:
        which = "no process is" if args.pid is None else f"process {args.pid} is not"
        print(f"healthcheck: {which} tesoro serve", file=sys.stderr)
        return 1
    return 0 if healthy(*address) else 1


if __name__ == "__main__":
    raise SystemExit(main())
