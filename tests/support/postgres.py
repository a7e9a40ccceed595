"""A real PostgreSQL (Debian's `postgresql` package; `make postgresql` installs it) on a free
loopback port, in a temporary data directory, started and stopped by tests.

initdb and pg_ctl refuse to run as root: as root they run as the `postgres` user the package
creates (runuser), otherwise as the current user."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.servers import free_port

PASSWORD = "s3cret-pg-pässword"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run `make postgresql`")
    return Path(found[-1]).parent


class PostgresServer:
    """One PostgreSQL cluster on 127.0.0.1 with a `tesoro` database and user (password auth);
    can be stopped and started again on the same port and data."""

    def __init__(self) -> None:
        self._bin = _bin_dir()
        self.port = free_port()
        self._root = Path(tempfile.mkdtemp(prefix="tesoro-pg-"))
        self.data = self._root / "data"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self._root, "postgres", "postgres")
        self._initdb()

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*(["runuser", "-u", "postgres", "--"] if self._as_root else []), *args]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)

    def _initdb(self) -> None:
        password_file = self._root / "pw"
        password_file.write_text(PASSWORD + "\n")
        if self._as_root:
            shutil.chown(password_file, "postgres", "postgres")
        self._run(
            str(self._bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "tesoro",
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
            "-E",
            "UTF8",
            "--no-sync",
        )

    @property
    def url(self) -> str:
        """The URL as an operator writes it (`postgresql://`, the password in it)."""
        return f"postgresql://tesoro:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._run(
            str(self._bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-t",
            "30",
            "-l",
            str(self._root / "log"),
            "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c fsync=off -c full_page_writes=off",
            "start",
        )

    def stop(self) -> None:
        self._run(str(self._bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop")

    def sql(self, statement: str) -> str:
        """One statement through psql, its output (tests look at the database with it)."""
        psql = self._bin / "psql"
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        return subprocess.run(
            [
                str(psql),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "tesoro",
                "-d",
                "postgres",
                "-At",
                "-c",
                statement,
            ],
            check=True,
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        ).stdout

    def reset(self) -> None:
        """An empty database again (between tests)."""
        self.sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")

    def remove(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            server.remove()


def history_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of a test parametrised over the two engines (`sqlite` or
    `postgresql`, the latter from the module's `postgres` fixture, emptied first)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    server.reset()
    return server.url
