"""The kustomize base keeps its promises: a restricted pod, probes that give up, the image by
the project's version, only real settings, no secret in the ConfigMap and none in git."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import SecretStr

from app.settings import ApiKeySettings, ConsentSettings, Settings
from tests.deploy.manifests import (
    KUBERNETES,
    OVERLAY,
    SECRET_ENV_TEMPLATE,
    SECRET_TEMPLATE,
    container,
    dockerfile,
    kustomization,
    load,
    pod_spec,
    project_version,
    resources,
    setting_names,
    setting_names_in,
)

SPEC = json.loads((KUBERNETES.parents[1] / "openapi" / "openapi.json").read_text("utf-8"))


def test_the_base_lists_every_manifest_but_the_secret_template() -> None:
    files = {path.name for path in KUBERNETES.glob("*.yaml")}
    listed = set(kustomization()["resources"])
    assert listed == files - {"kustomization.yaml", SECRET_TEMPLATE.name}
    assert set(resources()) == {
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }


def test_the_image_is_the_project_version() -> None:
    assert container()["image"] == f"tesoro:{project_version()}"
    for path in KUBERNETES.parent.rglob("*.yaml"):
        assert not re.search(r"image:\s*\S+:latest\b", path.read_text("utf-8")), path


def test_the_pod_runs_restricted() -> None:
    pod = pod_spec()
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container()["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    account = resources()["ServiceAccount"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False


def test_the_pod_user_is_the_image_user() -> None:
    [user] = [i.arguments for i in dockerfile() if i.keyword == "USER" and i.stage == 1]
    uid, _, gid = user.partition(":")
    assert pod_spec()["securityContext"]["runAsUser"] == int(uid) != 0
    assert pod_spec()["securityContext"]["runAsGroup"] == int(gid)


def test_the_container_serves_the_port_the_image_exposes_and_never_the_sandbox() -> None:
    [exposed] = [i.arguments for i in dockerfile() if i.keyword == "EXPOSE" and i.stage == 1]
    args = container()["args"]
    assert args[0] == "serve"
    assert "--sandbox" not in args
    assert args[args.index("--port") + 1] == exposed
    [port] = container()["ports"]
    assert port == {"name": "http", "containerPort": int(exposed), "protocol": "TCP"}
    assert "TESORO_SANDBOX" not in resources()["ConfigMap"]["data"]


@pytest.mark.parametrize(
    ("probe", "path"), [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]
)
def test_probes_ask_the_open_routes_and_give_up_in_time(probe: str, path: str) -> None:
    found = container()[probe]
    assert found["httpGet"] == {"path": path, "port": "http"}
    assert path in SPEC["paths"]
    assert 0 < found["timeoutSeconds"] < found["periodSeconds"]
    assert found["failureThreshold"] >= 2


def test_a_stopping_pod_leaves_the_service_before_it_stops_serving() -> None:
    pre_stop = container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop > 0
    # The grace period covers the pause and an aggregated answer's whole deadline.
    deadline = Settings.model_fields["request_deadline_seconds"].default
    assert pod_spec()["terminationGracePeriodSeconds"] > pre_stop + deadline


def test_resources_leave_room_for_the_benchmarked_memory() -> None:
    found = container()["resources"]
    assert found["requests"]["memory"] == "256Mi"
    # The hot-path benchmark's target: under 400 MB resident at 50,000 clients.
    assert found["limits"]["memory"] == "512Mi"
    assert found["requests"]["cpu"]  # what the autoscaler's utilisation is measured against
    assert "cpu" not in found["limits"]


def test_prometheus_scrapes_the_metrics_route_on_the_container_port() -> None:
    annotations = resources()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert "/metrics" in SPEC["paths"]
    assert int(annotations["prometheus.io/port"]) == container()["ports"][0]["containerPort"]


def test_service_autoscaler_and_budget_all_find_the_pods() -> None:
    found = resources()
    deployment = found["Deployment"]
    pod_labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        found["Service"]["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"],
        found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        found["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
    assert found["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    hpa = found["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    # A drain may take one pod down at a time and still leave one serving.
    assert found["PodDisruptionBudget"]["spec"]["minAvailable"] < hpa["minReplicas"]


def test_the_pod_reads_the_config_map_and_the_secret_the_base_names() -> None:
    sources = container()["envFrom"]
    assert sources == [
        {"configMapRef": {"name": resources()["ConfigMap"]["metadata"]["name"]}},
        {"secretRef": {"name": load(SECRET_TEMPLATE)["metadata"]["name"]}},
    ]


def test_the_network_policy_lets_in_only_the_container_port() -> None:
    policy = resources()["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    [ingress] = policy["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8000}]
    egress_ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert egress_ports == {53, 443, 6379, 5432}


def test_every_variable_named_in_deploy_is_a_setting() -> None:
    # Comments included: a commented example must still be a name tesoro reads.
    paths = [*KUBERNETES.glob("*.yaml"), KUBERNETES.parent / "tesoro.env.example"]
    paths += [SECRET_ENV_TEMPLATE, OVERLAY / "kustomization.yaml"]
    for path in paths:
        assert setting_names_in(path) <= setting_names(), path


def _secret_fields() -> set[str]:
    """Settings that hold a secret: a SecretStr, or a structure that contains one."""
    secret = {"finqware_consents", "api_keys"}
    for name, field in Settings.model_fields.items():
        if SecretStr in (field.annotation, *get_args(field.annotation)):
            secret.add(name)
    return {f"TESORO_{name.upper()}" for name in secret}


def test_secrets_are_in_the_secret_template_and_never_in_the_config_map() -> None:
    template = load(SECRET_TEMPLATE)["stringData"]
    assert _secret_fields() <= set(template)
    assert not _secret_fields() & setting_names_in(KUBERNETES / "configmap.yaml")


def test_the_secret_template_holds_no_value() -> None:
    template = load(SECRET_TEMPLATE)
    assert "data" not in template
    assert all(value == "" for value in template["stringData"].values())


def _commented_examples() -> dict[str, Any]:
    """The JSON example in the comment above each key of the Secret template."""
    examples: dict[str, Any] = {}
    comment: list[str] = []
    for line in SECRET_TEMPLATE.read_text("utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#"))
            continue
        key = re.match(r"(TESORO_[A-Z_]+):", stripped)
        text = "\n".join(comment)
        if key and "Example:" in text:
            examples[key.group(1)] = json.loads(text.split("Example:", 1)[1])
        comment = []
    return examples


def test_each_json_value_of_the_secret_has_an_example_tesoro_accepts() -> None:
    examples = _commented_examples()
    assert set(examples) == {"TESORO_FINQWARE_CONSENTS", "TESORO_API_KEYS"}
    consents = [ConsentSettings.model_validate(c) for c in examples["TESORO_FINQWARE_CONSENTS"]]
    assert consents[0].expires_at is not None
    keys = {
        name: ApiKeySettings.model_validate(k) for name, k in examples["TESORO_API_KEYS"].items()
    }
    assert {scope for key in keys.values() for scope in key.scopes} == {"read", "write"}


def test_the_config_map_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    data: dict[str, str] = resources()["ConfigMap"]["data"]
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in data.items():
        assert isinstance(value, str), name  # a ConfigMap holds strings only
        monkeypatch.setenv(name, value)
    # Read from the environment exactly as the container would read them.
    settings = Settings(_env_file=None)
    assert settings.finsync_ttl_seconds == float(data["TESORO_FINSYNC_TTL_SECONDS"])
    assert settings.cors_origins == json.loads(data["TESORO_CORS_ORIGINS"])


def _env_file_lines(path: Path) -> list[tuple[str, str]]:
    """The KEY=VALUE lines of an env file as `kubectl --from-env-file` reads them: comments
    and blank lines skipped, the value everything after the first `=`, quotes and all."""
    pairs = []
    for line in path.read_text("utf-8").splitlines():
        stripped = line.lstrip()
        if stripped and not stripped.startswith("#"):
            key, _, value = stripped.partition("=")
            pairs.append((key, value))
    return pairs


def _env_template_examples() -> dict[str, str]:
    """The one-line JSON example commented above each key of the env template."""
    examples: dict[str, str] = {}
    previous = ""
    for line in SECRET_ENV_TEMPLATE.read_text("utf-8").splitlines():
        key = re.match(r"(TESORO_[A-Z_]+)=", line)
        if key and previous.startswith(("# [", "# {")):
            examples[key.group(1)] = previous.removeprefix("# ")
        previous = line
    return examples


def test_the_secret_env_template_has_the_secrets_keys_and_no_value() -> None:
    pairs = _env_file_lines(SECRET_ENV_TEMPLATE)
    assert [key for key, _ in pairs] == list(load(SECRET_TEMPLATE)["stringData"])
    assert all(value == "" for _, value in pairs)
    examples = _env_template_examples()
    assert set(examples) == {"TESORO_FINQWARE_CONSENTS", "TESORO_API_KEYS"}
    # The examples are what a filled line holds: JSON, unquoted, that tesoro accepts.
    consents = json.loads(examples["TESORO_FINQWARE_CONSENTS"])
    assert ConsentSettings.model_validate(consents[0]).expires_at is not None
    for name, key in json.loads(examples["TESORO_API_KEYS"]).items():
        assert ApiKeySettings.model_validate(key).scopes, name


def test_a_filled_env_template_makes_a_secret_tesoro_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not found: the Secret is not made from the env template")
    filled = {
        "TESORO_FINSYNC_API_KEY": "fs_live_0123456789",
        "TESORO_FINQWARE_CLIENT_ID": "tenant-andes",
        "TESORO_FINQWARE_CLIENT_SECRET": "fqs_0123456789",
        **_env_template_examples(),
        "TESORO_REDIS_URL": "redis://:p4ss@tesoro-redis:6379/0",
        "TESORO_DATABASE_URL": "postgresql://tesoro:p4ss@tesoro-postgres:5432/tesoro",
    }
    text = SECRET_ENV_TEMPLATE.read_text("utf-8")
    for name, value in filled.items():
        text = text.replace(f"\n{name}=\n", f"\n{name}={value}\n")
    env_file = tmp_path / "tesoro.secrets.env"
    env_file.write_text(text, encoding="utf-8")
    made = subprocess.run(
        [kubectl, "create", "secret", "generic", "tesoro-secrets",
         f"--from-env-file={env_file}", "--dry-run=client", "-o", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    data = {
        key: base64.b64decode(value).decode()
        for key, value in json.loads(made.stdout)["data"].items()
    }
    assert data == filled
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert [consent.key for consent in settings.finqware_consents] == ["bt-main"]
    assert set(settings.api_keys) == {"frontend"}
    assert settings.finqware_enabled
    assert settings.finsync_enabled


def test_the_example_overlay_pins_the_image_by_digest() -> None:
    overlay = load(OVERLAY / "kustomization.yaml")
    assert overlay["resources"] == ["../../kubernetes"]
    [image] = overlay["images"]
    assert image["name"] == container()["image"].split(":")[0]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image["digest"])
    assert "newTag" not in image  # the digest alone says what runs
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not found: the overlay is not built")
    built = subprocess.run(
        [kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    images = re.findall(r"image: (\S+)", built)
    # The service and its `migrate` init container run the one image.
    assert images == [f"{image['newName']}@{image['digest']}"] * 2
