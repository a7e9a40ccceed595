"""The deployment files as the deploy tests read them: parsed YAML, the Dockerfile's
instructions, the project's version and the names of tesoro's settings."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml  # type: ignore[import-untyped]  # PyYAML, through yamllint; no stubs installed

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SECRET_TEMPLATE = KUBERNETES / "secret.example.yaml"
SECRET_ENV_TEMPLATE = KUBERNETES / "tesoro.secrets.env.example"
OVERLAY = DEPLOY / "overlays" / "example"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"

Document = dict[str, Any]


def load(path: Path) -> Document:
    """The one YAML document of a file."""
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{path} is not one YAML mapping"
    return cast(Document, loaded)


def kustomization() -> Document:
    return load(KUBERNETES / "kustomization.yaml")


def resources() -> dict[str, Document]:
    """The base's resources, by kind (one of each)."""
    found: dict[str, Document] = {}
    for name in kustomization()["resources"]:
        document = load(KUBERNETES / name)
        assert document["kind"] not in found
        found[document["kind"]] = document
    return found


def pod_spec() -> Document:
    return cast(Document, resources()["Deployment"]["spec"]["template"]["spec"])


def container() -> Document:
    [only] = pod_spec()["containers"]
    return cast(Document, only)


def compose() -> Document:
    return load(COMPOSE)


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as file:
        version: str = tomllib.load(file)["project"]["version"]
    return version


def setting_names() -> set[str]:
    """Every TESORO_* variable tesoro reads."""
    return {f"TESORO_{name.upper()}" for name in Settings.model_fields}


def setting_names_in(path: Path) -> set[str]:
    """Every TESORO_* name a file mentions, comments included."""
    return set(re.findall(r"\bTESORO_[A-Z0-9_]+\b", path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    arguments: str


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions (continuations joined, comments dropped), numbered by
    stage from 0; instructions before the first FROM are stage -1."""
    joined: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    instructions = []
    stage = -1
    for text in joined:
        keyword, _, arguments = text.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword.upper(), arguments.strip()))
    return instructions
